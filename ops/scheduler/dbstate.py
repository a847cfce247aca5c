"""What the scheduler keeps in the database itself, so every host sees it.

Two small tables in the runner's own schema (``[migrate] history_schema``,
default ``ops``), created on first use like ``ops.migration_history``:

- ``scheduler_runs``: one row per (job, scheduled tick), inserted under the
  job's advisory lock before the job starts. The lock stops two hosts running
  a job *at the same time*; the row stops a host whose clock is a little late
  from running the same tick *again* after the first host finished.
- ``scheduler_heartbeats``: each scheduler's last sign of life and its jobs'
  next runs and last results, read by ``scheduler status`` on any host.

Job runs are also recorded in ``public.admin_logs`` (``scheduler.job``), and
failures in ``public.error_logs``, when those tables exist. All of it is best
effort: a database that refuses (no privilege, the tables missing) leaves the
state store's history, and the caller logs why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from ops import db

log = logging.getLogger("ops.scheduler")
T = TypeVar("T")


def on_database(
    config: Any,
    target: Any,
    action: Callable[[Any], T],
    what: str,
    *,
    create: bool = True,
    quiet: bool = False,
) -> T | None:
    """``action(conn)`` on a connection of its own to ``target``'s database, best effort.

    The scheduler's tables are created first (``create``). Returns what the
    action returns, or None when there is no target, the database does not
    answer or it refuses (each logged with ``what`` failed): the state store
    keeps what the database could not.
    """
    from ops.errors import OpsError

    if target is None:
        return None
    try:
        conn = db.connect(target.dsn, target.options, autocommit=True)
    except OpsError as exc:
        log.warning("%s: the database is unreachable: %s", what, exc.message)
        return None
    try:
        if create:
            ensure_tables(conn, config)
        return action(conn)
    except OpsError as exc:
        # A read that finds nothing to read (no scheduler has run yet) is not news.
        (log.debug if quiet else log.warning)("%s: not done in the database: %s", what,
                                              exc.message)  # fmt: skip
        return None
    finally:
        conn.close()


def _schema(config: Any) -> db.Identifier:
    return db.Identifier(config.get("migrate.history_schema"))


def ensure_tables(conn: Any, config: Any) -> None:
    """Create the scheduler's two tables when missing. Raises DatabaseError (no privilege)."""
    schema = _schema(config)
    statements = [
        db.SQL("create schema if not exists {}").format(schema),
        db.SQL(
            "create table if not exists {}.scheduler_runs ("
            " job text not null, scheduled_for timestamptz not null, host text not null,"
            " pid integer not null, started_at timestamptz not null default now(),"
            " ended_at timestamptz, outcome text not null default 'running',"
            " primary key (job, scheduled_for))"
        ).format(schema),
        db.SQL(
            "create table if not exists {}.scheduler_heartbeats ("
            " scheduler_id text primary key, host text not null, pid integer not null,"
            " started_at timestamptz not null, last_seen timestamptz not null,"
            " state text not null, jobs jsonb not null default '{{}}'::jsonb)"
        ).format(schema),
    ]
    for statement in statements:
        db.run_query(conn, statement)


def claim_tick(conn: Any, config: Any, job: str, scheduled_for: float, host: str, pid: int) -> bool:
    """Record that this host runs ``job``'s tick ``scheduled_for``; False if one already did."""
    rows = db.run_query(
        conn,
        db.SQL(
            "insert into {}.scheduler_runs (job, scheduled_for, host, pid) "
            "values (%s, to_timestamp(%s), %s, %s) on conflict do nothing returning job"
        ).format(_schema(config)),
        (job, scheduled_for, host, pid),
    )
    return bool(rows)


def unfinished_run(
    conn: Any, config: Any, job: str, host: str, pid: int, stale_after: float
) -> str | None:
    """A host whose run of ``job`` has not ended while its scheduler still beats, or None.

    Such a run lost its lock (its connection dropped) and may still be working;
    a run whose scheduler stopped beating is presumed dead. Runs started by
    cron have no heartbeat and are not considered (docs/scheduler.md).
    """
    schema = _schema(config)
    rows = db.run_query(
        conn,
        db.SQL(
            "select r.host from {}.scheduler_runs r join {}.scheduler_heartbeats h"
            " on h.host = r.host and h.pid = r.pid"
            " where r.job = %s and r.ended_at is null and not (r.host = %s and r.pid = %s)"
            # the run's own scheduler (started before it: a reused pid is another one),
            # still beating, and the run no older than a day (a lost finish_tick)
            " and h.started_at <= r.started_at and r.started_at > now() - interval '1 day'"
            " and h.state not in ('stopped', 'gone')"
            " and h.last_seen > now() - make_interval(secs => %s)"
            " limit 1"
        ).format(schema, schema),
        (job, host, pid, stale_after),
    )
    return str(rows[0]["host"]) if rows else None


