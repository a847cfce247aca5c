"""`migrate up` and the `up` step: apply pending migrations, each file with its history rows.

A transactional file runs in ONE transaction together with its two history
rows. A ``-- migrate:no-transaction`` file runs statement by statement in
autocommit, its history rows written last; before each ``CREATE INDEX
CONCURRENTLY`` an INVALID index of the same name is dropped (see
:mod:`ops.migrate.indexes`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.errors import DatabaseError, OpsError
from ops.findings import Finding
from ops.migrate import adopt, history
from ops.migrate.common import (
    MigrateResult,
    RunnerSettings,
    StepOutcome,
    default_actor,
    failure,
    locked,
    ms_since,
    resolve_migrations,
    run_statements,
)
from ops.migrate.confirm import FIX, require_confirmed, unconfirmed_reason, writes_confirmed
from ops.migrate.files import Migration, Statement, load_migrations
from ops.migrate.indexes import drop_invalid_index, rebuild_invalid_indexes
from ops.migrate.plan import plan_up
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)


def migrate_up(
    target: DatabaseTarget,
    config: Config | None,
    *,
    to: str | None = None,
    dry_run: bool = False,
    include_all: bool = False,
    migrations: Sequence[Migration] | None = None,
    actor: str | None = None,
    confirmed: bool = False,
) -> MigrateResult:
    """Apply pending migrations (up to ``to``) to ``target``, each with its history rows.

    ``migrations`` defaults to the shipped set plus ``[migrate] dirs``. A dry
    run reads the history and returns the plan without writing or locking.
    On a non-embedded target whose environment was not chosen explicitly it
    needs ``confirmed`` (``--yes``; see :mod:`ops.migrate.confirm`), else
    raises NotConfirmed (exit 2) before connecting.
    Raises LockBusy (exit 5) when another run holds the lock, OutOfOrder,
    MigrationFailed/ExtensionUnavailable naming file, line and server error
    (the failed transactional file leaves schema and history unchanged),
    DatabaseUnreachable (exit 4).
    """
    if not dry_run:
        require_confirmed(config, target, yes=confirmed, action="`migrate up`")
    settings, local = resolve_migrations(config, migrations)
    actor = actor or default_actor()
    result = MigrateResult(target=target.masked, direction="up", dry_run=dry_run)
    share = settings.shared_dir is not None and migrations is None
    if dry_run:
        with db.connect(target.dsn, target.options, autocommit=True) as conn:
            applied = history.read_applied(conn, settings.history_schema)
            adoption = adopt.plan_for(conn, settings) if share else None
        if adoption is not None:
            local = sorted([*local, *adopt.adopted_migrations(adoption)], key=lambda m: m.sort_key)
            result.adopted = [f.filename for f in adoption.files]
        plan = plan_up(local, set(applied), to=to, include_all=include_all)
        result.steps = [_planned(m, m.up_statements, "up") for m in plan]
        result.warnings = _edited_after_apply(local, applied)
        return result
    with locked(target, settings) as conn:
        adoption = adopt.plan_for(conn, settings) if share else None
        if adoption is not None and adoption.files:
            # Under the lock: a concurrent run waits, then finds the files written.
            adopt.write_adopted(adoption)
            result.adopted = [f.filename for f in adoption.files]
            log.info("adopted %d Empire migration(s) into %s", len(adoption.files),
                     adoption.folder)  # fmt: skip
            local = load_migrations(list(settings.dirs))
        applied = history.read_applied(conn, settings.history_schema)
        plan = plan_up(local, set(applied), to=to, include_all=include_all)
        # Edited files are not re-run (the database has the old version): say so.
        result.warnings = _edited_after_apply(local, applied)
        for warning in result.warnings:
            log.warning("%s", warning)
        done = [m for m in local if m.version in applied]
        result.rebuilt_indexes.extend(rebuild_invalid_indexes(conn, done))
        for mig in plan:
            outcome, rebuilt = _apply(conn, mig, settings, actor)
            result.steps.append(outcome)
            result.rebuilt_indexes.extend(rebuilt)
    return result


def _apply(
    conn: db.Connection[Any], mig: Migration, settings: RunnerSettings, actor: str
) -> tuple[StepOutcome, list[str]]:
    started = time.monotonic()
    statements = mig.up_statements
    rebuilt: list[str] = []
    log.info("applying %s%s", mig.filename, " (no transaction)" if mig.no_transaction else "")
    if mig.no_transaction:
        for i, stmt in enumerate(statements, start=1):
            dropped = drop_invalid_index(conn, stmt)
            if dropped:
                rebuilt.append(dropped)
            try:
                db.run_query(conn, stmt.sql)
            except DatabaseError as exc:
                err = failure(mig.filename, stmt, i, len(statements), exc, False)
                _record_failure(conn, settings, mig, actor, started, err.message)
                raise err from None
        with db.transaction(conn):
            history.record_up(
                conn, settings.history_schema, mig, actor=actor, duration_ms=ms_since(started)
            )
    else:
        with db.transaction(conn):
            run_statements(conn, mig.filename, statements, rolled_back=True)
            history.record_up(
                conn, settings.history_schema, mig, actor=actor, duration_ms=ms_since(started)
            )
    outcome = StepOutcome(
        mig.version, mig.name, "up", len(statements), mig.no_transaction, ms_since(started)
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
        with db.transaction(conn):
            history.record_failure(
                conn,
                settings.history_schema,
                mig,
                actor=actor,
                duration_ms=ms_since(started),
                error=error,
            )
    except (db.PsycopgError, OpsError) as exc:  # the connection may be gone; the raise matters
        log.warning("could not record the failure of %s: %s", mig.filename, exc)


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


def apply_all_to(dsn: str, migrations: Sequence[Migration] | None = None) -> None:
    """Apply every migration (shipped set by default) to the scratch database ``dsn``.

    For fixtures and snapshots: default options, out-of-order allowed. Raises
    like :func:`migrate_up`.
    """
    target = DatabaseTarget(dsn=dsn, embedded=False, options=db.ConnectOptions(), source="scratch")
    migrate_up(target, None, include_all=True, migrations=migrations, actor="empire-ops")


def ensure_migrated(
    target: DatabaseTarget, config: Config, *, confirmed: bool = False
) -> list[Finding]:
    """The ``up`` step: apply pending migrations where ``[migrate] auto_apply_in`` allows it.

    Never raises for a migration problem: it becomes a finding. Where auto-apply
    is off, returns the status findings (SCHEMA_PENDING_MIGRATIONS when behind).
    On a non-embedded target whose environment was not chosen explicitly,
    and without ``confirmed`` (``up --yes``), it writes nothing: the status
    findings plus MIGRATE_NOT_CONFIRMED (error, exit 2) saying how to apply.
    Findings: MIGRATE_APPLIED / MIGRATE_UP_TO_DATE (ok), MIGRATE_INDEX_REBUILT
    (warning), MIGRATE_FAILED (error; exit 5 when another run holds the lock,
    4 when the database is unreachable), or the status findings.
    """
    from ops.errors import EXIT_USAGE, OpsError
    from ops.migrate.settings import auto_apply_enabled
    from ops.migrate.status import migration_status

    try:
        if not auto_apply_enabled(config):
            return migration_status(target, config).findings
        if not writes_confirmed(config, target, yes=confirmed):
            status = migration_status(target, config)
            if not status.pending:
                return status.findings
            return [
                *status.findings,
                F.error(
                    "MIGRATE_NOT_CONFIRMED", f"{len(status.pending)} migration(s)",
                    f"not applied automatically: {unconfirmed_reason(config, target)}; "
                    f"nothing was written. Review with `empire-ops migrate up --dry-run`, then "
                    f"{FIX}",
                    exit_code=EXIT_USAGE,
                ),
            ]  # fmt: skip
        result = migrate_up(target, config, confirmed=True)  # checked just above
    except OpsError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return [
            F.error(
                "MIGRATE_FAILED", target.masked, f"{exc.message}{hint}",
                exit_code=exc.exit_code,
            )
        ]  # fmt: skip
    out = [
        F.warning(
            "MIGRATE_INDEX_REBUILT", index, "INVALID index dropped and rebuilt",
            runbook="runbooks/MIGRATE_INVALID_INDEX.md",
        )
        for index in result.rebuilt_indexes
    ]  # fmt: skip
    if result.adopted:
        out.append(
            F.ok("MIGRATE_ADOPTED", f"{len(result.adopted)} file(s)",
                 "the Empire schema was written into the folder shared with Supabase CLI: "
                 + ", ".join(result.adopted) + " (commit them)")
        )  # fmt: skip
    if result.steps:
        names = ", ".join(f"{s.version}_{s.name}" for s in result.steps)
        out.append(F.ok("MIGRATE_APPLIED", f"{len(result.steps)} migration(s)", names))
    else:
        out.append(F.ok("MIGRATE_UP_TO_DATE", "migrations", "nothing pending"))
    return out
