"""The migration runner: status, up, down and verify, under one session-level lock.

Invariants:

- Every run that writes holds the session-level advisory lock ``migrate``
  (tried for ``database.lock_timeout``; LockBusy, exit 5, when busy). A
  session lock survives the per-file transactions and never blocks inside
  the server, so ``CREATE INDEX CONCURRENTLY`` cannot deadlock on it.
- A transactional file runs in ONE transaction together with its two
  history rows: it is applied with its history, or not at all.
- A ``-- migrate:no-transaction`` file runs statement by statement in
  autocommit; its history rows are written last. Before each
  ``CREATE INDEX CONCURRENTLY`` an INVALID index of the same name (left by a
  failed build) is dropped, so the rebuild is real and not skipped by
  ``IF NOT EXISTS``; every ``up`` also rebuilds invalid indexes of applied files.
- Local files older than the newest applied one, not yet applied, are
  refused unless ``include_all``; down refuses up-only files.
- SQL from files is sent without parameters (files use ``%`` in ``format()``).
"""

from __future__ import annotations

import getpass
import logging
import re
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.errors import UsageError
from ops.findings import Finding
from ops.migrate import history
from ops.migrate.errors import (
    DownRefused,
    ExtensionUnavailable,
    MigrationFailed,
    OutOfOrder,
)
from ops.migrate.files import SHIPPED_DIR, Migration, Statement, load_migrations, version_key
from ops.migrate.report import FindingsReport
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)

LOCK_NAME = "migrate"
DEFAULT_LOCK_TIMEOUT = 10.0
DEFAULT_HISTORY_SCHEMA = "ops"

_CONCURRENT_INDEX_RE = re.compile(
    r"^\s*create\s+(?:unique\s+)?index\s+concurrently\s+(?:if\s+not\s+exists\s+)?"
    r"(?P<index>\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_$]*)\s+on\s+(?:only\s+)?"
    r"(?P<table>(?:(?:\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_$]*)\.)?(?:\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_$]*))",
    re.IGNORECASE,
)
_EXTENSION_RE = re.compile(
    r"create\s+extension\s+(?:if\s+not\s+exists\s+)?\"?(?P<name>[A-Za-z0-9_\-]+)\"?",
    re.IGNORECASE,
)
# Server errors that mean "this extension is not installed on the server".
_NO_EXTENSION_STATES = {"0A000", "58P01"}


