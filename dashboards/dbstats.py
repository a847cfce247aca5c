"""The database's health, as PgHero and `supabase inspect db` read it: a handful of catalog queries.

:func:`database_health` runs a fixed number of statements on one connection
(each under the dashboard's statement timeout) and returns the numbers the
page shows with the findings they raise. It reads statistics views only:
nothing is locked, nothing is written, no table is scanned. Query texts
from ``pg_stat_activity`` are shown without their literals (a value typed
into a query is data, possibly personal, possibly a secret) and truncated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ops import db
from ops import findings as F
from ops.findings import Finding

# Transaction IDs are 32-bit; PostgreSQL stops assigning new ones about 2^31 after the
# oldest unfrozen one (its manual, "Preventing Transaction ID Wraparound Failures").
XID_LIMIT = 2**31
_XID_WARN, _XID_ERROR = 0.50, 0.75
_SEQUENCE_WARN, _SEQUENCE_ERROR = 0.90, 0.98
_CACHE_HEALTHY = 0.99  # PgHero's and Supabase's threshold
_CACHE_MIN_BLOCKS = 10_000  # below this many reads a ratio says nothing yet
_CONNECTIONS_WARN = 0.80
_UNUSED_MIN_BYTES = 1 << 20  # PgHero leaves tiny indexes out: they cost nothing
_QUERY_SHOWN = 200
_TYPE_MAX = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}

_OVERVIEW = """
select current_setting('server_version') as version,
       pg_database_size(current_database()) as size_bytes,
       extract(epoch from now() - pg_postmaster_start_time())::float8 as uptime_seconds,
       current_setting('max_connections')::int as max_connections,
       (select age(datfrozenxid) from pg_database where datname = current_database()) as xid_age,
       (select coalesce(sum(heap_blks_hit), 0) from pg_statio_user_tables) as table_hit,
       (select coalesce(sum(heap_blks_read), 0) from pg_statio_user_tables) as table_read,
       (select coalesce(sum(idx_blks_hit), 0) from pg_statio_user_indexes) as index_hit,
       (select coalesce(sum(idx_blks_read), 0) from pg_statio_user_indexes) as index_read,
       current_setting('autovacuum_vacuum_threshold')::float8 as vacuum_threshold,
       current_setting('autovacuum_vacuum_scale_factor')::float8 as vacuum_scale_factor
"""

# Client sessions of the whole server (max_connections is the server's limit). A
# role without pg_read_all_stats sees other roles' sessions without a state.
_CONNECTIONS = """
select coalesce(state, 'unknown') as state, count(*)::int as count
from pg_stat_activity where backend_type = 'client backend'
group by 1 order by 2 desc
"""

# The size functions take a relation's ACCESS SHARE lock, so they would wait behind
# an ACCESS EXCLUSIVE lock (granted or queued: an ALTER TABLE, a REINDEX) until the
# statement timeout. Such relations get no size rather than stalling the page.
_LOCKED = """
with locked as (
  select relation from pg_locks
  where locktype = 'relation' and mode = 'AccessExclusiveLock'
    and database = (select oid from pg_database where datname = current_database())
)
"""

_TABLES = (
    _LOCKED
    + """
, tables as (
  select s.*, c.reltuples, c.relfrozenxid,
         c.oid in (select relation from locked)
         or c.reltoastrelid in (select relation from locked)
         or exists (select 1 from pg_index i where i.indrelid = c.oid
                    and i.indexrelid in (select relation from locked)) as is_locked
  from pg_stat_user_tables s join pg_class c on c.oid = s.relid
)
select s.schemaname as schema, s.relname as name, s.reltuples::float8 as rows_estimate,
       case when is_locked then null else pg_table_size(s.relid) end as table_bytes,
       is_locked,
       coalesce(s.seq_scan, 0) as seq_scan, coalesce(s.idx_scan, 0) as idx_scan,
       s.n_dead_tup as dead_tuples, s.n_live_tup as live_tuples,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       age(s.relfrozenxid) as xid_age
from tables s
"""
)

_INDEXES = (
    _LOCKED
    + """
