"""The dashboard's memory: headline numbers of each build, and when each secret last changed.

Both live in the project's state store (``<state_dir>/state.sqlite3``, see
:mod:`ops.alerts.store`), next to the alert spool and the job history, so a
dashboard built on any host of a project shows the trends that host saw.
Points are pruned by age (``[dashboard] history_keep``) and read back thinned
to at most :data:`MAX_POINTS` (the newest point of each time bucket), so a
build every five minutes for months stays cheap to draw.

Secrets are remembered by fingerprint (the 8 hex characters already shown
everywhere), never by value: the age shown is how long this fingerprint has
been seen, i.e. the time since the value last changed as far as empire-ops
knows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ops.alerts.store import StateStore

MAX_POINTS = 120
SEVERITIES = ("critical", "error", "warning", "info")
# The columns of a point, in order (``tables``: JSON of the largest tables' sizes).
COLUMNS = (
    "db_bytes", "cache_hit", "connections", "backup_bytes", "backup_seconds", "rto_seconds",
    "critical", "error", "warning", "info", "tables",
)  # fmt: skip

_SCHEMA = """
create table if not exists dashboard_history (
  at real primary key,
  db_bytes integer, cache_hit real, connections integer,
  backup_bytes integer, backup_seconds real, rto_seconds real,
  critical integer not null, error integer not null, warning integer not null,
  info integer not null,
  tables text not null default '{}'
);
create table if not exists secret_fingerprints (
  name text not null,
  fingerprint text not null,
  first_seen real not null,
  last_seen real not null,
  primary key (name, fingerprint)
);
"""


def ensure_tables(store: StateStore) -> None:
    """Create the history tables when missing (idempotent); storage errors as the store's."""
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            store.query(statement)


def record_point(store: StateStore, at: float, point: dict[str, Any], keep_seconds: float) -> None:
    """Append one build's headline numbers and drop points older than ``keep_seconds``."""
    ensure_tables(store)
    values = [point.get(c) for c in COLUMNS]
    values[COLUMNS.index("tables")] = json.dumps(point.get("tables") or {}, sort_keys=True)
    for i, name in enumerate(COLUMNS):
        if name in SEVERITIES:
            values[i] = int(values[i] or 0)
    with store.locked() as conn:
        conn.execute(
            f"insert or replace into dashboard_history (at, {', '.join(COLUMNS)}) "
            f"values (?, {', '.join('?' for _ in COLUMNS)})",
            [at, *values],
        )
        conn.execute("delete from dashboard_history where at < ?", (at - keep_seconds,))


def read_points(
    store: StateStore, since: float, max_points: int = MAX_POINTS
) -> list[dict[str, Any]]:
    """The points since ``since``, oldest first, thinned to about ``max_points``."""
    ensure_tables(store)
    bounds = store.query("select min(at) as lo, max(at) as hi from dashboard_history "
                         "where at >= ?", (since,))[0]  # fmt: skip
    if bounds["lo"] is None:
        return []
    bucket = max((bounds["hi"] - bounds["lo"]) / max(max_points - 1, 1), 1e-6)
    rows = store.query(
        "select * from dashboard_history where at in (select max(at) from dashboard_history "
        "where at >= ? group by cast((at - ?) / ? as integer)) order by at",
        (since, bounds["lo"], bucket),
    )
    out = []
    for row in rows:
        point = {k: row[k] for k in row.keys()}  # noqa: SIM118 (sqlite3.Row)
        point["tables"] = json.loads(point["tables"] or "{}")
        out.append(point)
    return out


def secret_ages(store: StateStore, rows: Iterable[dict[str, Any]], now: float) -> dict[str, float]:
    """Name -> when its current fingerprint was first seen; records the ones seen now.

    ``rows`` are ``secrets status`` rows (name, fingerprint). A row without a
    fingerprint (unset, weak) has no age.
    """
    ensure_tables(store)
    out: dict[str, float] = {}
    with store.locked() as conn:
        for row in rows:
            fp = row.get("fingerprint")
            if not fp or fp.startswith("("):
                continue
            conn.execute(
                "insert into secret_fingerprints (name, fingerprint, first_seen, last_seen) "
                "values (?, ?, ?, ?) on conflict (name, fingerprint) do update set "
                "last_seen = max(last_seen, excluded.last_seen)",
                (row["name"], fp, now, now),
            )
            first = conn.execute(
                "select first_seen from secret_fingerprints where name = ? and fingerprint = ?",
                (row["name"], fp),
            ).fetchone()
            out[row["name"]] = float(first[0])
    return out
