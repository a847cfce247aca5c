"""``empire-ops scheduler run``: APScheduler's BlockingScheduler running every configured job.

- Each job has its trigger (a cron expression in ``[scheduler] timezone``, or
  ``every``, aligned to the epoch so that every host ticks at the same
  instants), ``max_instances = 1``, ``coalesce`` and the misfire grace time.
  Each tick goes through :func:`ops.scheduler.runner.run_job`: the lock, the
  tick claim, history and alerts; a job's failure never reaches APScheduler.
- A heartbeat (``[scheduler] heartbeat_every``) goes to the state store and,
  when the database answers, to its ``scheduler_heartbeats`` table.
- SIGTERM or SIGINT: no new job starts; a running job gets
  ``[scheduler] shutdown_grace`` to finish, then it is told to stop and its
  child processes (pg_dump, pg_restore) are terminated, so a backup in
  progress never writes its manifest (no partial backup is listed; its
  temporary objects are swept by the next backup). The heartbeat is marked
  ``stopped`` and the process exits 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets as _secrets
import signal
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ops.errors import OpsError

log = logging.getLogger("ops.scheduler")

# After the grace period and the stop signal, how long a job may take to unwind.
_UNWIND = 15.0


def last_fire_time(trigger: Any, now: float, window: float) -> float:
    """The latest time ``trigger`` fired at or before ``now`` (looking back ``window`` s).

    This is the tick a run belongs to, whatever the delay before it started;
    ``now`` itself when the trigger did not fire in the window.
    """
    tz = trigger.timezone
    current = datetime.fromtimestamp(now, tz)
    probe = datetime.fromtimestamp(now - window, tz)
    last = None
    previous = None
    while True:
        fire = trigger.get_next_fire_time(previous, probe)
        if fire is None or fire > current:
            break
        last, previous = fire, fire
        probe = fire + timedelta(microseconds=1)
    return last.timestamp() if last is not None else now


class SchedulerDaemon:
    """One scheduler process: its jobs, its heartbeat, its stop (see the module docstring)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.scheduler_id = f"{self.host}:{self.pid}:{_secrets.token_hex(3)}"
        self.started_at = time.time()
        self.stop = threading.Event()
        self.running: dict[str, threading.Thread] = {}
        self.state = "running"
        self.target: Any = None
        self.triggers: dict[str, Any] = {}
        self.scheduler: Any = None
        # Beats one at a time, and none after the last ("stopped") one: a heartbeat
        # job still running at shutdown must not write "stopping" over it.
        self._beat_lock = threading.Lock()
        self._last_beat_done = False
        self._one_at_a_time = threading.Lock()

    # -- setup ------------------------------------------------------------------------
    def build(self) -> Any:
        """The BlockingScheduler with every enabled job and the heartbeat."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.blocking import BlockingScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        from ops.scheduler.settings import job_schedules

        tz = self.config.get("scheduler.timezone")
        # APScheduler takes whole seconds, at least one ([scheduler] misfire_grace >= 1s).
        grace = max(1, round(self.config.seconds("scheduler.misfire_grace")))
        schedules = job_schedules(self.config)
        # Every tick gets a thread at once (so its tick is known and no queued tick is
        # dropped as a misfire); the jobs then take turns on one lock (see tick). The
        # alerts job, the heartbeat and the stop watcher never wait for them.
        scheduler = BlockingScheduler(
            timezone=tz,
            executors={"default": ThreadPoolExecutor(max_workers=len(schedules) + 3)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        )
        epoch = datetime.fromtimestamp(0, UTC)
        for name, schedule in schedules.items():
            if schedule.cron:
                trigger = CronTrigger.from_crontab(schedule.cron, timezone=tz)
            else:
                assert schedule.every is not None
                trigger = IntervalTrigger(seconds=schedule.every, start_date=epoch, timezone=tz)
            self.triggers[name] = trigger
            scheduler.add_job(self.tick, trigger, args=[name], id=name, name=name)
        scheduler.add_job(
            self.watch_stop, IntervalTrigger(seconds=1), id="_stop", name="stop watcher"
        )
        scheduler.add_job(
            self.beat,
            IntervalTrigger(seconds=self.config.seconds("scheduler.heartbeat_every")),
            id="_heartbeat",
            name="heartbeat",
            misfire_grace_time=None,
        )
        self.scheduler = scheduler
        return scheduler

    # -- jobs -------------------------------------------------------------------------
    def tick(self, name: str) -> None:
        """Run one tick of job ``name``; never raises (APScheduler must not see a failure)."""
        from ops.scheduler.jobs import PER_HOST
        from ops.scheduler.runner import run_job

        window = self.config.seconds("scheduler.misfire_grace") + 1
        scheduled_for = last_fire_time(self.triggers[name], time.time(), window)
        # Registered before the state is looked at, so drain() cannot miss it.
        self.running[name] = threading.current_thread()
        try:
            # The jobs run one at a time: a long backup delays the verify behind it,
            # and stopping one job's child processes (pg_dump) never hits another's.
            with contextlib.nullcontext() if name in PER_HOST else self._one_at_a_time:
                if self.state != "running":  # the stop came while it waited: not started
                    return
                run_job(self.config, name, scheduled_for=scheduled_for, stop=self.stop)
        except OpsError as exc:
            log.error("job %s could not run: %s", name, exc.message)
        except Exception:  # a job never crashes the scheduler
            log.exception("job %s could not run", name)
        finally:
            self.running.pop(name, None)

    # -- heartbeat --------------------------------------------------------------------
    def heartbeat_row(self) -> dict[str, Any]:
        jobs: dict[str, Any] = {}
        if self.scheduler is not None:
            for job in self.scheduler.get_jobs():
                if job.id.startswith("_"):
                    continue
                nxt = getattr(job, "next_run_time", None)
                jobs[job.id] = {
                    "next_run": nxt.timestamp() if nxt else None,
                    "running": job.id in self.running,
                }
        return {
            "scheduler_id": self.scheduler_id,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at,
            "last_seen": time.time(),
            "state": self.state,
            "jobs": json.dumps(jobs),
        }

    def beat(self) -> None:
        """Write the heartbeat to the state store and the database; never raises."""
        with self._beat_lock:
            if not self._last_beat_done:
                row = self.heartbeat_row()
                self._beat(row)
                self._last_beat_done = row["state"] == "stopped"

    def _beat(self, row: dict[str, Any]) -> None:
        from ops.alerts.store import open_store

        try:
            with open_store(self.config) as store:
                store.beat(row)
        except OpsError as exc:
            log.error("heartbeat: the state store could not be written: %s", exc.message)
        from ops.scheduler import dbstate

        dbstate.on_database(
            self.config, self.target, lambda conn: dbstate.beat(conn, self.config, row), "heartbeat"
        )

    # -- stopping ---------------------------------------------------------------------
    def request_stop(self, signum: int, _frame: Any = None) -> None:
        """The signal handler: stop taking jobs; :meth:`run` finishes the rest.

        Only the first signal counts (a second Ctrl-C must not cut the drain
        short). The scheduler itself is shut down by :meth:`watch_stop`, which
        also catches a signal that came before it was started.
        """
        if self.state != "running":
            log.info("scheduler: %s received again; still stopping", signal.Signals(signum).name)
            return
        log.info("scheduler: %s received, stopping", signal.Signals(signum).name)
        self.state = "stopping"

    def watch_stop(self) -> None:
        """Every second: shut the scheduler down once a stop was asked for."""
        if self.state != "running" and self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def drain(self) -> None:
        """Let running jobs finish within the grace period, then stop them (each job's
        watchdog sees ``stop``: it cancels the job's queries and stops its processes)."""
        deadline = time.monotonic() + self.config.seconds("scheduler.shutdown_grace")
        for thread in list(self.running.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        if not self.running:
            return
        log.warning(
            "scheduler: %s still running after the grace period: stopping it",
            ", ".join(self.running),
        )
        self.stop.set()
        deadline = time.monotonic() + _UNWIND
        for thread in list(self.running.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the exit code (0 after a clean stop)."""
        from ops.alerts.store import open_store
        from ops.target import resolve_target

        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        # The store must be writable before any job runs: a run that cannot be
        # recorded must not happen unseen (PathNotUsable, exit 2, otherwise).
        open_store(self.config).close()
        try:
            self.target = resolve_target(self.config)
        except OpsError as exc:
            log.warning("scheduler: no database for locks and heartbeats yet: %s", exc.message)
        from ops.scheduler.status import retire_dead

        gone = retire_dead(self.config, self.target, self.host, _alive)
        if gone:
            log.info("scheduler: earlier schedulers on this host are dead: %s", ", ".join(gone))
        scheduler = self.build()
        log.info(
            "scheduler %s started: %s", self.scheduler_id,
            ", ".join(f"{j.id} ({j.trigger})" for j in scheduler.get_jobs() if j.id[0] != "_"),
        )  # fmt: skip
        self.beat()
        try:
            scheduler.start()
        finally:
            self.state = "stopping"
            self.drain()
            self.state = "stopped"
            self.beat()
            log.info("scheduler %s stopped", self.scheduler_id)
        if self.running:
            # A job that ignored its stop is abandoned: the interpreter would wait for
            # its thread at exit. Its partial work has no manifest, so nothing lists it.
            log.error("scheduler: %s did not stop; exiting anyway", ", ".join(self.running))
            logging.shutdown()
            os._exit(0)
        return 0


def _alive(pid: int) -> bool:
    """True when an earlier scheduler's process ``pid`` still runs on this host.

    Our own pid is not it (a container restarted: pid 1 again); signal 0
    probes the others without touching them.
    """
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as another user
    return True


def run_scheduler(config: Any) -> int:
    """Run the scheduler in the foreground until SIGTERM/SIGINT; its exit code (0).

    Raises PathNotUsable (exit 2) when the state folder cannot be written.
    """
    return SchedulerDaemon(config).run()
