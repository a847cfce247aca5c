"""Load the chain: ask each source in order, merge first-hit-wins, validate, report.

Precedence is the order of ``secrets.chain`` (default env > dotenv > vault >
awssm > https); a name takes its value from the first source that holds it,
and remembers which (provenance). An *unavailable* source falls through (to
its cache when allowed, else to the next source); *access denied* is a hard
error (exit 4) and deletes that source's cache. Remote sources share one time
budget, so a dead Vault cannot hang a boot. See docs/decisions/.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.config import format_duration
from ops.errors import EXIT_SECRETS, EXIT_UNREACHABLE
from ops.findings import Finding
from ops.logs import forget_public_values, register_secret_values
from ops.secrets.cache import SecretsCache
from ops.secrets.errors import (
    SourceAccessDenied,
    SourceError,
    SourceInvalid,
    SourceNotFound,
    SourceUnavailable,
    gap_error,
)
from ops.secrets.model import SecretSet, SecretValue
from ops.secrets.sources import configured_source
from ops.secrets.sources.base import SecretSource
from ops.secrets.spec import Spec, load_spec, validate

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)


@dataclass
class SourceStatus:
    """How one source of the chain answered. ``status`` is one of: ok, absent, skipped,
    unavailable, stale-cache, denied, not-found, invalid."""

    name: str
    where: str
    status: str
    count: int = 0
    seconds: float = 0.0
    note: str = ""

    def line(self) -> str:
        extra = f"; {self.note}" if self.note else ""
        return f"{self.name} ({self.where}): {self.status}, {self.count} names{extra}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "where": self.where,
            "status": self.status,
            "count": self.count,
            "seconds": round(self.seconds, 3),
            "note": self.note,
        }


@dataclass
class LoadResult:
    """The merged secrets, every finding about them, and how each source answered."""

    secrets: SecretSet
    findings: list[Finding]
    sources: list[SourceStatus]
    spec: Spec
    missing: list[str] = field(default_factory=list)

    @property
    def consulted(self) -> list[str]:
        """Source names in chain order with their status, e.g. ``"vault: unavailable"``."""
        return [f"{s.name}: {s.status}" for s in self.sources]

    @property
    def exit_code(self) -> int:
        return F.exit_code_for(self.findings)

    def raise_on_gap(self) -> None:
        """Raise SecretMissing on any error finding; its class has the findings' exit code."""
        problems = [f for f in self.findings if f.is_problem]
        if problems:
            names = ", ".join(sorted({f.subject for f in problems}))
            raise gap_error(
                self.exit_code,
                f"secrets have {len(problems)} problem(s): {names}",
                hint="run `empire-ops preflight` for the full report",
            )


