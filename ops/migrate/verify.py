"""`migrate verify`: lint the files, then check what the database says about applied ones."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ops import db
from ops import findings as F
from ops.findings import Finding
from ops.migrate import history
from ops.migrate.common import resolve_migrations, strip_comments
from ops.migrate.files import Migration
from ops.migrate.indexes import invalid_indexes
from ops.migrate.report import FindingsReport
from ops.migrate.status import build_status
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.config import Config

_TX_CONTROL_RE = re.compile(
    r"^\s*(begin|commit|rollback|start\s+transaction|end|abort)\s*(transaction|work)?\s*$",
    re.IGNORECASE,
)


def lint_migrations(local: Sequence[Migration]) -> list[Finding]:
    """File problems the server would only show mid-run. Pure: no I/O.

    MIGRATE_FILE_INVALID for CONCURRENTLY in a transactional file, or explicit
    transaction control (the runner owns transactions); MIGRATE_UP_ONLY (info).
    """
    out: list[Finding] = []
    for mig in local:
        for section, statements in (("up", mig.up_statements), ("down", mig.down_statements)):
            for stmt in statements:
                code = strip_comments(stmt.sql)
                where = f"{mig.filename}:{stmt.line} ({section})"
                if _TX_CONTROL_RE.match(code):
                    out.append(_invalid(mig, f"{where}: remove {code.strip()!r}; the runner "
                                        "runs each file in one transaction"))  # fmt: skip
                elif not mig.no_transaction and re.search(r"\bconcurrently\b", code, re.I):
                    msg = f"{where}: CONCURRENTLY cannot run in a transaction; add a line "
                    out.append(_invalid(mig, msg + "'-- migrate:no-transaction'"))
        if mig.up_only:
            out.append(F.info("MIGRATE_UP_ONLY", mig.filename, "no down section: cannot revert"))
    return out


def _invalid(mig: Migration, message: str) -> Finding:
    return F.error(
        "MIGRATE_FILE_INVALID", mig.filename, message, runbook="runbooks/MIGRATE_FILE_INVALID.md"
    )


class VerifyReport(FindingsReport):
    """``migrate verify``: file lints plus what the database says about applied files."""


def verify_migrations(
    target: DatabaseTarget,
    config: Config | None,
    migrations: Sequence[Migration] | None = None,
) -> VerifyReport:
    """Lint the files, then check applied ones: checksums, missing files, INVALID indexes.

    Pending migrations are reported as info here (``status`` treats them as an
    error). A malformed file is a MIGRATE_FILE_INVALID finding, not an
    exception. Read-only. Raises DatabaseUnreachable (exit 4).
    """
    from ops.migrate.errors import MigrationFileError

    try:
        settings, local = resolve_migrations(config, migrations)
    except MigrationFileError as exc:
        finding = F.error(
            "MIGRATE_FILE_INVALID", "migrations", exc.message,
            runbook="runbooks/MIGRATE_FILE_INVALID.md",
        )  # fmt: skip
        return VerifyReport(target.masked, [finding])
    findings = lint_migrations(local)
    with db.connect(target.dsn, target.options, autocommit=True) as conn:
        applied = history.read_applied(conn, settings.history_schema)
        failed = history.read_failed(conn, settings.history_schema)
        invalid = invalid_indexes(conn, [m for m in local if m.version in applied])
    status = build_status(target.masked, local, applied, failed)
    for f in status.findings:
        if f.code == "SCHEMA_PENDING_MIGRATIONS":
            findings.append(F.info(f.code, f.subject, f.message))
        elif f.code != "MIGRATE_UP_TO_DATE":
            findings.append(f)
    for index in invalid:
        findings.append(
            F.error(
                "MIGRATE_INVALID_INDEX", index,
                "INVALID index left by a failed concurrent build; `migrate up` rebuilds it",
                runbook="runbooks/MIGRATE_INVALID_INDEX.md",
            )
        )  # fmt: skip
    if not any(f.is_problem for f in findings):
        findings.append(
            F.ok("MIGRATE_VERIFIED", "migrations", f"{len(local)} files checked, "
                 f"{len(applied)} applied with matching checksums")
        )  # fmt: skip
    return VerifyReport(target.masked, findings)
