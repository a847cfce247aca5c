"""The collector on real databases: each part read, a missing one said, a failing one a finding."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dashboards import history
from dashboards.collect import PART_NAMES, collect_snapshot
from dashboards.dbstats import database_health, normalize_query
from ops import db
from ops.alerts.store import open_store
from ops.config import load_config
from tests.helpers import write_config, write_env


def _states(snapshot: object) -> dict[str, str]:
    return {name: part.state for name, part in snapshot.parts.items()}  # type: ignore[attr-defined]


def test_a_migrated_database_fills_every_part_it_has(dashboard_config: object) -> None:
    snap = collect_snapshot(dashboard_config)  # type: ignore[arg-type]
    states = _states(snap)
    assert list(states) == list(PART_NAMES)
    assert {n: states[n] for n in ("secrets", "migrations", "database", "security", "alerts",
                                   "logs")} == dict.fromkeys(
        ("secrets", "migrations", "database", "security", "alerts", "logs"), "ok")  # fmt: skip
    # Nothing was backed up, drilled or scheduled: said, never invented.
    assert states["backups"] == states["drills"] == states["scheduler"] == "not_configured"
    assert "backup run" in snap.parts["backups"].note
    data = snap.to_dict()
    assert data["parts"]["migrations"]["applied"] >= 10
    assert data["parts"]["migrations"]["pending"] == []
    database = data["parts"]["database"]
    assert database["size_bytes"] > 1_000_000 and database["connections"]["total"] >= 1
    assert any(t["table"] == "public.users" for t in database["tables"])
    assert any(i["index"] == "public.users_pkey" and i["unique"] for i in database["indexes"])
    names = [r["name"] for r in data["parts"]["secrets"]["items"]]
    assert "DATABASE_URL" in names
    # Worst first, and the status is the worst.
    severities = [f["severity"] for f in data["findings"]]
    order = ["critical", "error", "warning", "info", "ok"]
    assert severities == sorted(severities, key=order.index)
    assert data["status"] == severities[0]


def test_each_build_adds_a_trend_point(dashboard_config: object) -> None:
    first = collect_snapshot(dashboard_config, now=time.time() - 600)  # type: ignore[arg-type]
    second = collect_snapshot(dashboard_config)  # type: ignore[arg-type]
    assert len(first.history) == 1 and len(second.history) == 2
    point = second.history[-1]
    assert point["db_bytes"] > 0 and point["tables"]
    unrecorded = collect_snapshot(dashboard_config, record=False)  # type: ignore[arg-type]
    assert len(unrecorded.history) == 2


def test_no_database_at_all_is_not_configured_not_invented(tmp_path: Path) -> None:
    # No DATABASE_URL and the embedded server not running: nothing is started.
    config = load_config(write_config(tmp_path, ""))
    snap = collect_snapshot(config)
    states = _states(snap)
    for name in ("migrations", "database", "security", "logs"):
        assert states[name] == "not_configured", name
        assert "empire-ops up" in snap.parts[name].note
    assert snap.database == "not configured"
    assert not (tmp_path / ".empire" / "pgdata").exists()
    assert snap.to_dict()["parts"]["database"].keys() == {"state", "note", "seconds"}


def test_an_unreachable_database_is_a_finding_on_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:pw-x@127.0.0.1:{port}/empire")
    config = load_config(write_config(tmp_path, '[database]\nconnect_timeout = "1s"\n'))
    snap = collect_snapshot(config)
    states = _states(snap)
    assert [states[n] for n in ("migrations", "database", "security", "logs")] == [
        "unreachable"
    ] * 4
    codes = [f.code for f in snap.findings]
    assert codes[0] == "DB_UNREACHABLE" and snap.status == "error"
    assert "pw-x" not in str(snap.to_dict())


def test_a_locked_table_fails_the_parts_that_wait_and_only_those(
    dashboard_config: object, migrated_db: str, tmp_path: Path
) -> None:
    """An ALTER TABLE's lock held past the statement timeout: the parts that must read the
    table (its rows, the catalog's definitions) fail with a finding each; the statistics
    still render, the locked table shown without a size rather than waited for."""
    config = load_config(write_config(tmp_path, '[dashboard]\nstatement_timeout = "1s"\n'))
    with psycopg.connect(migrated_db) as holder:
        holder.execute("lock table public.error_logs in access exclusive mode")
        started = time.monotonic()
        snap = collect_snapshot(config)
        took = time.monotonic() - started
    states = _states(snap)
    assert states["logs"] == "failed" and "statement timeout" in snap.parts["logs"].note
    assert states["database"] == states["secrets"] == states["alerts"] == "ok"
    failed = {f.subject: f for f in snap.findings if f.code == "DASHBOARD_PART_FAILED"}
    assert "logs" in failed and failed["logs"].runbook == "runbooks/DASHBOARD_PART_FAILED.md"
    assert set(failed) <= {"logs", "migrations"}  # the catalog read may wait too
    tables = {t["table"]: t for t in snap.parts["database"].data["tables"]}
    # LOCK TABLE on a partitioned table locks its partitions.
    assert tables["public.error_logs_default"]["locked"] is True
    assert tables["public.error_logs_default"]["total_bytes"] is None
    assert tables["public.users"]["locked"] is False and tables["public.users"]["total_bytes"]
    assert took < 10


@pytest.fixture
def conn(migrated_db: str) -> Iterator[psycopg.Connection]:
    with db.connect(migrated_db, autocommit=True) as c:
        yield c


def _codes(health: object, code: str) -> dict[str, str]:
    return {f.subject: f.message for f in health.findings if f.code == code}  # type: ignore[attr-defined]


def test_duplicate_and_invalid_indexes_are_named(conn: psycopg.Connection) -> None:
    conn.execute("create table public.dup (a int, b int, c text)")
    conn.execute("insert into public.dup select 1, g, 'x' from generate_series(1, 10) g")
    conn.execute("create index dup_a on public.dup (a)")
    conn.execute("create index dup_ab on public.dup (a, b)")
    conn.execute("create index dup_b1 on public.dup (b)")
    conn.execute("create index dup_b2 on public.dup (b)")
    conn.execute("create index dup_c1 on public.dup (c)")
    conn.execute("create index dup_c2 on public.dup (c)")
    conn.execute("create unique index dup_b_unique on public.dup (b)")
    conn.execute("create index dup_a_partial on public.dup (a) where c is not null")
    conn.execute("create index dup_lower on public.dup (lower(c))")
    # A unique index built concurrently over duplicate values fails and stays invalid.
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("create unique index concurrently dup_a_unique on public.dup (a)")
    health = database_health(conn)
    duplicate = _codes(health, "DB_INDEX_DUPLICATE")
    assert "public.dup_a" in duplicate and "public.dup_ab" in duplicate["public.dup_a"]
    # Of two identical ones only the later name; the one named to keep is the unique
    # one when there is one; a unique index is not covered by a plain one; a partial
    # or expression index only by one with its predicate/expression.
    assert "public.dup_c2" in duplicate and "public.dup_c1" not in duplicate
    assert "public.dup_c1" in duplicate["public.dup_c2"]
    assert "public.dup_b_unique" in duplicate["public.dup_b1"]
    assert "public.dup_b_unique" in duplicate["public.dup_b2"]
    assert not {"public.dup_b_unique", "public.dup_ab", "public.dup_a_partial",
                "public.dup_lower"} & set(duplicate)  # fmt: skip
    assert set(_codes(health, "DB_INDEX_INVALID")) == {"public.dup_a_unique"}
    rows = {i["index"]: i for i in health.data["indexes"]}
    assert rows["public.dup_a_unique"]["valid"] is False
    assert rows["public.dup_a"]["duplicate_of"] == "public.dup_ab"


def test_sequences_near_their_column_type_limit(conn: psycopg.Connection) -> None:
    conn.execute("create table public.near (id serial primary key, n int)")
    conn.execute("create table public.far (id bigserial primary key)")
    conn.execute("select setval('public.near_id_seq', 2000000000)")  # 93% of integer
    conn.execute("select setval('public.far_id_seq', 2000000000)")  # tiny for bigint
    health = database_health(conn)
    found = _codes(health, "DB_SEQUENCE_NEAR_OVERFLOW")
    assert (
        list(found) == ["public.near_id_seq"]
        and "public.near.id (integer)" in found["public.near_id_seq"]
    )
    assert [f.severity.label for f in health.findings if f.code == "DB_SEQUENCE_NEAR_OVERFLOW"] == [
        "warning"
    ]
    conn.execute("select setval('public.near_id_seq', 2140000000)")  # 99.7%: an error
    again = database_health(conn)
    assert [f.severity.label for f in again.findings if f.code == "DB_SEQUENCE_NEAR_OVERFLOW"] == [
        "error"
    ]
    top = again.data["sequences"][0]
    assert top["sequence"] == "public.near_id_seq" and top["limit"] == 2**31 - 1


def test_long_queries_and_blocked_sessions_without_their_literals(
    conn: psycopg.Connection, migrated_db: str
) -> None:
    conn.execute("create table public.locked (id int)")
    holder = psycopg.connect(migrated_db)
    holder.execute("lock table public.locked in access exclusive mode")  # a transaction, open
    holder_pid = holder.info.backend_pid
    canary = "canary-literal-7f3a9c"

    def wait_for_lock() -> None:
        with psycopg.connect(migrated_db, autocommit=True) as waiter:
            waiter.execute(f"select count(*), '{canary}' from public.locked where id = 42")

    def sleeper() -> None:
        with psycopg.connect(migrated_db, autocommit=True) as c:
            c.execute(f"select pg_sleep(4), '{canary}'")

    threads = [threading.Thread(target=wait_for_lock), threading.Thread(target=sleeper)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.6)
        health = database_health(conn, long_query_seconds=1)
    finally:
        holder.rollback()
        holder.close()
        for t in threads:
            t.join()
    queries = [q["query"] for q in health.data["long_queries"]]
    assert "select pg_sleep(?), ?" in queries
    assert "select count(*), ? from public.locked where id = ?" in queries
    blocked = health.data["blocking"]
    assert len(blocked) == 1 and blocked[0]["blocked_by"] == [holder_pid]
    assert _codes(health, "DB_BLOCKED") and len(_codes(health, "DB_LONG_QUERY")) >= 2
    assert canary not in str(health.data) + str([f.message for f in health.findings])


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("select * from users where email = 'a@b.c' and id = 42",
         "select * from users where email = ? and id = ?"),
        ("select 'it''s', E'x\\'y', $q$ body 'x' $q$, $$raw$$", "select ?, ?, ?, ?"),
        ("select * from t1 where a = $1 and b = -3.5e2", "select * from t1 where a = $1 and b = ?"),
        ("update  x\n set   y = 1", "update x set y = ?"),
        ("<insufficient privilege>", "(another role's query: not visible to this role)"),
        ("", ""),
    ],
)  # fmt: skip
def test_query_texts_lose_their_literals(sent: str, shown: str) -> None:
    assert normalize_query(sent) == shown


def test_query_texts_are_truncated() -> None:
    shown = normalize_query("select " + ", ".join(f"col{i}" for i in range(200)), limit=50)
    assert len(shown) == 50 and shown.endswith("…")


def test_history_is_thinned_and_pruned(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""))
    now = 1_800_000_000.0
    with open_store(config) as store:
        for i in range(500):  # one every five minutes for about 42 hours
            at = now - (499 - i) * 300
            point = {"db_bytes": i, "critical": 0, "error": 0, "warning": i % 3, "info": 0}
            history.record_point(store, at, point, keep_seconds=86400)
        kept = store.query("select count(*) as n from dashboard_history")[0]["n"]
        points = history.read_points(store, now - 86400, max_points=50)
    assert kept == 289  # a day at five minutes, both ends included: older ones pruned
    assert 40 <= len(points) <= 50
    assert points[-1]["at"] == now and points[-1]["db_bytes"] == 499
    assert [p["at"] for p in points] == sorted(p["at"] for p in points)


def test_a_secret_age_restarts_when_its_value_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_env(tmp_path / ".env", {"SUPABASE_JWT_SECRET": "a" * 8 + "first-value-0123456789abcdef"})
    config = load_config(write_config(tmp_path, ""))
    first = collect_snapshot(config, now=1_800_000_000.0)
    row = next(
        r for r in first.parts["secrets"].data["items"] if r["name"] == "SUPABASE_JWT_SECRET"
    )
    assert row["age_seconds"] == 0
    later = collect_snapshot(config, now=1_800_086_400.0)
    row = next(
        r for r in later.parts["secrets"].data["items"] if r["name"] == "SUPABASE_JWT_SECRET"
    )
    assert row["age_seconds"] == 86400 and row["unchanged_since"].startswith("2027-01-15")
    write_env(tmp_path / ".env", {"SUPABASE_JWT_SECRET": "b" * 8 + "second-value-0123456789abcde"})
    rotated = collect_snapshot(config, now=1_800_090_000.0)
    row = next(
        r for r in rotated.parts["secrets"].data["items"] if r["name"] == "SUPABASE_JWT_SECRET"
    )
    assert row["age_seconds"] == 0
    text = (tmp_path / ".empire" / "state.sqlite3").read_bytes()
    assert b"first-value" not in text and b"second-value" not in text
