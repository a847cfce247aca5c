"""The ``[scheduler]`` config section (light: no APScheduler import until a cron is checked)."""

from __future__ import annotations

from typing import Any

from ops.config import Field, Table, _is_duration, check_cron, is_timezone

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
    "alerts": {
        "cron": "* * * * *",
        "doc": "find stale schedulers, then deliver the spooled alerts",
    },
}


def _job_name(name: str) -> Any:
    if name not in DEFAULT_JOBS:
        raise ValueError(f"{name!r} is not a job; known jobs: {', '.join(DEFAULT_JOBS)}")
    return name


JOB = Table(
    {
        "cron": Field(str, None, "five-field cron expression (default: the job's own)", check_cron),
        "enabled": Field(bool, True, "false: the scheduler never runs this job"),
    }
)

SECTION = Table(
    {
        "timezone": Field(
            str, "UTC", "the time zone the cron expressions are read in", is_timezone
        ),
        "misfire_grace": Field(
            str, "5m", "a tick missed by less than this (busy, asleep) still runs", _is_duration
        ),
        "shutdown_grace": Field(
            str, "60s", "on SIGTERM, how long the running job may take to finish", _is_duration
        ),
        "heartbeat_every": Field(
            str, "30s", "how often a scheduler says it is alive", _is_duration
        ),
        "stale_after": Field(
            str, "5m", "SCHEDULER_DOWN when a scheduler's heartbeat is older", _is_duration
        ),
        "jobs": Table(item=JOB, key_check=_job_name, doc="[scheduler.jobs.<name>]"),
    }
)


def job_schedule(config: Any) -> dict[str, str]:
    """Every enabled job's cron expression, configured or default, by job name."""
    configured = config.get("scheduler.jobs")
    out: dict[str, str] = {}
    for name, default in DEFAULT_JOBS.items():
        own = configured.get(name, {})
        if own.get("enabled", True):
            out[name] = own.get("cron", default["cron"])
    return out
