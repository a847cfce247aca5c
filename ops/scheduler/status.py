"""Who is scheduling what: heartbeats (this host's state store and the database), job results.

``scheduler status`` reads every scheduler's heartbeat from the database when
it is reachable (so every host is seen from any host) and from this host's
state store otherwise; each job's next run comes from the heartbeat, its last
result from the job history. A heartbeat older than ``[scheduler]
stale_after`` is ``SCHEDULER_DOWN``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ops import findings as F
from ops.config import format_duration
from ops.findings import Finding, FindingsReport

log = logging.getLogger("ops.scheduler")


def all_heartbeats(config: Any, target: Any) -> tuple[list[dict[str, Any]], str]:
    """Every known scheduler's heartbeat, and where they were read ("database" or "local")."""
    from ops.alerts.store import open_store
    from ops.scheduler import dbstate

    rows = dbstate.on_database(
        config, target, lambda conn: dbstate.heartbeats(conn, config), "reading heartbeats",
        create=False, quiet=True,
    )  # fmt: skip
    if rows is not None:
        return rows, "database"
    with open_store(config) as store:
        return store.heartbeats(), "local"


def stale_schedulers(config: Any, target: Any, now: float | None = None) -> list[Finding]:
    """SCHEDULER_DOWN for each scheduler that was running and has not beaten in stale_after.

    A scheduler that stopped cleanly (state ``stopped``) is not down.
    """
    now = time.time() if now is None else now
    stale_after = config.seconds("scheduler.stale_after")
    rows, _ = all_heartbeats(config, target)
    found = []
    for row in rows:
        if row["state"] in ("stopped", "gone"):
            continue
        age = now - row["last_seen"]
        if age > stale_after:
            found.append(
                F.error(
                    "SCHEDULER_DOWN",
                    f"{row['host']} pid {row['pid']}",
                    f"the scheduler on {row['host']} (pid {row['pid']}) last beat "
                    f"{format_duration(age)} ago (stale after {format_duration(stale_after)}): "
                    "its jobs run on the other hosts only, or not at all",
                )
            )
    return found


def retire_dead(config: Any, target: Any, host: str, alive: Any) -> list[str]:
    """Mark ``gone`` the heartbeats of this host whose process is dead (``alive(pid)`` is
    False): a scheduler restarted after a crash is not SCHEDULER_DOWN. Their ids."""
    from ops.alerts.store import open_store

    rows, _ = all_heartbeats(config, target)
    dead = [
        r["scheduler_id"]
        for r in rows
        if r["host"] == host and r["state"] not in ("stopped", "gone") and not alive(r["pid"])
    ]
    if not dead:
        return []
    with open_store(config) as store:
        store.set_heartbeat_state(dead, "gone")
    from ops.scheduler import dbstate

    dbstate.on_database(
        config, target, lambda conn: dbstate.set_state(conn, config, dead, "gone"),
        "retiring dead schedulers",
    )  # fmt: skip
    return dead


def forget_host(config: Any, target: Any, host: str) -> int:
    """``scheduler forget HOST``: delete its heartbeats here and in the database; how many."""
    from ops.alerts.store import open_store

    with open_store(config) as store:
        count = store.forget_host(host)
    from ops.scheduler import dbstate

    found = dbstate.on_database(
        config, target, lambda conn: dbstate.forget(conn, config, host), "forgetting a host"
    )
    return max(count, found or 0)


@dataclass
class SchedulerStatus(FindingsReport):
    """``scheduler status``: every scheduler and, for each job, next run and last result."""

    schedulers: list[dict[str, Any]]
    jobs: dict[str, dict[str, Any]]
    source: str
    findings: list[Finding] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        return {"source": self.source, "schedulers": self.schedulers, "jobs": self.jobs}


def scheduler_status(config: Any, target: Any = None) -> SchedulerStatus:
    """Every scheduler's heartbeat, each job's schedule, next run and last result on this host."""
    from ops.alerts.store import open_store
    from ops.scheduler.settings import job_schedules

    rows, source = all_heartbeats(config, target)
    now = time.time()
    schedulers = []
    next_runs: dict[str, float] = {}
    for row in rows:
        jobs = json.loads(row["jobs"]) if isinstance(row["jobs"], str) else row["jobs"]
        schedulers.append(
            {
                "host": row["host"],
                "pid": row["pid"],
                "state": row["state"],
                "started_at": row["started_at"],
                "last_seen": row["last_seen"],
                "age_seconds": round(now - row["last_seen"], 1),
            }
        )
        if row["state"] not in ("stopped", "gone"):
            for job, info in (jobs or {}).items():
                nxt = info.get("next_run")
                if nxt and (job not in next_runs or nxt < next_runs[job]):
                    next_runs[job] = nxt
    jobs_out: dict[str, dict[str, Any]] = {}
    with open_store(config) as store:
        for name, schedule in job_schedules(config).items():
            runs = [r for r in store.job_runs(name, limit=20) if r["outcome"] != "running"]
            last = next((r for r in runs if r["outcome"] != "skipped"), runs[0] if runs else None)
            jobs_out[name] = {
                "schedule": schedule.describe(),
                "next_run": next_runs.get(name),
                "last_outcome": last["outcome"] if last else None,
                "last_host": last["host"] if last else None,
                "last_started_at": last["started_at"] if last else None,
                "last_seconds": round(last["ended_at"] - last["started_at"], 3) if last else None,
                "last_findings": [
                    f"{f['severity']} {f['code']}" for f in json.loads(last["findings"])
                    if f["severity"] not in ("ok", "info")
                ] if last else [],
            }  # fmt: skip
    findings = stale_schedulers(config, target, now)
    if not rows:
        findings.append(
            F.info("SCHEDULER_NONE", "scheduler", "no scheduler has run here (or in the database)")
        )
    return SchedulerStatus(schedulers, jobs_out, source, findings)