select s.schemaname as schema, s.relname as table, s.indexrelname as name,
       case when s.indexrelid in (select relation from locked)
            or s.relid in (select relation from locked) then null
            else pg_relation_size(s.indexrelid) end as size_bytes,
       coalesce(s.idx_scan, 0) as scans,
       i.indisunique as is_unique, i.indisprimary as is_primary, i.indisvalid as is_valid,
       exists (select 1 from pg_constraint k where k.conindid = i.indexrelid) as backs_constraint,
       am.amname as method, i.indkey::text as keys, i.indclass::text as opclasses,
       coalesce(pg_get_expr(i.indexprs, i.indrelid), '') as expressions,
       coalesce(pg_get_expr(i.indpred, i.indrelid), '') as predicate
from pg_stat_user_indexes s
join pg_index i on i.indexrelid = s.indexrelid
join pg_class ic on ic.oid = s.indexrelid
join pg_am am on am.oid = ic.relam
"""
)

_LONG_QUERIES = """
select pid, usename as role, state, wait_event_type,
       extract(epoch from now() - query_start)::float8 as seconds, query
from pg_stat_activity
where state is not null and state <> 'idle' and pid <> pg_backend_pid()
  and backend_type = 'client backend' and query_start < now() - make_interval(secs => %(s)s)
order by query_start
"""

_BLOCKING = """
select pid, pg_blocking_pids(pid) as blocked_by, usename as role, state, wait_event_type,
       extract(epoch from now() - coalesce(query_start, backend_start))::float8 as seconds, query
from pg_stat_activity
where cardinality(pg_blocking_pids(pid)) > 0
order by seconds desc
"""

# Each sequence with the column it feeds (serial or identity): the limit that
# matters is the smaller of the sequence's maximum and the column type's.
_SEQUENCES = """
select s.schemaname as schema, s.sequencename as name, s.last_value, s.max_value,
       s.increment_by, a.attrelid::regclass::text as table_name, a.attname as column_name,
       format_type(a.atttypid, null) as column_type
from pg_sequences s
join pg_namespace n on n.nspname = s.schemaname
join pg_class sc on sc.relname = s.sequencename and sc.relnamespace = n.oid
left join pg_depend d on d.objid = sc.oid and d.classid = 'pg_class'::regclass
     and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')
