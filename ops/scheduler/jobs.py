"""The scheduled jobs: one function each, taking a :class:`JobContext`, returning findings.

A job does its work through the domain packages (secrets, migrate, backup)
and returns their findings; it may raise (an OpsError or a bug): the runner
turns that into a ``JOB_FAILED`` finding and an alert, and carries on. A
job's findings are evaluated for alerts under the source ``job:<name>``, so a
job resolves only what it reported itself.

``[scheduler.jobs.<name>] sql = "..."`` declares a job of the project's own
(a ``refresh materialized view``, a cleanup): its statement runs in one
transaction under the same lock, history and alerts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.findings import Finding

if TYPE_CHECKING:
    from ops.config import Config
    from ops.secrets import LoadResult
    from ops.target import DatabaseTarget


@dataclass
class JobContext:
    """What a job may use: the config, the loaded secrets, the database, a stop signal.

    ``stop`` is this job's own: set (by :meth:`abort`) when the scheduler's
    grace period after SIGTERM is over, when ``jobs run`` gets a signal, or
    when the job's lock connection is lost; long jobs check it between steps.
    """

    config: Config
    secrets: LoadResult
    target: DatabaseTarget | None
    stop: threading.Event = field(default_factory=threading.Event)
    facts: dict[str, Any] = field(default_factory=dict)
    on_abort: list[Callable[[], None]] = field(default_factory=list)
    # Set by a job that returned without running all its checks (a backup that
    # failed does not prune): then what it did not report is not resolved.
    partial: bool = False

    def abort(self) -> None:
        """Stop the job now: set ``stop``, run its abort hooks (cancel its queries)."""
        self.stop.set()
        for hook in list(self.on_abort):
            try:
                hook()
            except Exception:  # an abort hook must not stop the others
                continue

    def require_target(self) -> DatabaseTarget:
        from ops.errors import DatabaseUnreachable

        if self.target is None:
            raise DatabaseUnreachable(
                "no database to run this job on (the DSN secret has a problem)",
                hint="run `empire-ops preflight` and fix what it names",
            )
        return self.target


Job = Callable[[JobContext], list[Finding]]


def job_secrets(ctx: JobContext) -> list[Finding]:
    """Load and validate every secret (the same findings as preflight's secrets part)."""
    return list(ctx.secrets.findings)


def job_migrate(ctx: JobContext) -> list[Finding]:
    """Check the schema; heal safe drift where ``[migrate] auto_heal_in`` allows it."""
    from ops import db
    from ops.migrate.heal import check_and_heal

    target = ctx.require_target()
    conn = db.connect(target.dsn, target.options, autocommit=True)
    try:
        return check_and_heal(conn, ctx.config, target)
    finally:
        conn.close()


def job_backup(ctx: JobContext) -> list[Finding]:
    """Back up into every repository, then prune by retention (only when the backup held)."""
    from ops.backup.dump import run_backup
    from ops.backup.prune import prune_configured

    report = run_backup(ctx.require_target(), ctx.config)
    found = list(report.findings)
    if report.exit_code or ctx.stop.is_set():
        ctx.partial = True  # prune did not run: its findings stay as they were
        return found
    return found + list(prune_configured(ctx.config, apply=True).findings)


def job_verify(ctx: JobContext) -> list[Finding]:
    """Re-read the newest backup of every repository: size, sha256, decrypt, pg_restore --list."""
    from ops.backup.verify import verify_backups

    return list(verify_backups(ctx.config, "latest").findings)


def job_drill(ctx: JobContext) -> list[Finding]:
    """Restore the newest backup into a scratch database and prove it; records the RTO."""
    from ops.backup.drill import run_drill

    return list(run_drill(ctx.config, "latest").findings)


PARTITION_MONTHS_AHEAD = 3


def job_partitions(ctx: JobContext) -> list[Finding]:
    """Create the event tables' monthly partitions for the coming months (idempotent)."""
    from ops import db

    target = ctx.require_target()
    conn = db.connect(target.dsn, target.options, autocommit=True)
    try:
        rows = db.run_query(
            conn,
            "select public.create_event_partitions(%s) as created",
            (PARTITION_MONTHS_AHEAD,),
        )
    finally:
        conn.close()
    created = int(rows[0]["created"]) if rows else 0
    return [
        F.ok(
            "PARTITIONS_READY",
            "event tables",
            f"partitions exist for the next {PARTITION_MONTHS_AHEAD} months ({created} created)",
        )
    ]


def job_alerts(ctx: JobContext) -> list[Finding]:
    """Find stale schedulers (SCHEDULER_DOWN), prune old history; the runner then flushes."""
    import time

    from ops.alerts.store import open_store
    from ops.scheduler import dbstate
    from ops.scheduler.status import stale_schedulers

    before = time.time() - ctx.config.seconds("scheduler.keep_history")
    with open_store(ctx.config) as store:
        store.prune(before)
    # The database's copy, when it answers (else the next run that reaches it).
    dbstate.on_database(
        ctx.config, ctx.target, lambda conn: dbstate.prune(conn, ctx.config, before), "pruning"
    )
    return stale_schedulers(ctx.config, ctx.target)


def job_dashboard(ctx: JobContext) -> list[Finding]:
    """Build the health dashboard on this host and record its trend point.

    Returns the database health checks only the dashboard runs (cache hit,
    wraparound, sequences, long queries…) and any part it could not read; the
    other parts' findings belong to the jobs that produce them.
    """
    from dashboards.render import build_dashboard

    report = build_dashboard(ctx.config, loaded=ctx.secrets, target=ctx.target)
    own = [f for f in report.findings if f.code.startswith(("DB_", "DASHBOARD_"))
           and f.code != "DB_UNREACHABLE"]  # fmt: skip
    return [*own, F.ok("DASHBOARD_BUILT", str(report.html), f"status {report.status}, built in "
                       f"{report.seconds:.2f}s")]  # fmt: skip


def sql_job(statement: str) -> Job:
    """A job of the project's own: ``statement`` in one transaction on the database."""

    def run(ctx: JobContext) -> list[Finding]:
        from ops import db

        target = ctx.require_target()
        conn = db.connect(target.dsn, target.options)
        # Stopping the job cancels its statement in the server, not only here.
        ctx.on_abort.append(conn.cancel_safe)
        try:
            with db.transaction(conn):
                db.run_query(conn, statement)
        finally:
            conn.close()
        return []

    return run


# Jobs whose work is this host's own (its alert spool, its dashboard file): they run
# on every host, without the job lock, so no host waits for another host.
PER_HOST = frozenset({"alerts", "dashboard"})
# Jobs that can do their work with the database away (and run then, unlocked);
# any other job is not run without it (JOB_NO_DATABASE).
WITHOUT_DATABASE = frozenset({"secrets", "alerts", "dashboard"})

BUILT_IN: dict[str, Job] = {
    "secrets": job_secrets,
    "migrate": job_migrate,
    "backup": job_backup,
    "verify": job_verify,
    "drill": job_drill,
    "partitions": job_partitions,
    "dashboard": job_dashboard,
    "alerts": job_alerts,
}


def job_function(config: Config, name: str) -> Job:
    """The function of job ``name``: built in, or declared with ``sql``; UsageError if unknown."""
    from ops.errors import UsageError

    own = config.get("scheduler.jobs").get(name, {})
    if own.get("sql"):
        return sql_job(own["sql"])
    if name in BUILT_IN:
        return BUILT_IN[name]
    raise UsageError(
        f"no job named {name!r}",
        hint=f"built-in jobs: {', '.join(BUILT_IN)}; declare your own with "
        f"[scheduler.jobs.{name}] sql = ...",
    )
