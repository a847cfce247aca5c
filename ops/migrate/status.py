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
from ops.migrate.files import Migration, statements_code, version_key
from ops.migrate.report import FindingsReport
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.config import Config
    from ops.migrate.adopt import AdoptionPlan


PENDING_STATES = ("pending", "out_of_order", "failed", "not_adopted")


def cli_row_matches(mig: Migration, row: history.AppliedRow) -> bool | None:
    """Whether a Supabase CLI row's stored statements are ``mig``'s up section (None: none stored).

    Compared without comments and extra whitespace, so the two tools' ways of
    splitting a file into statements do not matter.
    """
    if row.statements is None:
        return None
    return statements_code(row.statements) == statements_code(s.sql for s in mig.up_statements)


@dataclass
class StatusEntry:
    """One version: local file, database row, or both."""

    version: str
    name: str
    # applied | pending | out_of_order | missing_locally | checksum_mismatch | failed
    # | cli_statements_mismatch | not_adopted (a shipped file not yet in the shared folder)
    state: str
    up_only: bool
    no_transaction: bool
    applied_at: str | None = None
    applied_by: str | None = None
    recorded_by: str | None = None  # "empire-ops" | "supabase-cli" for an applied version


@dataclass
class StatusReport(FindingsReport):
    """The migration status of one database, with findings for preflight."""

    entries: list[StatusEntry] = field(default_factory=list)

    @property
    def pending(self) -> list[StatusEntry]:
        return [e for e in self.entries if e.state in PENDING_STATES]

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
    with db.connect(target.dsn, target.options, autocommit=True) as conn:
        return status_on(conn, target.masked, config, migrations)


def status_on(
    conn: db.Connection[Any],
    masked: str,
    config: Config | None,
    migrations: Sequence[Migration] | None = None,
) -> StatusReport:
    """:func:`migration_status` through a connection the caller holds (the dashboard's)."""
    from ops.migrate import adopt

    settings, local = resolve_migrations(config, migrations)
    applied = history.read_applied(conn, settings.history_schema)
    failed = history.read_failed(conn, settings.history_schema)
    plan = adopt.plan_for(conn, settings) if migrations is None else None
    return build_status(masked, local, applied, failed, plan)


def build_status(
    target: str,
    local: Sequence[Migration],
    applied: dict[str, history.AppliedRow],
    failed: dict[str, history.FailedRow],
    adoption: AdoptionPlan | None = None,
) -> StatusReport:
    """The status report for known local files and history rows. Pure: no I/O.

    ``adoption`` lists shipped files not yet in the folder shared with
    Supabase CLI: they are pending (state ``not_adopted``).
    """
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
            entry.recorded_by = "supabase-cli" if row.by_cli else "empire-ops"
            if mig is None:
                entry.state = "missing_locally"
            elif row.checksum is not None and row.checksum != mig.checksum:
                entry.state = "checksum_mismatch"
            elif row.by_cli and cli_row_matches(mig, row) is False:
                entry.state = "cli_statements_mismatch"
        elif version in failed:
            entry.state = "failed"
        elif newest is not None and version_key(version) < newest:
            entry.state = "out_of_order"
        else:
            entry.state = "pending"
        entries.append(entry)
    for item in adoption.files if adoption else []:
        name = item.filename.split("_", 1)[1].removesuffix(".sql")
        entries.append(StatusEntry(item.version, name, "not_adopted", False, False))
    findings = _status_findings(entries)
    if adoption and adoption.files:
        findings.insert(
            0,
            F.error(
                "MIGRATE_NOT_ADOPTED", str(adoption.folder),
                f"{len(adoption.files)} migration(s) of the Empire schema are not in the folder "
                "shared with Supabase CLI yet: `empire-ops migrate init` writes them there "
                "(and `migrate up` does, before it applies them)",
                details={"files": [f.filename for f in adoption.files]},
            ),
        )  # fmt: skip
    return StatusReport(target, findings, entries)


def _status_findings(entries: list[StatusEntry]) -> list[Finding]:
    def of(state: str) -> list[str]:
        return [f"{e.version}_{e.name}" for e in entries if e.state == state]

    out: list[Finding] = []
    pending = [n for state in PENDING_STATES for n in of(state)]
    if pending:
        out.append(
            F.error(
                "SCHEMA_PENDING_MIGRATIONS",
                f"{len(pending)} migration(s)",
                f"not applied: {', '.join(pending)}",
                details={"versions": [p.split("_", 1)[0] for p in pending]},
            )
        )
    for code, state, text in (
        ("MIGRATE_OUT_OF_ORDER", "out_of_order", "older than the newest applied migration"),
        ("MIGRATE_PARTIAL", "failed", "a no-transaction migration failed part-way"),
        ("MIGRATE_CHECKSUM_MISMATCH", "checksum_mismatch", "file edited after it was applied"),
        (
            "MIGRATE_CLI_STATEMENTS_MISMATCH", "cli_statements_mismatch",
            "file differs from the statements Supabase CLI stored when it applied it",
        ),
    ):  # fmt: skip
        for name in of(state):
            out.append(F.error(code, name, text))
    for name in of("missing_locally"):
        out.append(
            F.warning(
                "MIGRATE_MISSING_LOCALLY",
                name,
                "applied to the database but no local file has this version",
            )
        )
    if not out:
        applied = len(of("applied"))
        out.append(F.ok("MIGRATE_UP_TO_DATE", "migrations", f"all {applied} applied"))
    return out