left join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
where s.schemaname not in ('pg_catalog', 'information_schema')
"""

QUERY_COUNT = 7

_LITERAL = re.compile(
    r"""(?xs)
      \$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$     # dollar-quoted text
    | [Ee]'(?:[^'\\]|\\.|'')*'                  # E'' strings, backslash escapes
    | [BbXxNn]?'(?:[^']|'')*'                     # quoted strings, '' escapes
    | (?<![\w$])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?  # numbers (not $1 or t1)
    """
)


def normalize_query(text: str | None, limit: int = _QUERY_SHOWN) -> str:
    """A query as it may be shown: literals replaced by ``?``, whitespace folded, truncated.

    ``pg_stat_activity`` shows what a client sent, values included; a
    parameter (``$1``) carries none and stays as it is.
    """
    if not text:
        return ""
    if text.startswith("<insufficient privilege>"):
        return "(another role's query: not visible to this role)"
    folded = " ".join(_LITERAL.sub("?", text).split())
    return folded if len(folded) <= limit else folded[: limit - 1] + "…"


@dataclass
class DatabaseHealth:
    """What :func:`database_health` read: plain data for the page, and its findings."""

    data: dict[str, Any]
    findings: list[Finding]


def database_health(conn: Any, *, long_query_seconds: float = 60.0) -> DatabaseHealth:
    """Read the server's statistics through ``conn`` (from ``ops.db.connect``).

    Returns every table and index (the page shows the top of each), the long-
    running queries and the blocked sessions, with findings: DB_CACHE_HIT_LOW,
    DB_CONNECTIONS_HIGH, DB_LONG_QUERY, DB_BLOCKED, DB_XID_WRAPAROUND,
    DB_SEQUENCE_NEAR_OVERFLOW, DB_INDEX_INVALID, DB_INDEX_DUPLICATE (warnings
    or worse), DB_INDEX_UNUSED and DB_VACUUM_BEHIND (info). Raises
    DatabaseError or DatabaseUnreachable when a query fails.
    """
    with db.scoped_search_path(conn, "pg_catalog"):
        overview = db.run_query(conn, _OVERVIEW)[0]
        connections = db.run_query(conn, _CONNECTIONS)
        tables = db.run_query(conn, _TABLES)
        indexes = db.run_query(conn, _INDEXES)
        long_queries = db.run_query(conn, _LONG_QUERIES, {"s": long_query_seconds})
        blocking = db.run_query(conn, _BLOCKING)
        sequences = db.run_query(conn, _SEQUENCES)
    findings: list[Finding] = []
    data: dict[str, Any] = {
        "version": overview["version"],
        "size_bytes": int(overview["size_bytes"]),
        "uptime_seconds": round(float(overview["uptime_seconds"])),
        "connections": _connections(connections, int(overview["max_connections"]), findings),
        "cache_hit": _cache_hit(overview, findings),
        "xid": _xid(int(overview["xid_age"] or 0), tables, findings),
        "tables": _tables(tables, overview, indexes),
        "indexes": _indexes(indexes, findings),
        "long_queries": [_activity(r) for r in long_queries],
        "blocking": [{**_activity(r), "blocked_by": list(r["blocked_by"])} for r in blocking],
        "sequences": _sequences(sequences, findings),
    }
    for q in data["long_queries"]:
        findings.append(F.warning("DB_LONG_QUERY", f"pid {q['pid']}",
                                  f"a query of {q['role']} has run {q['seconds']:.0f} s "
                                  f"({q['state']}): {q['query']}"))  # fmt: skip
    for b in data["blocking"]:
        by = ", ".join(str(p) for p in b["blocked_by"])
        message = f"waits {b['seconds']:.0f} s for a lock held by pid {by}"
        findings.append(F.warning("DB_BLOCKED", f"pid {b['pid']}", message))
    vacuum = [t for t in data["tables"] if t["needs_vacuum"]]
    if vacuum:
        names = ", ".join(t["table"] for t in sorted(vacuum, key=lambda t: -t["dead_tuples"])[:5])
        findings.append(F.info("DB_VACUUM_BEHIND", "vacuum",
                               f"{len(vacuum)} table(s) have more dead rows than autovacuum's "
                               f"threshold: {names}"))  # fmt: skip
    return DatabaseHealth(data, findings)


def _ratio(hit: Any, read: Any) -> float | None:
    total = int(hit) + int(read)
    return round(int(hit) / total, 5) if total else None


def _cache_hit(row: dict[str, Any], findings: list[Finding]) -> dict[str, Any]:
    out = {
        "table": _ratio(row["table_hit"], row["table_read"]),
        "index": _ratio(row["index_hit"], row["index_read"]),
    }
    for kind in ("table", "index"):
        blocks = int(row[f"{kind}_hit"]) + int(row[f"{kind}_read"])
        ratio = out[kind]
        if ratio is not None and blocks >= _CACHE_MIN_BLOCKS and ratio < _CACHE_HEALTHY:
            findings.append(F.warning("DB_CACHE_HIT_LOW", f"{kind} cache",
                                      f"{kind} cache hit ratio {ratio:.1%} (healthy: 99% or "
                                      f"more) over {blocks} block reads"))  # fmt: skip
    return out


def _connections(rows: list[dict[str, Any]], limit: int, findings: list[Finding]) -> dict[str, Any]:
    by_state = {r["state"]: r["count"] for r in rows}
    total = sum(by_state.values())
    if limit and total >= _CONNECTIONS_WARN * limit:
        findings.append(F.warning("DB_CONNECTIONS_HIGH", "connections",
                                  f"{total} of max_connections {limit} in use"))  # fmt: skip
    return {"total": total, "max": limit, "by_state": by_state}


def _xid(age: int, tables: list[dict[str, Any]], findings: list[Finding]) -> dict[str, Any]:
    oldest = sorted(tables, key=lambda t: -int(t["xid_age"] or 0))[:5]
    fraction = age / XID_LIMIT
    if fraction >= _XID_WARN:
        make = F.error if fraction >= _XID_ERROR else F.warning
        findings.append(make("DB_XID_WRAPAROUND", "database",
                             f"the oldest unfrozen transaction ID is {age:,} old, {fraction:.0%} "
                             "of the way to wraparound: autovacuum is not freezing fast "
                             "enough"))  # fmt: skip
    return {
        "age": age,
        "fraction": round(fraction, 5),
        "oldest_tables": [
            {"table": f"{t['schema']}.{t['name']}", "age": int(t["xid_age"] or 0)} for t in oldest
        ],
    }


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _tables(
    rows: list[dict[str, Any]], overview: dict[str, Any], indexes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every table, largest first; a table never analyzed has no row estimate (None).

    The total is the table's own size (with TOAST) plus its indexes' from the indexes
    query: pg_total_relation_size would open and measure every index a second time.
    """
    index_bytes: dict[str, int] = {}
    for i in indexes:
        key = f"{i['schema']}.{i['table']}"
        index_bytes[key] = index_bytes.get(key, 0) + int(i["size_bytes"] or 0)
    out = []
    for r in rows:
        estimate = float(r["rows_estimate"])
        known = estimate >= 0  # -1: never vacuumed or analyzed (PostgreSQL 14+)
        dead = int(r["dead_tuples"] or 0)
        scale = overview["vacuum_scale_factor"] * max(estimate, 0)
        threshold = overview["vacuum_threshold"] + scale
        out.append(
            {
                "table": f"{r['schema']}.{r['name']}",
                "rows_estimate": round(estimate) if known else None,
                "total_bytes": None
                if r["table_bytes"] is None
                else int(r["table_bytes"]) + index_bytes.get(f"{r['schema']}.{r['name']}", 0),
                "table_bytes": _size(r["table_bytes"]),
                "locked": bool(r["is_locked"]),
                "seq_scan": int(r["seq_scan"]),
                "idx_scan": int(r["idx_scan"]),
                "dead_tuples": dead,
                "needs_vacuum": dead > threshold,
                "last_vacuum": _when(_latest(r["last_vacuum"], r["last_autovacuum"])),
                "last_analyze": _when(_latest(r["last_analyze"], r["last_autoanalyze"])),
                "xid_age": int(r["xid_age"] or 0),
            }
        )
    out.sort(key=lambda t: (-(t["total_bytes"] or 0), t["table"]))
    return out