def default_actor() -> str:
    """Who is running: ``user@host`` (recorded as ``applied_by``)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in a container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class RunnerSettings:
    """What the runner takes from config (defaults when there is none)."""

    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    history_schema: str = DEFAULT_HISTORY_SCHEMA
    dirs: tuple[Path, ...] = (SHIPPED_DIR,)

    @classmethod
    def from_config(cls, config: Config | None) -> RunnerSettings:
        if config is None:
            return cls()
        extra = tuple(config.resolve_path(d) for d in config.get("migrate.dirs"))
        return cls(
            lock_timeout=config.seconds("database.lock_timeout"),
            history_schema=config.get("migrate.history_schema"),
            dirs=(SHIPPED_DIR, *extra),
        )


def migrations_for(config: Config | None) -> list[Migration]:
    """The shipped migrations plus the folders named in ``[migrate] dirs``, by version."""
    return load_migrations(list(RunnerSettings.from_config(config).dirs))


# -- results --------------------------------------------------------------------------
@dataclass
class StepOutcome:
    """One migration applied or reverted (or planned, on a dry run)."""

    version: str
    name: str
    direction: str
    statements: int
    no_transaction: bool
    duration_ms: int = 0


@dataclass
class MigrateResult:
    """What ``migrate up``/``down`` did (or would do, with ``dry_run``)."""

    target: str
    direction: str
    dry_run: bool
    steps: list[StepOutcome] = field(default_factory=list)
    rebuilt_indexes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


# -- pure planning --------------------------------------------------------------------
def plan_up(
    local: Sequence[Migration],
    applied: set[str],
    *,
    to: str | None = None,
    include_all: bool = False,
) -> list[Migration]:
    """The migrations ``up`` applies, in order. Pure: no I/O.

    Raises UsageError when ``to`` names no local migration, OutOfOrder when a
    pending file is older than the newest applied version and not ``include_all``.
    """
    if to is not None and to not in {m.version for m in local}:
        raise UsageError(
            f"--to {to}: no local migration has that version",
            hint="see the versions with `empire-ops migrate status`",
        )
    pending = [m for m in local if m.version not in applied]
    if to is not None:
        pending = [m for m in pending if version_key(m.version) <= version_key(to)]
    newest = max((version_key(v) for v in applied), default=None)
    older = [m for m in pending if newest is not None and m.sort_key < newest]
    if older and not include_all:
        names = ", ".join(m.filename for m in older)
        raise OutOfOrder(
            f"{len(older)} local migration(s) are older than the newest applied one "
            f"({max(applied, key=version_key)}) and not applied: {names}",
            hint="rename them with a newer timestamp, or apply them anyway with --include-all",
        )
    return pending


@dataclass(frozen=True)
class DownStep:
    """One applied version to revert, with the SQL to do it."""

    version: str
    name: str
    statements: list[Statement]
    no_transaction: bool
    checksum: str | None


def plan_down(
    local: Sequence[Migration], applied: dict[str, history.AppliedRow], to: str
) -> list[DownStep]:
    """The applied versions newer than ``to``, newest first, with their down SQL. Pure.

    ``to`` is ``0`` (revert everything) or a version. A file deleted locally is
    reverted with the down SQL recorded when it was applied. Raises UsageError
    for a malformed ``to``, DownRefused when any of them is up-only.
    """
    if not to.isdigit():
        raise UsageError(f"--to {to!r} is not a version", hint="use a version number, or 0")
    by_version = {m.version: m for m in local}
    if to != "0" and to not in by_version and to not in applied:
        raise UsageError(
            f"--to {to}: no migration has that version",
            hint="see the versions with `empire-ops migrate status`, or use --to 0",
        )
    steps: list[DownStep] = []
    refused: list[str] = []
    for version in sorted(applied, key=version_key, reverse=True):
        if version_key(version) <= version_key(to):
            continue
        row, mig = applied[version], by_version.get(version)
        if mig is not None and not mig.up_only:
            steps.append(
                DownStep(version, mig.name, mig.down_statements, mig.no_transaction, mig.checksum)
            )
        elif mig is None and row.down_sql is not None:
            from ops.migrate.files import split_statements

            steps.append(
                DownStep(
                    version,
                    row.name or "",
                    split_statements(row.down_sql),
                    row.no_transaction,
                    row.checksum,
                )
            )
        else:
            refused.append(mig.filename if mig else f"{version}_{row.name or '?'} (not local)")
    if refused:
        raise DownRefused(
            f"cannot revert up-only migration(s): {', '.join(refused)}",
            hint="up-only files (Supabase CLI format, or without '-- migrate:down') cannot be "
            "reverted; pick a --to at or after the newest of them",
        )
    return steps


# -- connection and lock --------------------------------------------------------------
@contextmanager
def _locked(target: DatabaseTarget, settings: RunnerSettings) -> Iterator[db.Connection[Any]]:
    conn = db.connect(target.dsn, target.options, autocommit=True)
    try:
        with db.advisory_lock(conn, LOCK_NAME, settings.lock_timeout):
            history.ensure_history(conn, settings.history_schema)
            yield conn
    finally:
        conn.close()


def _server_error(exc: BaseException) -> tuple[str, str | None]:
    """(one-line server message, SQLSTATE) of a driver error."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) or str(exc).strip().splitlines()[0]
    detail = getattr(diag, "message_detail", None)
    text = f"{primary} ({detail})" if detail else primary
    return text, getattr(exc, "sqlstate", None)


def _failure(
    mig_file: str, stmt: Statement, index: int, total: int, exc: BaseException, rolled_back: bool
) -> MigrationFailed:
    message, sqlstate = _server_error(exc)
    where = f"{mig_file}:{stmt.line} (statement {index}/{total}: {stmt.summary})"
    ext = _EXTENSION_RE.search(stmt.sql)
    if ext and sqlstate in _NO_EXTENSION_STATES:
        name = ext.group("name")
        return ExtensionUnavailable(
            f"{mig_file}: the PostgreSQL extension `{name}` is not available on this server "
            f"(server said: {message})",
            extension=name,
            hint=f"install the `{name}` extension on the server (for pgvector: the "
            "postgresql-<major>-pgvector package), or use the embedded PostgreSQL 18, "
            "which ships it",
        )
    state = f" [{sqlstate}]" if sqlstate else ""
    outcome = (
        "rolled back; schema and history are unchanged"
        if rolled_back
        else "earlier statements of this no-transaction file stay applied"
    )
    hint = "fix the statement and rerun `empire-ops migrate up`"
    if sqlstate == "25001":
        hint = "mark the file with a '-- migrate:no-transaction' line (CONCURRENTLY cannot run " \
            "in a transaction)"  # fmt: skip
    return MigrationFailed(f"{where} failed: {message}{state}; {outcome}", hint=hint)