class _Chain:
    """One run of the chain; holds the layers so later sources can look up earlier secrets."""

    def __init__(self, config: Config, offline: bool) -> None:
        self.config = config
        self.offline = offline
        self.layers: list[dict[str, SecretValue]] = []
        self.findings: list[Finding] = []
        self.statuses: list[SourceStatus] = []
        self.unavailable: list[str] = []
        self.denied: list[str] = []
        self.cache = (
            SecretsCache(config, self.lookup) if config.get("secrets.cache.enabled") else None
        )
        self.budget = config.seconds("secrets.remote_budget")
        self.deadline: float | None = None

    def lookup(self, name: str) -> str | None:
        for layer in self.layers:
            if name in layer:
                return layer[name].value
        return os.environ.get(name) or None

    def run(self, names: list[str]) -> None:
        for name in names:
            source = configured_source(name, self.config)
            if not source.configured:
                self.statuses.append(SourceStatus(name, source.describe(), "skipped"))
                continue
            source.lookup = self.lookup
            if source.remote:
                if self.deadline is None:
                    self.deadline = time.monotonic() + self.budget
                source.deadline = self.deadline
            started = time.monotonic()
            status = self._consult(source)
            status.seconds = time.monotonic() - started
            self.statuses.append(status)
            self.findings.extend(source.notes)

    def _consult(self, source: SecretSource) -> SourceStatus:
        where = source.describe()
        if self.offline and source.remote:
            return self._fallback(source, "--offline")
        try:
            values = source.fetch()
        except SourceUnavailable as exc:
            return self._fallback(source, exc.message)
        except SourceAccessDenied as exc:
            self._drop_cache(source)
            self.denied.append(source.name)
            self.findings.append(
                F.critical(
                    "SECRETS_SOURCE_DENIED",
                    source.name,
                    f"{source.label} refused access: {exc.message}. Not falling through; "
                    "its cache was deleted.",
                    exit_code=EXIT_UNREACHABLE,
                )
            )
            return SourceStatus(source.name, where, "denied", note=exc.message)
        except SourceNotFound as exc:
            self._drop_cache(source)
            self.findings.append(
                F.warning(
                    "SECRETS_SOURCE_NOT_FOUND",
                    source.name,
                    f"{source.label}: {exc.message}",
                )
            )
            return SourceStatus(source.name, where, "not-found", note=exc.message)
        except SourceInvalid as exc:
            self.findings.append(
                F.error(
                    "SECRETS_SOURCE_INVALID",
                    source.name,
                    f"{source.label}: {exc.message}",
                    exit_code=EXIT_SECRETS,
                )
            )
            return SourceStatus(source.name, where, "invalid", note=exc.message)
        self.layers.append(values)
        if source.remote and self.cache is not None:
            self.cache.store(source.name, where, values)
        return SourceStatus(source.name, where, "ok" if values else "absent", len(values))

    def _fallback(self, source: SecretSource, reason: str) -> SourceStatus:
        where = source.describe()
        cached = self.cache.load(source.name, where) if self.cache is not None else None
        if cached is None:
            self.unavailable.append(source.name)
            self.findings.append(
                F.warning(
                    "SECRETS_SOURCE_UNAVAILABLE",
                    source.name,
                    f"{source.label} is unavailable ({reason}) and has no usable cache; "
                    "falling through to the next source",
                )
            )
            return SourceStatus(source.name, where, "unavailable", note=reason)
        register_secret_values(v.value for v in cached.values.values())
        self.layers.append(cached.values)
        self.findings.append(
            F.warning(
                "SECRETS_STALE_CACHE",
                source.name,
                f"{source.label} is unavailable ({reason}); using its cached values from "
                f"{format_duration(cached.age_seconds)} ago ({len(cached.values)} names)",
            )
        )
        return SourceStatus(
            source.name,
            where,
            "stale-cache",
            len(cached.values),
            note=f"{format_duration(cached.age_seconds)} old",
        )

    def _drop_cache(self, source: SecretSource) -> None:
        if self.cache is not None:
            self.cache.drop(source.name)

    def forget_public(self, spec: Spec, secrets: SecretSet) -> None:
        """Take the resolved values of ``secret = false`` entries out of redaction.

        Every other value any source returned (shadowed ones and stale caches
        included) is passed as secret, so a value that is also a secret's, or
        part of one, stays redacted (:func:`ops.logs.forget_public_values`).
        """
        public_names = spec.public_names()
        public = [secrets[n] for n in public_names if n in secrets]
        if not public:
            return
        keep = [v for n, v in secrets.items() if n not in public_names]
        keep += [
            v.value for layer in self.layers for n, v in layer.items() if n not in public_names
        ]
        forget_public_values(public, keep)

    def merged(self, spec: Spec) -> SecretSet:
        values: dict[str, SecretValue] = {}
        for layer in self.layers:
            for name, value in layer.items():
                values.setdefault(name, value)
        # An alias fills its canonical name only when no source set the canonical one.
        for entry in spec.entries.values():
            if entry.name in values:
                continue
            for alias in entry.aliases:
                if alias in values:
                    v = values[alias]
                    values[entry.name] = SecretValue(
                        entry.name, v.value, v.source, f"{v.detail} as alias {alias}".strip()
                    )
                    break
        return SecretSet(values)