def _size(value: Any) -> int | None:
    """A size in bytes; None for a relation locked exclusively when it was read."""
    return None if value is None else int(value)


def _latest(*values: Any) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _indexes(rows: list[dict[str, Any]], findings: list[Finding]) -> list[dict[str, Any]]:
    """Every index, largest first, flagged unused, invalid or duplicate (covered by another)."""
    covered = _covered(rows)
    out: list[dict[str, Any]] = []
    for r in rows:
        name = f"{r['schema']}.{r['name']}"
        unique = bool(r["is_unique"] or r["is_primary"] or r["backs_constraint"])
        size = _size(r["size_bytes"])
        unused = int(r["scans"]) == 0 and not unique and (size or 0) >= _UNUSED_MIN_BYTES
        out.append(
            {
                "index": name,
                "table": f"{r['schema']}.{r['table']}",
                "size_bytes": size,
                "scans": int(r["scans"]),
                "unique": unique,
                "valid": bool(r["is_valid"]),
                "unused": unused,
                "duplicate_of": covered.get(name),
            }
        )
        if not r["is_valid"]:
            findings.append(F.warning("DB_INDEX_INVALID", name,
                                      f"index {name} is invalid (a failed CREATE INDEX "
                                      "CONCURRENTLY?): writes maintain it, no query uses "
                                      "it"))  # fmt: skip
        if name in covered:
            findings.append(F.warning("DB_INDEX_DUPLICATE", name,
                                      f"index {name} is covered by {covered[name]}: every write "
                                      "pays for both"))  # fmt: skip
        if unused:
            findings.append(F.info("DB_INDEX_UNUSED", name,
                                   f"index {name} has not been scanned since the statistics "
                                   "were reset"))  # fmt: skip
    out.sort(key=lambda i: (-(i["size_bytes"] or 0), i["index"]))
    return out