def _run_statements(
    conn: db.Connection[Any], filename: str, statements: list[Statement], *, rolled_back: bool
) -> None:
    for i, stmt in enumerate(statements, start=1):
        try:
            conn.execute(stmt.sql)
        except db.PsycopgError as exc:
            raise _failure(filename, stmt, i, len(statements), exc, rolled_back) from None


def _drop_invalid_index(conn: db.Connection[Any], stmt: Statement) -> str | None:
    """Drop the INVALID index a failed ``CREATE INDEX CONCURRENTLY`` of ``stmt`` left behind."""
    match = _CONCURRENT_INDEX_RE.match(_strip_comments(stmt.sql))
    if not match:
        return None
    index = match.group("index").strip('"')
    rows = db.run_query(
        conn,
        "select format('%%I.%%I', n.nspname, ic.relname) as ident from pg_index i "
        "join pg_class ic on ic.oid = i.indexrelid "
        "join pg_namespace n on n.oid = ic.relnamespace "
        "where ic.relname = %s and i.indrelid = to_regclass(%s) and not i.indisvalid",
        (index, match.group("table")),
    )
    if not rows:
        return None
    ident = str(rows[0]["ident"])
    log.warning("dropping INVALID index %s left by a failed concurrent build", ident)
    conn.execute(db.SQL("drop index concurrently if exists {}").format(db.SQL(ident)))
    return ident


def _strip_comments(sql: str) -> str:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return "\n".join(lines)


def _apply(
    conn: db.Connection[Any], mig: Migration, settings: RunnerSettings, actor: str
) -> tuple[StepOutcome, list[str]]:
    started = time.monotonic()
    statements = mig.up_statements
    rebuilt: list[str] = []
    log.info("applying %s%s", mig.filename, " (no transaction)" if mig.no_transaction else "")
    if mig.no_transaction:
        for i, stmt in enumerate(statements, start=1):
            dropped = _drop_invalid_index(conn, stmt)
            if dropped:
                rebuilt.append(dropped)
            try:
                conn.execute(stmt.sql)
            except db.PsycopgError as exc:
                err = _failure(mig.filename, stmt, i, len(statements), exc, False)
                _record_failure(conn, settings, mig, actor, started, err.message)
                raise err from None
        with conn.transaction():
            history.record_up(
                conn, settings.history_schema, mig, actor=actor, duration_ms=_ms(started)
            )
    else:
        with conn.transaction():
            _run_statements(conn, mig.filename, statements, rolled_back=True)
            history.record_up(
                conn, settings.history_schema, mig, actor=actor, duration_ms=_ms(started)
            )
    outcome = StepOutcome(
        mig.version, mig.name, "up", len(statements), mig.no_transaction, _ms(started)
    )
    log.info("applied %s in %d ms", mig.filename, outcome.duration_ms)
    return outcome, rebuilt


def _record_failure(
    conn: db.Connection[Any],
    settings: RunnerSettings,
    mig: Migration,
    actor: str,
    started: float,
    error: str,
) -> None:
    try:
        with conn.transaction():
            history.record_failure(
                conn,
                settings.history_schema,
                mig,
                actor=actor,
                duration_ms=_ms(started),
                error=error,
            )
    except db.PsycopgError as exc:  # the connection may be gone; the raise that follows matters
        log.warning("could not record the failure of %s: %s", mig.filename, exc)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _invalid_index_statements(
    conn: db.Connection[Any], applied: list[Migration]
) -> list[tuple[str, Statement]]:
    """(index, its CREATE statement) for INVALID indexes built by applied no-transaction files."""
    candidates: list[tuple[str, Statement]] = []
    for mig in applied:
        if not mig.no_transaction:
            continue
        for stmt in mig.up_statements:
            match = _CONCURRENT_INDEX_RE.match(_strip_comments(stmt.sql))
            if match:
                candidates.append((match.group("index").strip('"'), stmt))
    if not candidates:
        return []
    rows = db.run_query(
        conn,
        "select ic.relname from pg_index i join pg_class ic on ic.oid = i.indexrelid "
        "where not i.indisvalid",
    )
    invalid = {str(r["relname"]) for r in rows}
    return [(name, stmt) for name, stmt in candidates if name in invalid]


