"""`migrate verify`: lint the files, then check what the database says about applied ones."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ops import db
from ops import findings as F
from ops.findings import Finding
from ops.migrate import history
from ops.migrate.common import resolve_migrations, strip_comments
from ops.migrate.files import Migration
from ops.migrate.indexes import invalid_indexes
from ops.migrate.report import FindingsReport
from ops.migrate.status import build_status, cli_row_matches
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.config import Config

_TX_CONTROL_RE = re.compile(
    r"^\s*(begin|commit|rollback|start\s+transaction|end|abort)\s*(transaction|work)?\s*$",
    re.IGNORECASE,
)


def lint_migrations(local: Sequence[Migration], shared_dir: Path | None = None) -> list[Finding]:
    """File problems the server would only show mid-run. Pure: no I/O.

    MIGRATE_FILE_INVALID for CONCURRENTLY in a transactional file, explicit
    transaction control (the runner owns transactions), or a plain down section
    in ``shared_dir`` (Supabase CLI would run it right after the up section);
    MIGRATE_UP_ONLY (info).
    """
    out: list[Finding] = []
    for mig in local:
        in_cli_folder = shared_dir is not None and mig.path.parent == shared_dir
        if in_cli_folder and mig.down_sql and not mig.down_commented:
            out.append(_invalid(mig, f"{mig.filename}: its down section is plain SQL in the "
                                "folder Supabase CLI applies, and the CLI runs every line: "
                                "write it as '-- migrate:down:commented' with each line "
                                "commented out ('-- ')"))  # fmt: skip
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
    return F.error("MIGRATE_FILE_INVALID", mig.filename, message)


class VerifyReport(FindingsReport):
    """``migrate verify``: file lints plus what the database says about applied files."""


def verify_migrations(
    target: DatabaseTarget,
    config: Config | None,
    migrations: Sequence[Migration] | None = None,
) -> VerifyReport:
    """Lint the files, then check applied ones: checksums, missing files, INVALID indexes.

    Only checksums empire-ops recorded are claimed as matching: a version
    Supabase CLI applied has none, so its file is compared with the statements
    the CLI stored (MIGRATE_APPLIED_BY_CLI, info, when they agree;
    MIGRATE_CLI_STATEMENTS_MISMATCH, error, when not). Pending migrations are
    info here (``status`` treats them as an error). A malformed file is a
    MIGRATE_FILE_INVALID finding, not an exception. Read-only. Raises
    DatabaseUnreachable (exit 4).
    """
    from ops.migrate import adopt
    from ops.migrate.errors import MigrationFileError

    try:
        settings, local = resolve_migrations(config, migrations)
        with db.connect(target.dsn, target.options, autocommit=True) as conn:
            applied = history.read_applied(conn, settings.history_schema)
            failed = history.read_failed(conn, settings.history_schema)
            invalid = invalid_indexes(conn, [m for m in local if m.version in applied])
            plan = adopt.plan_for(conn, settings) if migrations is None else None
    except MigrationFileError as exc:
        finding = F.error("MIGRATE_FILE_INVALID", "migrations", exc.message)
        return VerifyReport(target.masked, [finding])
    findings = lint_migrations(local, settings.shared_dir)
    status = build_status(target.masked, local, applied, failed, plan)
    for f in status.findings:
        if f.code in ("SCHEMA_PENDING_MIGRATIONS", "MIGRATE_NOT_ADOPTED"):
            findings.append(F.info(f.code, f.subject, f.message))
        elif f.code != "MIGRATE_UP_TO_DATE":
            findings.append(f)
    by_cli = {m.version: m for m in local if m.version in applied and applied[m.version].by_cli}
    for version, mig in by_cli.items():
        match = cli_row_matches(mig, applied[version])
        if match is None:
            findings.append(F.info("MIGRATE_APPLIED_BY_CLI", mig.filename, "applied by Supabase "
                                   "CLI, which stored no statements: not compared"))  # fmt: skip
        elif match:
            findings.append(F.info("MIGRATE_APPLIED_BY_CLI", mig.filename, "applied by Supabase "
                                   "CLI; the file matches the statements it stored"))  # fmt: skip
    for index in invalid:
        findings.append(
            F.error(
                "MIGRATE_INVALID_INDEX", index,
                "INVALID index left by a failed concurrent build; `migrate up` rebuilds it",
            )
        )  # fmt: skip
    if not any(f.is_problem for f in findings):
        ours = sum(1 for m in local if m.version in applied and not applied[m.version].by_cli)
        cli = f", {len(by_cli)} applied by Supabase CLI matching its statements" if by_cli else ""
        findings.append(
            F.ok("MIGRATE_VERIFIED", "migrations", f"{len(local)} files checked, "
                 f"{ours} applied with matching checksums{cli}")
        )  # fmt: skip
    return VerifyReport(target.masked, findings)
