"""The ``[scheduler]`` config section (light: no APScheduler import until a cron is checked)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ops.config import Field, Table, _is_duration, check_cron, is_timezone, parse_duration

SECTION_NAME = "scheduler"

# Every job the scheduler knows, with its default schedule (five-field cron, in
# ``[scheduler] timezone``) and what it does. ``[scheduler.jobs.<name>]`` overrides
# a job's ``cron`` or turns it off with ``enabled = false``.
DEFAULT_JOBS: dict[str, dict[str, Any]] = {
    "secrets": {"cron": "0 * * * *", "doc": "load and validate every secret"},
    "migrate": {
        "cron": "*/15 * * * *",
        "doc": "check the schema; heal safe drift where [migrate] auto_heal_in allows",
    },
    "backup": {"cron": "0 2 * * *", "doc": "back up the database, then prune by retention"},
    "verify": {"cron": "0 3 * * sun", "doc": "re-read the newest backup of every repository"},
    "drill": {"cron": "0 4 * * sun", "doc": "restore the newest backup and prove it"},
    "partitions": {
        "cron": "30 1 * * *",
        "doc": "create the event tables' partitions for the coming months",
    },
    "dashboard": {
        "cron": "*/5 * * * *",
        "doc": "build the health dashboard (db-health.html and .json) and record its trends",
    },
    "alerts": {
        "cron": "* * * * *",
        "doc": "find stale schedulers, then deliver the spooled alerts",
    },
}


_JOB_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")


def _job_name(name: str) -> Any:
    if not _JOB_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a job name (lower_snake_case, at most 41 characters); "
            f"built-in jobs: {', '.join(DEFAULT_JOBS)}"
        )
    return name


def _jobs_check(jobs: dict[str, Any], root: Any) -> list[str]:
    """A job of the project's own needs sql and a schedule; cron and every exclude each other."""
    problems = []
    for name, job in jobs.items():
        if not isinstance(job, dict):
            continue
        if "cron" in job and "every" in job:
            problems.append(f"{name}: set cron or every, not both")
        if name in DEFAULT_JOBS:
            if "sql" in job:
                problems.append(f"{name}.sql: {name} is a built-in job; give yours another name")
            continue
        if not job.get("sql"):
            problems.append(
                f"{name}: not a built-in job ({', '.join(DEFAULT_JOBS)}); a job of your own "
                'needs sql = "..."'
            )
        if "cron" not in job and "every" not in job:
            problems.append(f'{name}: needs a schedule: cron = "..." or every = "..."')
    return problems


def _every(v: Any) -> Any:
    if _is_duration(v) < 1:
        raise ValueError(f"{v!r} is shorter than 1s (the scheduler counts whole seconds)")
    return v


JOB = Table(
    {
        "cron": Field(str, None, "five-field cron expression (default: the job's own)", check_cron),
        "every": Field(
            str,
            None,
            "instead of cron: a fixed interval such as 30s, aligned to the clock",
            _every,
        ),
        "enabled": Field(bool, True, "false: the scheduler never runs this job"),
        "sql": Field(str, None, "a job of your own: this statement, in one transaction"),
    }
)

SECTION = Table(
    {
        "timezone": Field(
            str, "UTC", "the time zone the cron expressions are read in", is_timezone
        ),
        "misfire_grace": Field(
            str, "5m", "a tick missed by less than this (busy, asleep) still runs", _every
        ),
        "shutdown_grace": Field(
            str, "60s", "on SIGTERM, how long the running job may take to finish", _is_duration
        ),
        "heartbeat_every": Field(
            str, "30s", "how often a scheduler says it is alive", _is_duration
        ),
        "keep_history": Field(
            str,
            "30d",
            "job runs, sent alerts and stopped schedulers older than this are "
            "deleted (by the alerts job)",
            _is_duration,
        ),
        "stale_after": Field(
            str, "5m", "SCHEDULER_DOWN when a scheduler's heartbeat is older", _is_duration
        ),
        "jobs": Table(
            item=JOB, key_check=_job_name, check=_jobs_check, doc="[scheduler.jobs.<name>]"
        ),
    }
)


@dataclass(frozen=True)
class JobSchedule:
    """When a job runs: a cron expression, or ``every`` seconds (aligned to the epoch)."""

    name: str
    cron: str | None = None
    every: float | None = None
    doc: str = ""

    def describe(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {self.every:g}s"


def job_schedules(config: Any) -> dict[str, JobSchedule]:
    """Every enabled job's schedule (built-in defaults, then config), by job name."""
    configured = config.get("scheduler.jobs")
    out: dict[str, JobSchedule] = {}
    names = [*DEFAULT_JOBS, *(n for n in configured if n not in DEFAULT_JOBS)]
    for name in names:
        own = configured.get(name, {})
        if not own.get("enabled", True):
            continue
        doc = DEFAULT_JOBS.get(name, {}).get("doc", "the project's own SQL job")
        if own.get("every"):
            out[name] = JobSchedule(name, every=parse_duration(own["every"]), doc=doc)
        else:
            out[name] = JobSchedule(name, cron=own.get("cron") or DEFAULT_JOBS[name]["cron"],
                                    doc=doc)  # fmt: skip
    return out


def job_schedule(config: Any) -> dict[str, str]:
    """Every enabled job's cron expression, by job name (jobs run by interval are left out)."""
    return {n: s.cron for n, s in job_schedules(config).items() if s.cron}