def _invalid_indexes(conn: db.Connection[Any], applied: list[Migration]) -> list[str]:
    return [name for name, _ in _invalid_index_statements(conn, applied)]


def _rebuild_invalid_indexes(conn: db.Connection[Any], applied: list[Migration]) -> list[str]:
    """Rebuild INVALID indexes created by applied no-transaction files (drop + create)."""
    rebuilt: list[str] = []
    for _name, stmt in _invalid_index_statements(conn, applied):
        dropped = _drop_invalid_index(conn, stmt)
        if not dropped:
            continue
        try:
            conn.execute(stmt.sql)
        except db.PsycopgError as exc:
            message, _ = _server_error(exc)
            raise MigrationFailed(
                f"rebuilding INVALID index {dropped} failed: {message}",
                hint="fix the data the index rejects (e.g. duplicates for a unique "
                "index), then rerun `empire-ops migrate up`",
            ) from None
        rebuilt.append(dropped)
    return rebuilt


def resolve_migrations(
    config: Config | None, migrations: Sequence[Migration] | None
) -> tuple[RunnerSettings, list[Migration]]:
    """The runner settings from ``config`` and the migrations to use (given, or loaded)."""
    settings = RunnerSettings.from_config(config)
    local = list(migrations) if migrations is not None else load_migrations(list(settings.dirs))
    return settings, local


def _read_applied(
    target: DatabaseTarget, settings: RunnerSettings
) -> dict[str, history.AppliedRow]:
    with db.connect(target.dsn, target.options, autocommit=True) as conn:
        return history.read_applied(conn, settings.history_schema)


# -- public API -----------------------------------------------------------------------
def migrate_up(
    target: DatabaseTarget,
    config: Config | None,
    *,
    to: str | None = None,
    dry_run: bool = False,
    include_all: bool = False,
    migrations: Sequence[Migration] | None = None,
    actor: str | None = None,
) -> MigrateResult:
    """Apply pending migrations (up to ``to``) to ``target``, each with its history rows.

    ``migrations`` defaults to the shipped set plus ``[migrate] dirs``. A dry
    run reads the history and returns the plan without writing or locking.
    Raises LockBusy (exit 5) when another run holds the lock, OutOfOrder,
    MigrationFailed/ExtensionUnavailable naming file, line and server error
    (the failed transactional file leaves schema and history unchanged),
    DatabaseUnreachable (exit 4).
    """
    settings, local = resolve_migrations(config, migrations)
    actor = actor or default_actor()
    result = MigrateResult(target=target.masked, direction="up", dry_run=dry_run)
    if dry_run:
        applied = _read_applied(target, settings)
        plan = plan_up(local, set(applied), to=to, include_all=include_all)
        result.steps = [_planned(m, m.up_statements, "up") for m in plan]
        result.warnings = _edited_after_apply(local, applied)
        return result
    with _locked(target, settings) as conn:
        applied = history.read_applied(conn, settings.history_schema)
        plan = plan_up(local, set(applied), to=to, include_all=include_all)
        # Edited files are not re-run (the database has the old version): say so.
        result.warnings = _edited_after_apply(local, applied)
        for warning in result.warnings:
            log.warning("%s", warning)
        done = [m for m in local if m.version in applied]
        result.rebuilt_indexes.extend(_rebuild_invalid_indexes(conn, done))
        for mig in plan:
            outcome, rebuilt = _apply(conn, mig, settings, actor)
            result.steps.append(outcome)
            result.rebuilt_indexes.extend(rebuilt)
    return result


def _edited_after_apply(
    local: Sequence[Migration], applied: dict[str, history.AppliedRow]
) -> list[str]:
    return [
        f"{m.filename} was edited after it was applied (checksum mismatch); "
        "see runbooks/MIGRATE_CHECKSUM_MISMATCH.md"
        for m in local
        if m.version in applied
        and applied[m.version].checksum is not None
        and applied[m.version].checksum != m.checksum
    ]


def _planned(mig: Migration, statements: list[Statement], direction: str) -> StepOutcome:
    return StepOutcome(mig.version, mig.name, direction, len(statements), mig.no_transaction)


