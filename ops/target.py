"""Which database empire-ops works on: the configured DSN, or the embedded server."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from ops.config import Config
from ops.db import ConnectOptions, dsn_warnings, mask_dsn
from ops.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatabaseTarget:
    """A database to act on. ``dsn`` may hold a password: show ``masked`` instead."""

    dsn: str
    embedded: bool
    options: ConnectOptions
    source: str

    @property
    def masked(self) -> str:
        return mask_dsn(self.dsn)


def configured_dsn(config: Config, secrets: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(DSN, where it came from) from the secret named by ``database.url_secret``.

    ``secrets`` is the loaded secret set when there is one; without it the
    secrets chain is loaded (env, .env, Vault, AWS, HTTPS, and the alias
    SUPABASE_DB_URL), so every command finds the DSN wherever it is kept.
    Returns ("", "") when no DSN is configured.
    """
    name = config.get("database.url_secret")
    if secrets is None:
        from ops.secrets import load_secrets

        secrets = load_secrets(config).secrets
    value = secrets.get(name, "")
    return (value, name) if value else ("", "")


def warn_about_dsn(dsn: str, source: str) -> list[str]:
    """Log (and return) a warning for each risk of connecting with ``dsn`` (from ``source``).

    The transaction-mode pooler and a remote host that does not require TLS
    (:func:`ops.db.dsn_warnings`), so every command says so, not only
    preflight, where they are findings of the secret. A DSN that cannot be
    read gets no warning here: connecting raises the error that names it.
    """
    try:
        found = dsn_warnings(dsn)
    except ConfigError:
        return []
    for warning in found:
        log.warning("the database DSN (%s) %s", source, warning)
    return found


def resolve_target(
    config: Config, secrets: Mapping[str, str] | None = None, *, start_embedded: bool = True
) -> DatabaseTarget:
    """The database to use. Without a configured DSN, the embedded server (started if needed).

    ``secrets`` is a loaded SecretSet (preflight passes its own); without it the
    secrets chain is loaded. Raises ConfigError when no DSN is configured and the
    embedded server is disabled.
    """
    options = ConnectOptions.from_config(config)
    dsn, name = configured_dsn(config, secrets)
    if dsn:
        warn_about_dsn(dsn, name)
        return DatabaseTarget(dsn=dsn, embedded=False, options=options, source=name)
    if not config.get("embedded.enabled"):
        raise ConfigError(
            f"no database configured: secret {config.get('database.url_secret')} is not set "
            "and embedded.enabled is false",
            hint=f"set {config.get('database.url_secret')} or enable the embedded server",
        )
    from ops.embedded import embedded_cluster

    cluster = embedded_cluster(config)
    if start_embedded:
        cluster.start()
    return DatabaseTarget(dsn=cluster.url(), embedded=True, options=options, source="embedded")


def existing_target(
    config: Config, secrets: Mapping[str, str] | None = None
) -> DatabaseTarget | None:
    """The database to read from without starting one: None when the embedded server is
    not running (or none is configured). For status commands, which must work without it."""
    from ops.errors import OpsError

    try:
        return resolve_target(config, secrets, start_embedded=False)
    except OpsError:
        return None