def local_secrets(config: Config) -> dict[str, str]:
    """Values of the chain's local (non-remote) sources, first hit wins; errors are skipped.

    Remote sources use this standalone (``secrets sync``/``diff``) to find the
    token or bearer secret they need, as they would inside the full chain.
    """
    values: dict[str, str] = {}
    for name in config.get("secrets.chain"):
        source = configured_source(name, config)
        if source.remote or not source.configured:
            continue
        try:
            fetched = source.fetch()
        except SourceError:
            continue
        for key, value in fetched.items():
            values.setdefault(key, value.value)
    return values


def load_secrets(
    config: Config, *, offline: bool = False, chain: list[str] | None = None
) -> LoadResult:
    """Load, merge and validate the secrets of ``config``'s chain. Never raises for a gap.

    Every gap becomes a finding: SECRETS_MISSING / SECRETS_INVALID (exit 3),
    SECRETS_SOURCE_DENIED (exit 4), SECRETS_SOURCE_UNAVAILABLE (a warning, or
    exit 4 when a required secret may be missing because of it),
    SECRETS_STALE_CACHE (warning). Every loaded value is registered for
    redaction, except the values of entries declared ``secret = false``
    (unless a secret holds the same value or contains it). ``offline`` makes
    remote sources use their cache only.
    Raises ConfigError for an unknown source name in the chain.
    """
    spec = load_spec(config)
    run = _Chain(config, offline)
    run.run(chain if chain is not None else list(config.get("secrets.chain")))
    secrets = run.merged(spec)
    register_secret_values(secrets.values())
    run.forget_public(spec, secrets)
    checks, missing = validate(secrets, spec, config.env)
    findings = run.findings + checks
    consulted = ", ".join(s.name for s in run.statuses if s.status != "skipped") or "no source"
    for name in missing:
        # A name, or a group of alternatives (e.g. the new or the legacy Supabase keys).
        label, what = spec.requirement(name, secrets)
        if run.unavailable or run.denied:
            # The source that could not be read may hold it: the cause is exit 4, not 3.
            down = ", ".join(
                [f"{n} could not be reached" for n in run.unavailable]
                + [f"{n} refused access" for n in run.denied]
            )
            findings.append(
                F.error(
                    "SECRETS_MISSING",
                    name,
                    f"{label} is required in {config.env} and was not found; {down} "
                    f"and may hold it (consulted: {consulted})",
                    runbook="runbooks/SECRETS_SOURCE_"
                    + ("UNAVAILABLE.md" if run.unavailable else "DENIED.md"),
                    exit_code=EXIT_UNREACHABLE,
                )
            )
        else:
            findings.append(
                F.error(
                    "SECRETS_MISSING",
                    name,
                    f"{label} is required in {config.env} but no source has it "
                    f"(consulted: {consulted}); add it to .env or your secret store{what}",
                    exit_code=EXIT_SECRETS,
                )
            )
    if missing and run.unavailable:
        findings = [_escalate(f) for f in findings]
    log.debug(
        "secrets loaded: %d names; %s", len(secrets), "; ".join(s.line() for s in run.statuses)
    )
    return LoadResult(secrets, findings, run.statuses, spec, missing)


def _escalate(finding: Finding) -> Finding:
    """An unavailable source that hides a required secret is an error (exit 4)."""
    if finding.code != "SECRETS_SOURCE_UNAVAILABLE":
        return finding
    return F.error(
        finding.code,
        finding.subject,
        finding.message.replace("falling through", "a required secret is missing because of it"),
        runbook=finding.runbook,
        exit_code=EXIT_UNREACHABLE,
    )


__all__ = ["LoadResult", "SourceStatus", "load_secrets", "local_secrets"]