def prune(conn: Any, config: Any, before: float) -> None:
    """Delete ticks and stopped schedulers' heartbeats older than ``before`` (epoch seconds)."""
    schema = _schema(config)
    db.run_query(
        conn,
        db.SQL("delete from {}.scheduler_runs where scheduled_for < to_timestamp(%s)").format(
            schema
        ),
        (before,),
    )
    db.run_query(
        conn,
        db.SQL(
            "delete from {}.scheduler_heartbeats where state in ('stopped', 'gone') "
            "and last_seen < to_timestamp(%s)"
        ).format(schema),
        (before,),
    )


def finish_tick(conn: Any, config: Any, job: str, scheduled_for: float, outcome: str) -> None:
    db.run_query(
        conn,
        db.SQL(
            "update {}.scheduler_runs set ended_at = now(), outcome = %s "
            "where job = %s and scheduled_for = to_timestamp(%s)"
        ).format(_schema(config)),
        (outcome, job, scheduled_for),
    )


def beat(conn: Any, config: Any, row: dict[str, Any]) -> None:
    """Upsert one scheduler's heartbeat (``row`` as the state store's heartbeats row)."""
    db.run_query(
        conn,
        db.SQL(
            "insert into {}.scheduler_heartbeats as h "
            "(scheduler_id, host, pid, started_at, last_seen, state, jobs) values "
            "(%s, %s, %s, to_timestamp(%s), to_timestamp(%s), %s, %s::jsonb) "
            "on conflict (scheduler_id) do update set last_seen = excluded.last_seen, "
            "state = excluded.state, jobs = excluded.jobs"
        ).format(_schema(config)),
        (
            row["scheduler_id"],
            row["host"],
            row["pid"],
            row["started_at"],
            row["last_seen"],
            row["state"],
            row["jobs"],
        ),
    )


def set_state(conn: Any, config: Any, scheduler_ids: list[str], state: str) -> None:
    """Mark these schedulers' heartbeats ``state`` (``gone``: found dead by their host)."""
    if scheduler_ids:
        db.run_query(
            conn,
            db.SQL(
                "update {}.scheduler_heartbeats set state = %s where scheduler_id = any(%s)"
            ).format(_schema(config)),
            (state, scheduler_ids),
        )


def forget(conn: Any, config: Any, host: str) -> int:
    """Delete every heartbeat of ``host``; how many there were."""
    rows = db.run_query(
        conn,
        db.SQL("delete from {}.scheduler_heartbeats where host = %s returning 1").format(
            _schema(config)
        ),
        (host,),
    )
    return len(rows)


def heartbeats(conn: Any, config: Any) -> list[dict[str, Any]]:
    """Every scheduler's heartbeat in the database (times as epoch seconds)."""
    rows = db.run_query(
        conn,
        db.SQL(
            "select scheduler_id, host, pid, extract(epoch from started_at)::float8 as started_at,"
            " extract(epoch from last_seen)::float8 as last_seen, state, jobs::text as jobs"
            " from {}.scheduler_heartbeats order by host, pid"
        ).format(_schema(config)),
    )
    return [dict(r) for r in rows]


def record_run(conn: Any, report: Any, *, errors: bool = True) -> None:
    """One ``admin_logs`` row per job run, and (``errors``) an ``error_logs`` row when it failed."""
    summary = {
        "job": report.job,
        "outcome": report.outcome,
        "exit_code": report.exit_code,
        "scheduled_for": report.scheduled_for,
        "started_at": report.started_at,
        "ended_at": report.ended_at,
        "findings": [f"{f.severity.label}:{f.code}:{f.subject}" for f in report.findings],
    }
    from ops.logs import redact_data

    summary = redact_data(summary)
    with db.transaction(conn):
        db.run_query(
            conn,
            "insert into public.admin_logs (action, subject, actor_id, after, meta) "
            "values ('scheduler.job', %s, %s, %s::jsonb, %s::jsonb)",
            (
                report.job,
                f"empire-ops@{report.host}",
                json.dumps(summary),
                json.dumps({"host": report.host, "pid": report.pid}),
            ),
        )
        if errors and report.outcome == "failed":
            problems = [f for f in report.findings if f.is_problem]
            message = problems[0].message if problems else f"job {report.job} failed"
            db.run_query(
                conn,
                "insert into public.error_logs (severity, source, message, context) "
                "values (%s, 'empire-ops:scheduler', %s, %s::jsonb)",
                (
                    "critical" if any(f.severity.label == "critical" for f in problems)
                    else "error",
                    redact_data(message),
                    json.dumps(summary),
                ),
            )  # fmt: skip
