"""`migrate status`: which versions are applied, pending, out of order, edited or missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.findings import Finding
from ops.migrate import history
from ops.migrate.common import resolve_migrations
from ops.migrate.files import Migration, version_key
from ops.migrate.report import FindingsReport
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.config import Config


@dataclass
class StatusEntry:
    """One version: local file, database row, or both."""

    version: str
    name: str
    state: str  # applied | pending | out_of_order | missing_locally | checksum_mismatch | failed
    up_only: bool
    no_transaction: bool
    applied_at: str | None = None
    applied_by: str | None = None


@dataclass
class StatusReport(FindingsReport):
    """The migration status of one database, with findings for preflight."""

    entries: list[StatusEntry] = field(default_factory=list)

    @property
    def pending(self) -> list[StatusEntry]:
        return [e for e in self.entries if e.state in ("pending", "out_of_order", "failed")]

    def extra(self) -> dict[str, Any]:
        return {"migrations": [asdict(e) for e in self.entries]}


def migration_status(
    target: DatabaseTarget,
    config: Config | None,
    migrations: Sequence[Migration] | None = None,
) -> StatusReport:
    """Applied, pending, out-of-order, missing-locally, checksum-mismatch and failed versions.

    Read-only (no lock, creates nothing). Findings: SCHEMA_PENDING_MIGRATIONS
    (error), MIGRATE_OUT_OF_ORDER (error), MIGRATE_CHECKSUM_MISMATCH (error),
    MIGRATE_PARTIAL (error), MIGRATE_MISSING_LOCALLY (warning), or
    MIGRATE_UP_TO_DATE (ok). Raises DatabaseUnreachable (exit 4).
    """
    settings, local = resolve_migrations(config, migrations)
    with db.connect(target.dsn, target.options, autocommit=True) as conn:
        applied = history.read_applied(conn, settings.history_schema)
        failed = history.read_failed(conn, settings.history_schema)
    return build_status(target.masked, local, applied, failed)


def build_status(
    target: str,
    local: Sequence[Migration],
    applied: dict[str, history.AppliedRow],
    failed: dict[str, history.FailedRow],
) -> StatusReport:
    """The status report for known local files and history rows. Pure: no I/O."""
    newest = max((version_key(v) for v in applied), default=None)
    entries: list[StatusEntry] = []
    by_version = {m.version: m for m in local}
    for version in sorted(set(by_version) | set(applied), key=version_key):
        mig, row = by_version.get(version), applied.get(version)
        name = mig.name if mig else (row.name if row and row.name else "")
        entry = StatusEntry(
            version, name, "applied", bool(mig and mig.up_only), bool(mig and mig.no_transaction)
        )
        if row is not None:
            entry.applied_at = row.applied_at.isoformat() if row.applied_at else None
            entry.applied_by = row.applied_by
            if mig is None:
                entry.state = "missing_locally"
            elif row.checksum is not None and row.checksum != mig.checksum:
                entry.state = "checksum_mismatch"
        elif version in failed:
            entry.state = "failed"
        elif newest is not None and version_key(version) < newest:
            entry.state = "out_of_order"
        else:
            entry.state = "pending"
        entries.append(entry)
    return StatusReport(target, _status_findings(entries), entries)


def _status_findings(entries: list[StatusEntry]) -> list[Finding]:
    def of(state: str) -> list[str]:
        return [f"{e.version}_{e.name}" for e in entries if e.state == state]

    out: list[Finding] = []
    pending = of("pending") + of("out_of_order") + of("failed")
    if pending:
        out.append(
            F.error(
                "SCHEMA_PENDING_MIGRATIONS",
                f"{len(pending)} migration(s)",
                f"not applied: {', '.join(pending)}",
                runbook="runbooks/SCHEMA_PENDING_MIGRATIONS.md",
                details={"versions": [p.split("_", 1)[0] for p in pending]},
            )
        )
    for code, state, text in (
        ("MIGRATE_OUT_OF_ORDER", "out_of_order", "older than the newest applied migration"),
        ("MIGRATE_PARTIAL", "failed", "a no-transaction migration failed part-way"),
        ("MIGRATE_CHECKSUM_MISMATCH", "checksum_mismatch", "file edited after it was applied"),
    ):
        for name in of(state):
            out.append(F.error(code, name, text, runbook=f"runbooks/{code}.md"))
    for name in of("missing_locally"):
        out.append(
            F.warning(
                "MIGRATE_MISSING_LOCALLY",
                name,
                "applied to the database but no local file has this version",
                runbook="runbooks/MIGRATE_MISSING_LOCALLY.md",
            )
        )
    if not out:
        applied = len(of("applied"))
        out.append(F.ok("MIGRATE_UP_TO_DATE", "migrations", f"all {applied} applied"))
    return out
