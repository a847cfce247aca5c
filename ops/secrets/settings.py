"""The ``[secrets]`` config section (light: no SDK imports, read by the config loader)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ops.config import Field, Table, Variants, _is_count, _is_duration, _is_secret_name

SECTION_NAME = "secrets"

# Every built-in kind a spec may name (validators live in ops.secrets.kinds).
KINDS = (
    "string",
    "int",
    "bool",
    "url",
    "postgres_dsn",
    "email",
    "email_list",
    "hostname",
    "port",
    "jwt",
    "supabase_url",
    "supabase_anon_key",
    "supabase_service_role_key",
    "supabase_publishable_key",
    "supabase_secret_key",
    "supabase_publishable_keys",
    "supabase_secret_keys",
    "supabase_jwt_secret",
    "jwks",
)
DEFAULT_CHAIN = ["env", "dotenv", "vault", "awssm", "https"]
ENVS = ("dev", "test", "staging", "prod")


def _is_pattern(v: Any) -> Any:
    try:
        return re.compile(v)
    except re.error as exc:
        raise ValueError(f"{v!r} is not a regular expression: {exc}") from None


def _is_required(v: Any) -> Any:
    if isinstance(v, list):
        bad = [e for e in v if e not in ENVS]
        if bad:
            raise ValueError(f"unknown environment(s) {bad}; known: {', '.join(ENVS)}")
    return v


def _secret_names(v: Any) -> Any:
    for name in v:
        _is_secret_name(name)
    return v


def _is_recovery_window(v: Any) -> Any:
    from ops.config import parse_duration

    days = parse_duration(v) / 86400
    if days != int(days) or not 7 <= days <= 30:
        raise ValueError(f"{v!r} is not a whole number of days from 7d to 30d (AWS's range)")
    return v


def _is_verify(v: Any) -> Any:
    if isinstance(v, str) and not v:
        raise ValueError("verify must be true, false or a CA bundle path")
    return v


# Each source type declares the options it reads: `type` picks the table, so an
# option of another type (a vault `mount` on a dotenv source) is an error naming
# the type and its options. Defaults are None: unset, so a source can tell
# "unset" from a value. A new source type adds its table here and its class to
# the registry in ops/secrets/sources/__init__.py (a test keeps the two equal).
_TYPE = Field(str, None, "env, dotenv, vault, awssm or https (default: the table's name)")
_TIMEOUT = Field(str, None, "connect/read timeout per request", check=_is_duration)
_VERIFY = Field((bool, str), None, "TLS verify: true, false or a CA bundle path", _is_verify)

SOURCE_OPTIONS: dict[str, Table] = {
    "env": Table({"type": _TYPE}),
    "dotenv": Table(
        {
            "type": _TYPE,
            "paths": Field(list, None, "files to read, first has priority (default .env)"),
            "interpolate": Field(bool, None, "expand ${VAR} (off: a $ in a password survives)"),
        }
    ),
    "vault": Table(
        {
            "type": _TYPE,
            "address": Field(str, None, "https://vault:8200 (else $VAULT_ADDR)"),
            "mount": Field(str, None, "KV v2 mount (default secret)"),
            "path": Field(str, None, "secret path under the mount"),
            "namespace": Field(str, None, "Enterprise namespace"),
            "auth": Field(str, None, "token or approle", choices=("token", "approle")),
            "token_secret": Field(str, None, "env var holding the token", check=_is_secret_name),
            "role_id_secret": Field(str, None, "secret holding the AppRole role_id"),
            "secret_id_secret": Field(str, None, "secret holding the AppRole secret_id"),
            "verify": _VERIFY,
            "timeout": _TIMEOUT,
        }
    ),
    "awssm": Table(
        {
            "type": _TYPE,
            "secret_id": Field(str, None, "the secret's name or ARN (json mode)"),
            "mode": Field(str, None, "json or per-key", choices=("json", "per-key")),
            "prefix": Field(str, None, "per-key: name prefix, e.g. empire/prod/"),
            "region": Field(str, None, "region (else $AWS_REGION)"),
            "profile": Field(str, None, "named AWS profile"),
            "endpoint_url": Field(str, None, "custom endpoint (e.g. a local test server)"),
            "recovery_window": Field(
                str,
                None,
                "per-key --prune: days AWS keeps a deleted secret restorable, 7d-30d (default 7d)",
                check=_is_recovery_window,
            ),
            "timeout": _TIMEOUT,
        }
    ),
    "https": Table(
        {
            "type": _TYPE,
            "url": Field(str, None, "the document's URL (http only to loopback)"),
            "format": Field(str, None, "json or dotenv", choices=("json", "dotenv")),
            "bearer_secret": Field(str, None, "secret holding a bearer token", _is_secret_name),
            "sha256": Field(str, None, "expected sha256 of the document (hex)"),
            "verify": _VERIFY,
            "timeout": _TIMEOUT,
        }
    ),
}
SOURCE = Variants("type", SOURCE_OPTIONS, noun="source")


def _check_chain(section: dict[str, Any], root: Path) -> list[str]:
    """Every chain entry names a configured source or a source type."""
    from ops.secrets.sources import REGISTRY

    chain = section.get("chain", [])
    known = sorted(set(section.get("sources", {})) | set(REGISTRY))
    return [
        f"chain[{i}]: unknown source {name!r}; configure [secrets.sources.{name}] "
        f"or use one of: {', '.join(known)}"
        for i, name in enumerate(chain)
        if name not in known
    ]


SPEC = Table(
    {
        "required": Field((bool, list), None, "true, false or a list of envs", _is_required),
        "kind": Field(str, None, "one of the built-in kinds", choices=KINDS),
        "description": Field(str, None, "what the secret is for"),
        "pattern": Field(str, None, "a regular expression the whole value must match", _is_pattern),
        "min_length": Field(int, None, "shortest accepted value", check=_is_count),
        "aliases": Field(list, None, "other names accepted for it", check=_secret_names),
        "secret": Field(
            bool,
            None,
            "false: a setting, not a credential (a host, a port, an address): shown as it is, "
            "never redacted nor reported weak (default true)",
        ),
    }
)


def _alternatives(v: Any) -> Any:
    if not all(isinstance(alt, list) and alt for alt in v):
        raise ValueError("must be a list of non-empty lists of secret names")
    for alt in v:
        _secret_names(alt)
    return v


def _is_group_name(v: Any) -> Any:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
        raise ValueError(f"{v!r} is not a group name (use lower_snake_case)")
    return v


def _is_jwks_url(v: Any) -> Any:
    if v not in ("", "auto") and not v.startswith("https://"):
        raise ValueError(f"{v!r} must be an https:// URL, auto or empty")
    return v


# Secrets required as alternatives (ops.secrets.spec.SecretGroup).
GROUP = Table(
    {
        "required": Field((bool, list), None, "true, false or a list of envs", _is_required),
        "one_of": Field(list, None, "alternatives, each a list of names all needed", _alternatives),
        "description": Field(str, None, "what the group is for"),
    }
)

SECTION = Table(
    {
        "chain": Field(list, list(DEFAULT_CHAIN), "source names in precedence order"),
        "remote_budget": Field(str, "10s", "total time for remote sources", check=_is_duration),
        "allow_reserved": Field(list, [], "reserved names a source may set", check=_secret_names),
        "cache": Table(
            {
                "enabled": Field(bool, True, "keep an encrypted last-known-good cache"),
                "max_age": Field(str, "24h", "oldest cache that may be used", check=_is_duration),
                "key_secret": Field(
                    str,
                    "EMPIRE_CACHE_KEY",
                    "secret holding the 256-bit cache key (hex or base64); unset: a 0600 key file",
                    check=_is_secret_name,
                ),
            }
        ),
        # `secrets snapshot` / `restore-snapshot` (ops/secrets/snapshot.py).
        "snapshot": Table(
            {
                "passphrase_secret": Field(
                    str,
                    "EMPIRE_SNAPSHOT_PASSPHRASE",
                    "secret holding the snapshot passphrase",
                    check=_is_secret_name,
                ),
                "location": Field(str, "", "folder for snapshots; '' = <state_dir>/snapshots"),
                "keep": Field(int, 10, "newest snapshots kept; 0 keeps all", check=_is_count),
            }
        ),
        "sources": Table(item=SOURCE, doc="named sources: [secrets.sources.<name>]"),
        "spec": Table(
            item=SPEC, key_check=_is_secret_name, doc="declared secrets: [secrets.spec.<NAME>]"
        ),
        "groups": Table(
            item=GROUP,
            key_check=_is_group_name,
            doc="secrets required as alternatives: [secrets.groups.<name>]",
        ),
        # How preflight checks the Supabase keys beyond the secrets themselves.
        "supabase": Table(
            {
                "jwks_url": Field(
                    str,
                    "",
                    "JWKS verifying ES256/RS256 keys: an https URL, auto (from SUPABASE_URL) "
                    "or '' (only SUPABASE_JWKS / SUPABASE_JWKS_URL)",
                    check=_is_jwks_url,
                ),
            }
        ),
    },
    check=_check_chain,
)
