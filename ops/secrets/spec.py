"""The secret spec: which secrets exist, when they are required, and how to check them.

The default spec ships the Empire's names; ``[secrets.spec.<NAME>]`` tables in
config override fields of a default entry or declare new secrets. In dev the
Supabase keys and the DSN are optional (the embedded server is used), so a
fresh machine passes ``make up``; outside dev they are required.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.errors import EXIT_SECRETS, ConfigError
from ops.findings import Finding
from ops.secrets.kinds import (
    KindContext,
    Problem,
    check_value,
    is_service_key,
    jwt_role,
    weakness,
)
from ops.secrets.model import SecretSet
from ops.secrets.sources.env import CLIENT_PREFIXES

if TYPE_CHECKING:
    from ops.config import Config

OUTSIDE_DEV = ["test", "staging", "prod"]
_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]*")


@dataclass(frozen=True)
class SecretSpec:
    """One declared secret."""

    name: str
    kind: str = "string"
    required: bool | list[str] = False
    description: str = ""
    pattern: str | None = None
    min_length: int | None = None
    aliases: tuple[str, ...] = ()

    def required_in(self, env: str) -> bool:
        if isinstance(self.required, bool):
            return self.required
        return env in self.required


# The Empire's secrets. Features that do not exist yet ("required when enabled")
# are optional here; their feature makes them required when it is switched on.
DEFAULT_SPEC: dict[str, dict[str, Any]] = {
    "SUPABASE_URL": {
        "kind": "supabase_url",
        "required": OUTSIDE_DEV,
        "description": "project URL https://<ref>.supabase.co (Settings > API)",
    },
    "SUPABASE_ANON_KEY": {
        "kind": "supabase_anon_key",
        "required": OUTSIDE_DEV,
        "description": "public anon key (legacy JWT) or sb_publishable_ key",
    },
    "SUPABASE_SERVICE_ROLE_KEY": {
        "kind": "supabase_service_role_key",
        "required": OUTSIDE_DEV,
        "description": "server-only service_role key (legacy JWT) or sb_secret_ key",
    },
    "DATABASE_URL": {
        "kind": "postgres_dsn",
        "required": ["staging", "prod"],
        "description": "PostgreSQL DSN; unset in dev/test = the embedded server",
        "aliases": ["SUPABASE_DB_URL"],
    },
    "SUPABASE_JWT_SECRET": {
        "kind": "string",
        "min_length": 32,
        "description": "optional: JWT secret, lets preflight verify the legacy keys' signatures",
    },
    "SMTP_PASSWORD": {"description": "alerts: SMTP password (required when e-mail alerts are on)"},
    "AWS_ACCESS_KEY_ID": {"description": "backups to S3 / AWS Secrets Manager: access key id"},
    "AWS_SECRET_ACCESS_KEY": {"description": "backups to S3 / AWS Secrets Manager: secret key"},
    "BACKUP_S3_ACCESS_KEY_ID": {"description": "backups: S3-compatible store access key id"},
    "BACKUP_S3_SECRET_ACCESS_KEY": {"description": "backups: S3-compatible store secret key"},
    "EMPIRE_SNAPSHOT_PASSPHRASE": {
        "min_length": 12,
        "description": "secrets snapshot: passphrase for the encrypted snapshot",
    },
    "DASHBOARD_BASIC_AUTH_PASSWORD": {
        "min_length": 12,
        "description": "dashboard: password protecting the published dashboard",
    },
}


@dataclass
class Spec:
    """Every declared secret, by canonical name."""

    entries: dict[str, SecretSpec] = field(default_factory=dict)

    def all_names(self) -> set[str]:
        """Canonical names and aliases."""
        names = set(self.entries)
        for entry in self.entries.values():
            names.update(entry.aliases)
        return names

    def of_kind(self, kind: str) -> list[SecretSpec]:
        return [e for e in self.entries.values() if e.kind == kind]


def _entry(name: str, fields: Mapping[str, Any]) -> SecretSpec:
    clean = {k: v for k, v in fields.items() if v is not None}
    if "aliases" in clean:
        clean["aliases"] = tuple(clean["aliases"])
    return SecretSpec(name=name, **clean)


def load_spec(config: Config | None) -> Spec:
    """The default spec overlaid with ``[secrets.spec]`` from ``config``.

    The DSN entry follows ``database.url_secret``. Raises ConfigError (with the
    dotted path) for a spec name that is not UPPER_SNAKE_CASE.
    """
    url_name = config.get("database.url_secret") if config is not None else "DATABASE_URL"
    entries: dict[str, SecretSpec] = {}
    for name, fields in DEFAULT_SPEC.items():
        real = url_name if name == "DATABASE_URL" else name
        entries[real] = _entry(real, fields)
    overrides: Mapping[str, Any] = config.get("secrets.spec") if config is not None else {}
    problems = [
        f"secrets.spec.{n}: {n!r} is not a secret name (use UPPER_SNAKE_CASE)"
        for n in overrides
        if not _NAME_RE.fullmatch(n)
    ]
    if problems:
        raise ConfigError("; ".join(problems), hint="rename the [secrets.spec.<NAME>] table")
    for name, fields in overrides.items():
        base = entries.get(name, SecretSpec(name))
        clean = {k: v for k, v in fields.items() if v is not None}
        if "aliases" in clean:
            clean["aliases"] = tuple(clean["aliases"])
        entries[name] = replace(base, **clean)
    return Spec(entries)


# ---------------------------------------------------------------------- validation
def _message(name: str, secrets: SecretSet, problem: Problem) -> tuple[str, dict[str, str]]:
    """``NAME <why> (from SOURCE, fingerprint FP)`` and the shown metadata: never the value."""
    meta = secrets.provenance(name).meta() if name in secrets else {"name": name}
    where = (
        f" (from {meta['source']}, fingerprint {meta['fingerprint']})" if "source" in meta else ""
    )
    return f"{name} {problem.message}{where}", meta


def _invalid(name: str, secrets: SecretSet, problem: Problem) -> Finding:
    message, meta = _message(name, secrets, problem)
    if problem.severity == "warning":
        return F.warning("SECRETS_SUSPICIOUS", name, message, details=meta)
    return F.error("SECRETS_INVALID", name, message, exit_code=EXIT_SECRETS, details=meta)


# Where a weak secret stops the run (exit 3); elsewhere it is a warning, so a
# laptop or CI database with a default password still works.
WEAK_IS_ERROR_IN = ("staging", "prod")


def _weak(name: str, secrets: SecretSet, reason: str, env: str) -> Finding:
    message, meta = _message(name, secrets, Problem(reason))
    if env in WEAK_IS_ERROR_IN:
        return F.error("SECRETS_WEAK", name, message, exit_code=EXIT_SECRETS, details=meta)
    return F.warning("SECRETS_WEAK", name, message, details=meta)


def validate(secrets: SecretSet, spec: Spec, env: str) -> tuple[list[Finding], list[str]]:
    """Check every declared secret that is present; return (findings, missing required names).

    Findings never quote a value: name, source, fingerprint and the reason. A
    valid value that is weak (too short or too common to redact) is SECRETS_WEAK:
    an error in :data:`WEAK_IS_ERROR_IN`, a warning elsewhere.
    """
    found: list[Finding] = []
    missing: list[str] = []
    problems: dict[str, list[Problem]] = {}
    for entry in spec.entries.values():
        if entry.name not in secrets:
            if entry.required_in(env):
                missing.append(entry.name)
            continue
        value = secrets[entry.name]
        ctx = KindContext(env=env, name=entry.name, secrets=secrets)
        issues = check_value(entry.kind, value, ctx)
        if not issues and entry.min_length and len(value) < entry.min_length:
            issues.append(Problem(f"is shorter than {entry.min_length} characters"))
        if not issues and entry.pattern and not re.fullmatch(entry.pattern, value):
            issues.append(Problem(f"does not match the pattern {entry.pattern!r}"))
        weak = None if issues else weakness(entry.kind, value)
        if weak:
            found.append(_weak(entry.name, secrets, weak, env))
        problems[entry.name] = issues
    found.extend(_key_pair_findings(secrets, spec, problems))
    for name, issues in problems.items():
        found.extend(_invalid(name, secrets, p) for p in issues)
    found.extend(_client_side_leaks(secrets))
    return found, missing


def _key_pair_findings(
    secrets: SecretSet, spec: Spec, problems: dict[str, list[Problem]]
) -> list[Finding]:
    """Swapped or equal anon/service keys: one finding per key, naming both."""
    anon = next((e.name for e in spec.of_kind("supabase_anon_key") if e.name in secrets), None)
    service = next(
        (e.name for e in spec.of_kind("supabase_service_role_key") if e.name in secrets), None
    )
    if not anon or not service:
        return []
    both = f"{anon} and {service}"
    if secrets[anon] == secrets[service]:
        reason = f"{both} hold the same value: each needs its own key"
    elif jwt_role(secrets[anon]) == "service_role" and jwt_role(secrets[service]) == "anon":
        reason = f"{both} are swapped: {anon} holds the service_role key and {service} the anon key"
    else:
        return []
    out = []
    for name in (anon, service):
        # The swap explains the per-key role errors; report it once per key instead.
        problems[name] = [p for p in problems[name] if "carries role" not in p.message]
        out.append(_invalid(name, secrets, Problem(f"is wrong: {reason}")))
    return out


def _client_side_leaks(secrets: SecretSet) -> list[Finding]:
    """A service key under a NEXT_PUBLIC_*/VITE_* name would ship to every browser."""
    return [
        _invalid(
            name,
            secrets,
            Problem("holds a service/secret key under a client-side name; browsers would get it"),
        )
        for name in secrets
        if name.startswith(CLIENT_PREFIXES) and is_service_key(secrets[name])
    ]