def migrate_down(
    target: DatabaseTarget,
    config: Config | None,
    *,
    to: str,
    confirmed: bool = False,
    dry_run: bool = False,
    migrations: Sequence[Migration] | None = None,
    actor: str | None = None,
) -> MigrateResult:
    """Revert applied migrations newer than ``to`` (``"0"``: all), newest first.

    Outside the environments in ``[migrate] allow_down_in`` it needs
    ``confirmed`` (``--yes``). Raises DownRefused (no confirmation, or an
    up-only file in range — checked before anything runs), LockBusy (exit 5),
    MigrationFailed (the failed transactional file is rolled back).
    """
    from ops.migrate.settings import down_allowed_without_yes

    if (
        config is not None
        and not confirmed
        and not dry_run
        and not down_allowed_without_yes(config)
    ):
        raise DownRefused(
            f"`migrate down` in environment {config.env!r} needs --yes",
            hint=f"review with --dry-run, then rerun with --yes (or add {config.env!r} to "
            "[migrate] allow_down_in)",
        )
    settings, local = resolve_migrations(config, migrations)
    actor = actor or default_actor()
    result = MigrateResult(target=target.masked, direction="down", dry_run=dry_run)
    if dry_run:
        applied = _read_applied(target, settings)
        for step in plan_down(local, applied, to):
            result.steps.append(
                StepOutcome(step.version, step.name, "down", len(step.statements),
                            step.no_transaction)
            )  # fmt: skip
        return result
    with _locked(target, settings) as conn:
        applied = history.read_applied(conn, settings.history_schema)
        for step in plan_down(local, applied, to):
            result.steps.append(_revert(conn, step, settings, actor))
    return result


def _revert(
    conn: db.Connection[Any], step: DownStep, settings: RunnerSettings, actor: str
) -> StepOutcome:
    started = time.monotonic()
    label = f"{step.version}_{step.name}.sql (down)"
    log.info("reverting %s", label)
    if step.no_transaction:
        _run_statements(conn, label, step.statements, rolled_back=False)
        with conn.transaction():
            history.record_down(
                conn, settings.history_schema, step.version, step.name, step.checksum,
                actor=actor, duration_ms=_ms(started),
            )  # fmt: skip
    else:
        with conn.transaction():
            _run_statements(conn, label, step.statements, rolled_back=True)
            history.record_down(
                conn, settings.history_schema, step.version, step.name, step.checksum,
                actor=actor, duration_ms=_ms(started),
            )  # fmt: skip
    return StepOutcome(
        step.version, step.name, "down", len(step.statements), step.no_transaction, _ms(started)
    )


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


def apply_all_to(dsn: str, migrations: Sequence[Migration] | None = None) -> None:
    """Apply every migration (shipped set by default) to the scratch database ``dsn``.

    For fixtures and snapshots: default options, out-of-order allowed. Raises
    like :func:`migrate_up`.
    """
    target = DatabaseTarget(dsn=dsn, embedded=False, options=db.ConnectOptions(), source="scratch")
    migrate_up(target, None, include_all=True, migrations=migrations, actor="empire-ops")


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
                code = _strip_comments(stmt.sql)
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
        invalid = _invalid_indexes(conn, [m for m in local if m.version in applied])
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


def ensure_migrated(target: DatabaseTarget, config: Config) -> list[Finding]:
    """The ``up`` step: apply pending migrations where ``[migrate] auto_apply_in`` allows it.

    Never raises for a migration problem: it becomes a finding. Where auto-apply
    is off, returns the status findings (SCHEMA_PENDING_MIGRATIONS when behind).
    Findings: MIGRATE_APPLIED / MIGRATE_UP_TO_DATE (ok), MIGRATE_INDEX_REBUILT
    (warning), MIGRATE_FAILED (error; exit 5 when another run holds the lock,
    4 when the database is unreachable), or the status findings.
    """
    from ops.errors import OpsError
    from ops.migrate.settings import auto_apply_enabled

    try:
        if not auto_apply_enabled(config):
            return migration_status(target, config).findings
        result = migrate_up(target, config)
    except OpsError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return [
            F.error(
                "MIGRATE_FAILED", target.masked, f"{exc.message}{hint}",
                runbook="runbooks/MIGRATE_FAILED.md", exit_code=exc.exit_code,
            )
        ]  # fmt: skip
    out = [
        F.warning(
            "MIGRATE_INDEX_REBUILT", index, "INVALID index dropped and rebuilt",
            runbook="runbooks/MIGRATE_INVALID_INDEX.md",
        )
        for index in result.rebuilt_indexes
    ]  # fmt: skip
    if result.steps:
        names = ", ".join(f"{s.version}_{s.name}" for s in result.steps)
        out.append(F.ok("MIGRATE_APPLIED", f"{len(result.steps)} migration(s)", names))
    else:
        out.append(F.ok("MIGRATE_UP_TO_DATE", "migrations", "nothing pending"))
    return out
