"""Run one job once: lock, claim the tick, run, record, alert. Never raises for the job's failure.

The daemon and ``jobs run NAME`` (cron mode) both call :func:`run_job`, so a
job behaves the same from either: the same lock, findings, alerts, history
and exit code.

1. The secrets are loaded and the database resolved (a gap is a finding).
2. A session advisory lock keyed by (job, database) is tried without
   waiting on a connection of its own: held, the job runs; busy, the run
   is *skipped: running elsewhere* (exit 0, it is not a fault). Then the tick
   is claimed in ``scheduler_runs`` (see :mod:`ops.scheduler.dbstate`): a
   tick another host already ran is skipped too.
3. A watchdog pings the lock's connection while the job runs. When it is
   lost, the server has released the lock and another host may start the
   next tick: the job is told to stop (its statements cancelled, and this
   process's child processes, pg_dump or pg_restore, terminated: the daemon
   runs one such job at a time, so they are this job's) and the run is
   recorded ``lock_lost``.
4. The job's exception, whatever it is, becomes ``JOB_FAILED`` (an OpsError
   keeps its exit code); the run goes to the state store, ``admin_logs`` and,
   on failure, ``error_logs``; its findings are evaluated for alerts under
   the source ``job:<name>`` and the spool is flushed.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ops import findings as F
from ops.errors import EXIT_FAILED, EXIT_INTERNAL, OpsError
from ops.findings import Finding, FindingsReport

log = logging.getLogger("ops.scheduler")

_WATCH_EVERY = 2.0


@dataclass
class JobReport(FindingsReport):
    """One run of one job: when, where, how it ended, and its findings."""

    job: str
    host: str
    pid: int
    scheduled_for: float
    started_at: float
    ended_at: float = 0.0
    outcome: str = "running"  # ok, failed, skipped, lock_lost, aborted
    findings: list[Finding] = field(default_factory=list)
    alerts: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def exit_code(self) -> int:
        """The findings' exit code; 1 for a run that was stopped before it finished
        (aborted, or its lock lost)."""
        code = F.exit_code_for(self.findings)
        return code or (EXIT_FAILED if self.outcome in ("aborted", "lock_lost") else 0)

    def extra(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "host": self.host,
            "outcome": self.outcome,
            "scheduled_for": self.scheduled_for,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "seconds": round(self.seconds, 3),
            "alerts": self.alerts,
        }


def lock_name(job: str, database: str) -> str:
    """The advisory lock of ``job`` on ``database`` (the same key on every host)."""
    return f"scheduler-job:{job}:{database}"


def current_tick(now: float) -> float:
    """The tick a run started from cron belongs to: the start of its minute."""
    return float(int(now // 60) * 60)


def terminate_children() -> list[int]:
    """SIGTERM every child process of this process (pg_dump, pg_restore…); their pids.

    Linux only (``/proc``); elsewhere nothing is found and the job's own
    failure handling must stop them.
    """
    found: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    for pid in found:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            continue
    return found


def abort_job(ctx: Any) -> None:
    """Stop a running job: its abort hooks (cancel its queries), then its child processes."""
    ctx.abort()
    terminate_children()


class _Watchdog(threading.Thread):
    """Stops the job when the scheduler stops, or when the lock's connection is lost.

    The connection (when there is one) is pinged every few seconds; the
    scheduler's stop event is looked at more often.
    """

    def __init__(self, conn: Any, ctx: Any, scheduler_stop: threading.Event) -> None:
        super().__init__(name="empire-ops-lock-watchdog", daemon=True)
        self.conn = conn
        self.ctx = ctx
        self.scheduler_stop = scheduler_stop
        self.done = threading.Event()
        self.lost = False

    def run(self) -> None:
        from ops import db

        last_ping = time.monotonic()
        while not self.done.wait(0.2):
            if self.ctx.stop.is_set():
                # Stopped already: a process the job starts after that (the next
                # repository's pg_restore) is stopped too, until the job returns.
                terminate_children()
                continue
            if self.scheduler_stop.is_set():
                log.warning("stopping the running job (the scheduler is stopping)")
                abort_job(self.ctx)
                continue
            if self.conn is None or time.monotonic() - last_ping < _WATCH_EVERY:
                continue
            last_ping = time.monotonic()
            try:
                db.run_query(self.conn, "select 1")
            except OpsError:
                if self.done.is_set():
                    return
                self.lost = True
                log.error("the job's lock connection was lost: stopping the job")
                abort_job(self.ctx)


def run_job(
    config: Any,
    name: str,
    *,
    scheduled_for: float | None = None,
    stop: threading.Event | None = None,
    handle_signals: bool = False,
) -> JobReport:
    """Run job ``name`` once, as described in the module docstring; return its report.

    ``scheduled_for`` is the tick (epoch seconds) this run belongs to
    (default: the current minute, as cron starts it). ``stop`` is the
    scheduler's stop signal. ``handle_signals`` (``jobs run``, in the main
    thread) makes SIGTERM and SIGINT stop the job the same way, so it is
    recorded as aborted rather than left running. Raises UsageError (exit 2)
    for an unknown job, PathNotUsable / DiskFull when the state store cannot
    be written (nothing is run then: a run that cannot be recorded must not
    happen unseen).
    """
    from ops.alerts.store import open_store
    from ops.scheduler.jobs import job_function

    func = job_function(config, name)
    started = time.time()
    tick = current_tick(started) if scheduled_for is None else scheduled_for
    report = JobReport(name, socket.gethostname(), os.getpid(), tick, started)
    stop = stop or threading.Event()
    previous = _stop_on_signals(stop) if handle_signals else {}
    try:
        with open_store(config) as store:
            run_id = store.job_started(name, report.host, report.pid, started)
            try:
                _run(config, name, func, report, stop)
            except BaseException:
                report.outcome = "failed" if report.outcome == "running" else report.outcome
                raise
            finally:
                report.ended_at = time.time()
                store.job_ended(
                    run_id,
                    ended_at=report.ended_at,
                    outcome=report.outcome,
                    exit_code=report.exit_code,
                    findings=[f.to_dict() for f in report.findings],
                )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("job %s %s in %.2fs (exit %d)", name, report.outcome, report.seconds, report.exit_code)
    return report


def _stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    """Make SIGTERM and SIGINT set ``stop``; the handlers they had, to put back."""

    def handler(signum: int, _frame: Any) -> None:
        log.warning("job: %s received, stopping the job", signal.Signals(signum).name)
        stop.set()

    return {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}


def _run(config: Any, name: str, func: Any, report: JobReport, stop: threading.Event) -> None:
    """Resolve, lock, claim, run, alert, record (see the module docstring)."""
    from ops import db
    from ops.errors import ConfigError
    from ops.scheduler.jobs import PER_HOST, WITHOUT_DATABASE, JobContext
    from ops.secrets import load_secrets
    from ops.target import resolve_target

    secrets = load_secrets(config)
    target = None
    try:
        target = resolve_target(config, secrets.secrets)
    except OpsError as exc:
        if name not in WITHOUT_DATABASE:
            return _not_run(config, report, secrets, None, exc, "no database to run it on")
    conn = None
    lock = None
    if target is not None and name not in PER_HOST:
        try:
            conn = db.connect(target.dsn, target.options, autocommit=True,
                              session=f"the '{name}' job lock")  # fmt: skip
            lock = lock_name(name, db.parse_dsn(target.dsn).dbname or "postgres")
        except ConfigError as exc:  # a transaction pooler cannot hold the lock
            return _not_run(config, report, secrets, None, exc, "its lock cannot be taken")
        except OpsError as exc:
            if name not in WITHOUT_DATABASE:
                return _not_run(config, report, secrets, None, exc, "the database is unreachable")
            # This job needs no database: it runs without the lock (on every host).
            log.warning("job %s runs without its lock: %s", name, exc.message)
            target = None
    raised = False
    try:
        try:
            taken = conn is None or lock is None or _take_tick(conn, config, report, lock)
        except OpsError as exc:  # the connection failed right after it was made
            return _not_run(config, report, secrets, None, exc, "the database is unreachable")
        if not taken:
            return None
        # The job's own stop: a lost lock stops this job, never the scheduler's others.
        ctx = JobContext(config=config, secrets=secrets, target=target)
        watchdog = _Watchdog(conn, ctx, stop)
        watchdog.start()
        try:
            if stop.is_set():  # a signal came while it was being set up: not started
                ctx.stop.set()
                found, raised = list[Finding](), True
            else:
                found, raised = _call(func, ctx, name)
                raised = raised or ctx.partial
        finally:
            watchdog.done.set()
        report.findings = found
        report.outcome = "failed" if F.exit_code_for(found) else "ok"
        if watchdog.lost:
            # The job was stopped: that is the finding, not what the stop broke (a
            # cancelled query, a killed pg_dump), and its checks did not finish.
            report.outcome = "lock_lost"
            raised = True
            report.findings = [
                F.warning(
                    "JOB_LOCK_LOST",
                    name,
                    "the database connection holding this job's lock was lost mid-run; the job "
                    "was stopped and runs again at its next tick",
                )
            ]
        elif ctx.stop.is_set():
            # Stopped on purpose (SIGTERM): what the stop broke is not news to anyone.
            report.outcome = "aborted"
            raised = True  # its checks did not finish: nothing is resolved
            report.findings = [
                F.info("JOB_ABORTED", name, f"job {name} was stopped (the scheduler or the "
                       "run was asked to stop); it runs again at its next tick")
            ]  # fmt: skip
    finally:
        if conn is not None:
            if lock is not None:
                try:
                    db.advisory_unlock(conn, lock)
                except OpsError:
                    pass  # a lost connection has released it already
            conn.close()
    # A job that raised did not finish its checks: what it found before stays open.
    _alert(config, report, secrets.secrets, target, resolve=not raised)
    _finish_in_database(target, config, report)
    return None


def _take_tick(conn: Any, config: Any, report: JobReport, lock: str) -> bool:
    """Take the job's lock and claim its tick; False (the run skipped) when either is taken.

    Raises DatabaseUnreachable / DatabaseError when the connection fails meanwhile.
    """
    from ops import db

    if not db.try_advisory_lock(conn, lock, 0):
        _skip(report, "running elsewhere (another scheduler holds its lock)")
        return False
    busy_on = _still_running_elsewhere(conn, config, report)
    claimed = None if busy_on else _claim(conn, config, report)
    if busy_on or claimed is False:
        _skip(
            report,
            f"the previous run on {busy_on} may still be running (it lost its lock)"
            if busy_on
            else "this tick already ran (on another host, or cron started it twice)",
        )
        db.advisory_unlock(conn, lock)
        return False
    return True


def _not_run(
    config: Any, report: JobReport, secrets: Any, target: Any, exc: OpsError, why: str
) -> None:
    """The job could not start: JOB_NO_DATABASE with the cause and its exit code, alerted."""
    report.outcome = "failed"
    report.findings = [_failed("JOB_NO_DATABASE", report.job, exc, f"not run: {why}")]
    _alert(config, report, secrets.secrets, target, resolve=False)


def _claim(conn: Any, config: Any, report: JobReport) -> bool | None:
    """Claim the tick in the database; None when the table cannot be used (lock only)."""
    from ops.errors import DatabaseError
    from ops.scheduler import dbstate

    try:
        dbstate.ensure_tables(conn, config)
        return dbstate.claim_tick(conn, config, report.job, report.scheduled_for, report.host,
                                  report.pid)  # fmt: skip
    except DatabaseError as exc:  # no privilege: the lock alone (unreachable: raised)
        log.warning("job %s: no tick record in the database (%s); the lock alone guards it",
                    report.job, exc.message)  # fmt: skip
        return None


def _skip(report: JobReport, why: str) -> None:
    report.outcome = "skipped"
    report.findings = [F.info("JOB_SKIPPED", report.job, f"skipped: {why}")]
    log.info("job %s skipped: %s", report.job, why)


def _call(func: Any, ctx: Any, name: str) -> tuple[list[Finding], bool]:
    """The job's findings, and whether it raised: any exception becomes JOB_FAILED
    (a bug keeps exit 10's meaning)."""
    try:
        return list(func(ctx)), False
    except OpsError as exc:
        return [_failed("JOB_FAILED", name, exc, "")], True
    except Exception as exc:  # a job never crashes the scheduler
        log.exception("job %s raised", name)
        from ops.logs import redact

        return [
            F.error(
                "JOB_FAILED",
                name,
                f"job {name} raised {type(exc).__name__}: {redact(str(exc))} (a bug in "
                "empire-ops: the log has the traceback)",
                exit_code=EXIT_INTERNAL,
            )
        ], True


def _failed(code: str, name: str, exc: OpsError, what: str) -> Finding:
    message = f"job {name}: {what + ': ' if what else ''}{exc.message_with_hint}"
    return F.error(code, name, message, exit_code=exc.exit_code)


def _still_running_elsewhere(conn: Any, config: Any, report: JobReport) -> str | None:
    """The host of a run of this job that lost its lock and may still be running, or None."""
    from ops.errors import DatabaseError
    from ops.scheduler import dbstate

    try:
        dbstate.ensure_tables(conn, config)
        return dbstate.unfinished_run(
            conn, config, report.job, report.host, report.pid,
            config.seconds("scheduler.stale_after"),
        )  # fmt: skip
    except DatabaseError:
        return None


def _finish_in_database(target: Any, config: Any, report: JobReport) -> None:
    """Close the tick and write admin_logs/error_logs, on a connection of its own.

    Its own, because the lock's connection may be the one that was lost.
    Best effort: a failure is logged, the state store has the run anyway.
    """
    from ops.scheduler import dbstate
    from ops.scheduler.jobs import PER_HOST

    if target is None:
        return
    # Per-host jobs run on every host (alerts every minute, the dashboard every five):
    # their runs are recorded when they fail, in error_logs only when newly alerted.
    per_host = report.job in PER_HOST
    if per_host and report.outcome == "ok":
        return
    errors = not per_host or bool(report.alerts.get("alerted"))
    report.ended_at = time.time()
    job, tick = report.job, report.scheduled_for
    dbstate.on_database(
        config, target, lambda conn: dbstate.finish_tick(conn, config, job, tick, report.outcome),
        f"job {job}: closing its tick",
    )  # fmt: skip
    dbstate.on_database(
        config, target, lambda conn: dbstate.record_run(conn, report, errors=errors),
        f"job {job}: recording it in admin_logs", create=False,
    )  # fmt: skip


def _alert(config: Any, report: JobReport, secrets: Any, target: Any, *, resolve: bool) -> None:
    """Evaluate the run's findings (source ``job:<name>``) and flush the spool.

    A delivery failure is this run's warning, not its failure (the job did its
    work; the alert waits in the spool), except for the alerts job, whose work
    it is. Alerts that cannot be evaluated at all are ALERTS_FAILED.
    """
    from ops.alerts import alert_findings
    from ops.findings import Severity

    try:
        evaluation, flushed = alert_findings(
            config, f"job:{report.job}", report.findings, secrets, target=target, resolve=resolve
        )
    except OpsError as exc:
        log.error("job %s: alerts could not be evaluated: %s", report.job, exc.message)
        report.alerts = {"error": exc.message}
        report.findings.append(
            F.error("ALERTS_FAILED", report.job, f"alerts of job {report.job} could not be "
                    f"evaluated: {exc.message}", exit_code=exc.exit_code)
        )  # fmt: skip
        if report.outcome == "ok":
            report.outcome = "failed"
        return
    report.alerts = {
        "alerted": [list(k) for k in evaluation.alerted + evaluation.repeated],
        "resolved": [list(k) for k in evaluation.resolved],
        "sent": len(flushed.sent) if flushed else 0,
        "failed": len(flushed.failed) if flushed else 0,
    }
    if flushed is not None:
        for f in flushed.findings:
            own = report.job == "alerts" or f.severity < Severity.ERROR
            report.findings.append(f if own else replace(f, severity=Severity.WARNING))
