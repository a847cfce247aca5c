"""The secret spec: which secrets exist, when they are required, and how to check them.

The default spec ships the Empire's names; ``[secrets.spec.<NAME>]`` tables in
config override fields of a default entry or declare new secrets. In dev the
Supabase keys and the DSN are optional (the embedded server is used), so a
fresh machine passes ``make up``; outside dev they are required.

Some secrets are required as *either* one set *or* another: a
:class:`SecretGroup` (``[secrets.groups.<name>]``) lists alternatives, each a
set of names that must all be present, and is satisfied by any complete one.
The Supabase API keys are such a group: the publishable and secret keys (or
their JSON forms), or the legacy anon and service_role pair.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.errors import EXIT_SECRETS, ConfigError
from ops.findings import Finding
from ops.secrets.apikeys import PUBLIC, SECRET
from ops.secrets.kinds import (
    KindContext,
    Problem,
    check_value,
    is_service_key,
    key_role,
    weakness,
)
from ops.secrets.model import SecretSet
from ops.secrets.sources.env import CLIENT_PREFIXES

if TYPE_CHECKING:
    from ops.config import Config

OUTSIDE_DEV = ["test", "staging", "prod"]
_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]*")
_GROUP_RE = re.compile(r"[a-z][a-z0-9_]*")


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
    # False for a setting that is resolved through the chain but is not a
    # credential (a host name, a port, an address): it is not checked for
    # weakness, and its value is not redacted from output (docs/decisions/0010).
    secret: bool = True

    def required_in(self, env: str) -> bool:
        if isinstance(self.required, bool):
            return self.required
        return env in self.required


@dataclass(frozen=True)
class SecretGroup:
    """Secrets required as alternatives: any one complete alternative satisfies the group.

    ``one_of`` holds the alternatives in order of preference, each a tuple of
    names that must all be present.
    """

    name: str
    one_of: tuple[tuple[str, ...], ...]
    required: bool | list[str] = False
    description: str = ""

    def required_in(self, env: str) -> bool:
        if isinstance(self.required, bool):
            return self.required
        return env in self.required

    def satisfied(self, present: Container[str]) -> bool:
        return any(all(n in present for n in alt) for alt in self.one_of)

    def alternatives(self) -> str:
        """``A and B, or C and D``: every alternative, by name."""
        return ", or ".join(" and ".join(alt) for alt in self.one_of)

    def gap(self, present: Container[str]) -> str:
        """What the closest alternative lacks, e.g. ``SUPABASE_SECRET_KEY is not``; or ''."""
        best = max(self.one_of, key=lambda alt: sum(n in present for n in alt))
        have = [n for n in best if n in present]
        lack = [n for n in best if n not in present]
        if not have:
            return ""
        verb = "is" if len(have) == 1 else "are"
        return f"{' and '.join(have)} {verb} set but {' and '.join(lack)} not"


# The Empire's secrets. Features that do not exist yet ("required when enabled")
# are optional here; their feature makes them required when it is switched on.
DEFAULT_SPEC: dict[str, dict[str, Any]] = {
    "SUPABASE_URL": {
        "kind": "supabase_url",
        "required": OUTSIDE_DEV,
        "description": "project URL https://<ref>.supabase.co (Settings > API)",
    },
    # Required outside dev as a pair, new or legacy: see DEFAULT_GROUPS.
    "SUPABASE_PUBLISHABLE_KEY": {
        "kind": "supabase_publishable_key",
        "description": "public sb_publishable_ key (Settings > API Keys)",
    },
    "SUPABASE_SECRET_KEY": {
        "kind": "supabase_secret_key",
        "description": "server-only sb_secret_ key (Settings > API Keys)",
    },
    "SUPABASE_PUBLISHABLE_KEYS": {
        "kind": "supabase_publishable_keys",
        "description": 'platform form: JSON {"<key name>": "sb_publishable_…"}',
    },
    "SUPABASE_SECRET_KEYS": {
        "kind": "supabase_secret_keys",
        "description": 'platform form: JSON {"<key name>": "sb_secret_…"}',
    },
    "SUPABASE_ANON_KEY": {
        "kind": "supabase_anon_key",
        "description": "legacy public anon key (JWT) or an sb_publishable_ key",
    },
    "SUPABASE_SERVICE_ROLE_KEY": {
        "kind": "supabase_service_role_key",
        "description": "legacy server-only service_role key (JWT) or an sb_secret_ key",
    },
    "DATABASE_URL": {
        "kind": "postgres_dsn",
        "required": ["staging", "prod"],
        "description": "PostgreSQL DSN; unset in dev/test = the embedded server",
        "aliases": ["SUPABASE_DB_URL"],
    },
    "SUPABASE_JWT_SECRET": {
        "kind": "supabase_jwt_secret",
        "min_length": 32,
        "description": "optional: JWT secret, lets preflight verify the legacy keys' signatures",
    },
    "SUPABASE_JWKS": {
        "kind": "jwks",
        "description": "optional: the project's public JWKS, to verify ES256/RS256 keys",
    },
    "SUPABASE_JWKS_URL": {
        "kind": "url",
        "description": "optional: URL of the project's JWKS (…/auth/v1/.well-known/jwks.json)",
    },
    # The e-mail and webhook alert channels. Only the password and the webhook
    # URL (a Slack webhook URL is a credential) are secret; the rest is
    # addressing, shown as it is (secret = False, docs/decisions/0010).
    "SMTP_HOST": {
        "kind": "hostname",
        "secret": False,
        "description": "alerts: SMTP server host (no port); e-mail alerts are on when it "
        "and ALERT_TO resolve",
    },
    "SMTP_PORT": {
        "kind": "port",
        "secret": False,
        "description": "alerts: SMTP port (default by [alerts.email] tls: 587 starttls, "
        "465 tls, 25 none)",
    },
    "SMTP_USER": {
        "secret": False,
        "description": "alerts: SMTP login name for AUTH (with SMTP_PASSWORD)",
    },
    "SMTP_PASSWORD": {
        "description": "alerts: SMTP password (with SMTP_USER, for servers that ask for AUTH)"
    },
    "ALERT_FROM": {
        "kind": "email",
        "secret": False,
        "description": "alerts: the From address of alert e-mails",
    },
    "ALERT_TO": {
        "kind": "email_list",
        "secret": False,
        "description": "alerts: recipients of alert e-mails, comma-separated",
    },
    "ALERT_WEBHOOK_URL": {
        "kind": "url",
        "description": "alerts: Slack-compatible webhook URL (a credential: whoever holds it "
        "can post)",
    },
    "AWS_ACCESS_KEY_ID": {"description": "backups to S3 / AWS Secrets Manager: access key id"},
    "AWS_SECRET_ACCESS_KEY": {"description": "backups to S3 / AWS Secrets Manager: secret key"},
    "BACKUP_S3_ACCESS_KEY_ID": {"description": "backups: S3-compatible store access key id"},
    "BACKUP_S3_SECRET_ACCESS_KEY": {"description": "backups: S3-compatible store secret key"},
    "DRILL_DATABASE_URL": {
        "kind": "postgres_dsn",
        "description": "drills: a server to restore drills on (when [backup.drill] dsn_secret "
        "names it; default: the embedded PostgreSQL)",
    },
    "BACKUP_AGE_IDENTITY": {
        "description": "backups: the age identity (AGE-SECRET-KEY-1...) that opens encrypted "
        "backups; only where restores and drills run",
    },
    "EMPIRE_SNAPSHOT_PASSPHRASE": {
        "min_length": 12,
        "description": "secrets snapshot: passphrase for the encrypted snapshot",
    },
    "ADMIN_DASHBOARD_TOKEN": {
        "min_length": 32,
        "description": "dashboard: the bearer token `dashboard serve` requires (e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)",
    },
    "EXPORT_PII_KEY": {
        "min_length": 32,
        "description": "optional: the HMAC-SHA256 key `empire-ops export` hashes personal "
        "columns with (without it they are dropped)",
    },
}


# Secrets required as alternatives (see SecretGroup): [secrets.groups.<name>] overrides.
SUPABASE_KEYS_GROUP = "supabase_api_keys"
DEFAULT_GROUPS: dict[str, dict[str, Any]] = {
    SUPABASE_KEYS_GROUP: {
        "required": OUTSIDE_DEV,
        "one_of": [
            ["SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SECRET_KEY"],
            ["SUPABASE_PUBLISHABLE_KEYS", "SUPABASE_SECRET_KEYS"],
            ["SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY"],
        ],
        "description": "the Supabase API keys: the publishable and secret keys, "
        "or the legacy anon and service_role keys",
    },
}

# Names that play the public and the secret key's part, pair by pair (for swaps).
KEY_PAIRS = (
    ("supabase_publishable_key", "supabase_secret_key"),
    ("supabase_publishable_keys", "supabase_secret_keys"),
    ("supabase_anon_key", "supabase_service_role_key"),
)


@dataclass
class Spec:
    """Every declared secret, by canonical name; the groups; the config they came from."""

    entries: dict[str, SecretSpec] = field(default_factory=dict)
    groups: dict[str, SecretGroup] = field(default_factory=dict)
    # For what the checks may read beyond the secrets (the JWKS URL and the
    # https source's client settings): None in unit use.
    config: Config | None = field(default=None, repr=False, compare=False)

    def all_names(self) -> set[str]:
        """Canonical names and aliases."""
        names = set(self.entries)
        for entry in self.entries.values():
            names.update(entry.aliases)
        return names

    def public_names(self) -> set[str]:
        """Names and aliases of the entries declared ``secret = false``."""
        return {
            name
            for entry in self.entries.values()
            if not entry.secret
            for name in (entry.name, *entry.aliases)
        }

    def of_kind(self, kind: str) -> list[SecretSpec]:
        return [e for e in self.entries.values() if e.kind == kind]

    def requirement(self, name: str, present: Container[str]) -> tuple[str, str]:
        """(what is missing, `` — what it is for``) for a missing name or group, never a value.

        For an entry: ``NAME (or ALIAS)``; for a group: every alternative, by
        name, and what the closest one lacks.
        """
        group = self.groups.get(name)
        if group is not None:
            gap = group.gap(present)
            what = f"one of {group.alternatives()} ({gap})" if gap else group.alternatives()
            label = f"{what} [{group.name}]"
            return label, f" — {group.description}" if group.description else ""
        entry = self.entries[name]
        aka = f" (or {', '.join(entry.aliases)})" if entry.aliases else ""
        return f"{name}{aka}", f" — {entry.description}" if entry.description else ""


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
    groups = _load_groups(config, entries)
    return Spec(entries, groups, config)


def _group_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in fields.items() if v is not None}
    if "one_of" in clean:
        clean["one_of"] = tuple(tuple(alt) for alt in clean["one_of"])
    return clean


def _load_groups(
    config: Config | None, entries: Mapping[str, SecretSpec]
) -> dict[str, SecretGroup]:
    """DEFAULT_GROUPS overlaid with ``[secrets.groups]``; ConfigError for an undeclared name."""
    groups = {
        name: replace(SecretGroup(name, ()), **_group_fields(fields))
        for name, fields in DEFAULT_GROUPS.items()
    }
    overrides: Mapping[str, Any] = config.get("secrets.groups") if config is not None else {}
    problems = [
        f"secrets.groups.{n}: {n!r} is not a group name (use lower_snake_case)"
        for n in overrides
        if not _GROUP_RE.fullmatch(n)
    ]
    for name, fields in overrides.items():
        groups[name] = replace(groups.get(name, SecretGroup(name, ())), **_group_fields(fields))
    known = set(entries) | {a for e in entries.values() for a in e.aliases}
    for group in groups.values():
        if not group.one_of and group.required:
            problems.append(f"secrets.groups.{group.name}.one_of: lists no alternative")
        unknown = sorted({n for alt in group.one_of for n in alt} - known)
        if unknown:
            problems.append(
                f"secrets.groups.{group.name}.one_of: {', '.join(unknown)} not declared; "
                "declare them with [secrets.spec.<NAME>]"
            )
    if problems:
        raise ConfigError("; ".join(problems), hint="fix the [secrets.groups.<name>] table")
    return groups


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
    an error in :data:`WEAK_IS_ERROR_IN`, a warning elsewhere; an entry declared
    ``secret = false`` is never weak (it is not redacted either). A required
    group none of whose alternatives is complete is missing by its group name
    (:meth:`Spec.requirement` words it). ES256/RS256 keys are verified against
    the project's JWKS when one is configured (fetched at most once); a JWKS
    that cannot be had is one SECRETS_JWKS_UNAVAILABLE warning.
    """
    from ops.secrets.jwks import ProjectJwks

    found: list[Finding] = []
    missing: list[str] = []
    problems: dict[str, list[Problem]] = {}
    jwks = ProjectJwks(secrets, spec.config)
    for entry in spec.entries.values():
        if entry.name not in secrets:
            if entry.required_in(env):
                missing.append(entry.name)
            continue
        value = secrets[entry.name]
        ctx = KindContext(env=env, name=entry.name, secrets=secrets, jwks=jwks)
        issues = check_value(entry.kind, value, ctx)
        if not issues and entry.min_length and len(value) < entry.min_length:
            issues.append(Problem(f"is shorter than {entry.min_length} characters"))
        if not issues and entry.pattern and not re.fullmatch(entry.pattern, value):
            issues.append(Problem(f"does not match the pattern {entry.pattern!r}"))
        # A value that is not secret is shown, not redacted: too short or too
        # common to redact does not make it weak (SMTP_HOST=localhost, SMTP_PORT=25).
        weak = None if issues or not entry.secret else weakness(entry.kind, value)
        if weak:
            found.append(_weak(entry.name, secrets, weak, env))
        problems[entry.name] = issues
    for group in spec.groups.values():
        if group.required_in(env) and not group.satisfied(secrets):
            missing.append(group.name)
    for public_kind, secret_kind in KEY_PAIRS:
        found.extend(_key_pair_findings(secrets, spec, problems, public_kind, secret_kind))
    for name, issues in problems.items():
        found.extend(_invalid(name, secrets, p) for p in issues)
    found.extend(_client_side_leaks(secrets))
    if jwks.failure:
        subject = jwks.where.split(" ", 1)[0]
        found.append(F.warning("SECRETS_JWKS_UNAVAILABLE", subject, jwks.failure))
    return found, missing


def _key_pair_findings(
    secrets: SecretSet,
    spec: Spec,
    problems: dict[str, list[Problem]],
    public_kind: str,
    secret_kind: str,
) -> list[Finding]:
    """Swapped or equal public/secret keys of one pair: one finding per key, naming both."""
    public = next((e.name for e in spec.of_kind(public_kind) if e.name in secrets), None)
    secret = next((e.name for e in spec.of_kind(secret_kind) if e.name in secrets), None)
    if not public or not secret:
        return []
    both = f"{public} and {secret}"
    if secrets[public] == secrets[secret]:
        reason = f"{both} hold the same value: each needs its own key"
    elif key_role(secrets[public]) == SECRET and key_role(secrets[secret]) == PUBLIC:
        reason = (
            f"{both} are swapped: {public} holds the secret (service) key and {secret} the "
            "public one"
        )
    else:
        return []
    out = []
    for name in (public, secret):
        # The swap explains the per-key role errors; report it once per key instead.
        problems[name] = [p for p in problems[name] if not p.role]
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