def _covered(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Index -> the valid index that covers it: same table, method, expressions and
    predicate, and its columns (with their operator classes) a leading part of the other's.

    A unique index is covered only by a unique one with exactly its columns (its
    constraint needs them all), one backing a constraint only by another such; of
    two identical ones the earlier name is kept. The coverer named is the one to
    keep: backing a constraint, unique, widest, then by name.
    """
    by_table: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        by_table.setdefault((r["schema"], r["table"]), []).append(r)
    out: dict[str, str] = {}
    for group in by_table.values():
        for a in group:
            covering = [b for b in group if b is not a and _covers(b, a)]
            if covering:
                best = min(covering, key=_keep_first)
                out[f"{a['schema']}.{a['name']}"] = f"{best['schema']}.{best['name']}"
    return out


def _keep_first(b: dict[str, Any]) -> tuple[bool, bool, int, str]:
    return (not b["backs_constraint"], not b["is_unique"], -len(b["keys"].split()), b["name"])


def _covers(b: dict[str, Any], a: dict[str, Any]) -> bool:
    """Whether index ``b`` makes index ``a`` unneeded (see :func:`_covered`)."""
    if not b["is_valid"] or (a["method"], a["expressions"], a["predicate"]) != (
        b["method"], b["expressions"], b["predicate"],
    ):  # fmt: skip
        return False
    ka, kb = a["keys"].split(), b["keys"].split()
    ca, cb = a["opclasses"].split(), b["opclasses"].split()
    if kb[: len(ka)] != ka or cb[: len(ca)] != ca:
        return False
    same = len(ka) == len(kb)
    if a["is_unique"] and not (same and b["is_unique"]):
        return False
    if a["backs_constraint"] and not b["backs_constraint"]:
        return False  # drop the other one: the constraint needs this
    twins = same and (a["is_unique"], a["backs_constraint"]) == (
        b["is_unique"],
        b["backs_constraint"],
    )
    return not (twins and a["name"] < b["name"])


def _activity(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "pid": r["pid"],
        "role": r["role"] or "",
        "state": r.get("state") or "",
        "wait": r["wait_event_type"] or "",
        "seconds": round(float(r["seconds"] or 0), 1),
        "query": normalize_query(r["query"]),
    }


def _sequences(rows: list[dict[str, Any]], findings: list[Finding]) -> list[dict[str, Any]]:
    """Sequences by how much of their range is used (of the column's type where it feeds one)."""
    out = []
    for r in rows:
        if r["last_value"] is None or r["increment_by"] < 0:
            continue  # never used (or not readable by this role); descending ones are rare
        limit = int(r["max_value"])
        if r["column_type"] in _TYPE_MAX:
            limit = min(limit, _TYPE_MAX[r["column_type"]])
        fraction = int(r["last_value"]) / limit if limit > 0 else 0.0
        name = f"{r['schema']}.{r['name']}"
        column = f"{r['table_name']}.{r['column_name']}" if r["column_name"] else None
        out.append({"sequence": name, "column": column, "column_type": r["column_type"],
                    "last_value": int(r["last_value"]), "limit": limit,
                    "fraction": round(fraction, 5)})  # fmt: skip
        if fraction >= _SEQUENCE_WARN:
            make = F.error if fraction >= _SEQUENCE_ERROR else F.warning
            what = f"{column} ({r['column_type']})" if column else name
            findings.append(make("DB_SEQUENCE_NEAR_OVERFLOW", name,
                                 f"{what} has used {fraction:.1%} of its range: inserts fail "
                                 "when it runs out"))  # fmt: skip
    out.sort(key=lambda s: (-s["fraction"], s["sequence"]))
    return out
