"""The data service on a real, migrated PostgreSQL: CRUD, validation, RLS, audit, drift."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from ops import db
from ops.data.model import find_table, load_tables
from ops.data.service import (
    AccessDenied,
    DataService,
    DataValidationError,
    Principal,
    SchemaDrift,
)

SERVICE = Principal.service()
ADMIN = Principal.admin("admin-7")
MASKED = frozenset({"email", "password_hash", "ip"})


@pytest.fixture
def data(migrated_db: str) -> Iterator[DataService]:
    conn = db.connect(migrated_db)
    try:
        yield DataService(conn, masked_fields=MASKED)
    finally:
        conn.close()


def _count(dsn: str, statement: str, params: Any = None) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute(statement, params).fetchone()[0])


def _user(data: DataService, email: str) -> dict[str, Any]:
    return data.insert(SERVICE, "users", {"id": str(uuid.uuid4()), "email": email})


def test_every_table_of_the_manifest_is_known_with_its_keys() -> None:
    tables = load_tables()
    assert "public.users" in tables and "public.analytics_events_default" not in tables
    nodes = find_table("memory_nodes")
    assert nodes.primary_key == ("id",) and ("slug",) in nodes.unique_keys
    assert nodes.columns["vector_embedding"].dimensions == 1536
    assert "fact" in nodes.columns["type"].choices
    assert find_table("offers").columns["currency"].pattern == "^[A-Z]{3}$"
    assert all(t.primary_key for t in tables.values()), "every table has a primary key"


def test_crud_round_trip(data: DataService, migrated_db: str) -> None:
    node = data.insert(SERVICE, "memory_nodes", {"slug": "n-1", "type": "fact",
                                                  "content": "it's 'quoted' — ünïcode",
                                                  "meta": {"a": [1, 2]}})  # fmt: skip
    assert node["version"] == 1 and node["meta"] == {"a": [1, 2]}
    assert data.get(SERVICE, "memory_nodes", node["id"])["content"] == "it's 'quoted' — ünïcode"
    changed = data.update(SERVICE, "memory_nodes", node["id"], {"content": "new", "version": 2})
    assert changed is not None and changed["content"] == "new" and changed["version"] == 2
    again = data.upsert(SERVICE, "memory_nodes", {"slug": "n-1", "type": "concept"}, on=["slug"])
    assert again["id"] == node["id"] and again["type"] == "concept"
    other = data.upsert(SERVICE, "memory_nodes", {"slug": "n-2", "type": "fact"}, on=["slug"])
    assert other["id"] != node["id"]
    assert data.delete(SERVICE, "memory_nodes", node["id"]) is True
    assert data.get(SERVICE, "memory_nodes", node["id"]) is None
    assert data.delete(SERVICE, "memory_nodes", node["id"]) is False
    assert data.update(SERVICE, "memory_nodes", node["id"], {"content": "x"}) is None
    assert _count(migrated_db, "select count(*) from public.memory_nodes") == 1


def test_list_filters_orders_and_pages_by_key(data: DataService) -> None:
    for i in range(25):
        data.insert(SERVICE, "memory_nodes", {"slug": f"p-{i:02d}", "type": "fact" if i % 2
                                              else "concept", "usage_score": float(i)})  # fmt: skip
    seen: list[str] = []
    after = None
    while True:
        page = data.list(SERVICE, "memory_nodes", filters={"type": "fact"}, order=["-usage_score"],
                         limit=5, after=after)  # fmt: skip
        seen += [r["slug"] for r in page.rows]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [f"p-{i:02d}" for i in range(23, 0, -2)]
    wanted = {"usage_score": (">=", 20.0), "slug": ["p-20", "p-21", "p-03"]}
    few = data.list(SERVICE, "memory_nodes", filters=wanted)
    assert sorted(r["slug"] for r in few.rows) == ["p-20", "p-21"]
    none = data.list(SERVICE, "memory_nodes", filters={"source": None}, limit=1000)
    assert len(none.rows) == 25


def test_every_bad_field_is_named_and_nothing_is_written(
    data: DataService, migrated_db: str
) -> None:
    before = _count(migrated_db, "select count(*) from public.memory_nodes")
    with pytest.raises(DataValidationError) as caught:
        data.insert(SERVICE, "memory_nodes", {
            "type": "opinion",                 # not in the check constraint's set
            "version": 0,                      # below the check's minimum
            "usage_score": "high",             # not a number
            "vector_embedding": [0.1] * 3,     # wrong dimensions
            "content": "x" * 1_000_001,        # over max_text
            "colour": "red",                   # no such column
            "meta": {"bad": float("nan")},     # not JSON
        })  # fmt: skip
    problems = caught.value.problems
    assert set(problems) == {"type", "version", "usage_score", "vector_embedding", "content",
                             "colour", "meta", "slug"}  # fmt: skip
    assert "required" in problems["slug"] and "1536" in problems["vector_embedding"]
    assert caught.value.exit_code == 2 and "x" * 50 not in caught.value.message
    assert _count(migrated_db, "select count(*) from public.memory_nodes") == before
    with pytest.raises(DataValidationError, match="currency"):
        data.insert(SERVICE, "offers", {"slug": "o", "title": "t", "currency": "euro"})
    with pytest.raises(DataValidationError, match="unique key"):
        data.upsert(SERVICE, "memory_nodes", {"slug": "s", "type": "fact"}, on=["type"])
    with pytest.raises(DataValidationError, match="order"):
        data.list(SERVICE, "memory_nodes", order=["nope"])
    # Each refused write is in error_logs, without the values.
    logged = _count(migrated_db, "select count(*) from public.error_logs where source = 'data' "
                    "and message like 'DATA_INVALID%%'")  # fmt: skip
    assert logged >= 3


def test_a_user_sees_and_changes_only_their_own_rows(data: DataService, migrated_db: str) -> None:
    alice, bob = _user(data, "alice@example.com"), _user(data, "bob@example.com")
    note = data.insert(SERVICE, "notifications", {"user_id": bob["id"], "channel": "email",
                                                  "title": "for bob"})  # fmt: skip
    as_alice, as_bob = Principal.user(alice["id"]), Principal.user(bob["id"])
    # Asking by id is no way around the policy.
    assert data.get(as_alice, "notifications", note["id"]) is None
    assert data.get(as_alice, "users", bob["id"]) is None
    assert data.list(as_alice, "notifications").rows == []
    assert data.update(as_alice, "notifications", note["id"], {"title": "mine now"}) is None
    assert data.delete(as_alice, "notifications", note["id"]) is False
    assert data.get(as_bob, "notifications", note["id"])["title"] == "for bob"
    assert [u["id"] for u in data.list(as_bob, "users").rows] == [bob["id"]]
    # Inserting a row for someone else is refused by the policy's WITH CHECK.
    with pytest.raises(AccessDenied):
        data.insert(as_alice, "persona_profiles", {"user_id": bob["id"]})
    mine = data.insert(as_alice, "persona_profiles", {"user_id": alice["id"]})
    assert mine["user_id"] == alice["id"]
    # The same through plain SQL as `authenticated` with the claims: PostgreSQL enforces it.
    with psycopg.connect(migrated_db) as conn:
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)",
                     (json.dumps({"sub": str(alice["id"]), "role": "authenticated"}),))  # fmt: skip
        assert conn.execute("select count(*) from public.notifications").fetchone()[0] == 0
        updated = conn.execute("update public.notifications set title = 'x' returning id")
        assert updated.fetchall() == []
    assert data.get(SERVICE, "notifications", note["id"])["title"] == "for bob"


def test_an_admin_write_makes_one_audit_row_with_masked_fields(
    data: DataService, migrated_db: str
) -> None:
    user = _user(data, "carol@example.com")
    before = _count(migrated_db, "select count(*) from public.admin_logs")
    data.update(ADMIN, "users", user["id"], {"email": "carol.new@example.com"})
    assert _count(migrated_db, "select count(*) from public.admin_logs") == before + 1
    with psycopg.connect(migrated_db) as conn:
        row = conn.execute(
            "select action, subject, actor_id, before, after from public.admin_logs "
            "order by occurred_at desc limit 1"
        ).fetchone()
    action, subject, actor, old, new = row
    assert action == "data.users.update" and actor == "admin-7" and str(user["id"]) in subject
    assert old["email"] == new["email"] == "****"
    text = json.dumps([old, new])
    assert "carol" not in text
    # Reads are not audited; a service write is not either.
    data.get(ADMIN, "users", user["id"])
    data.update(SERVICE, "users", user["id"], {"archetype": "C"})
    assert _count(migrated_db, "select count(*) from public.admin_logs") == before + 1


def test_a_failed_admin_write_leaves_no_audit_row(data: DataService, migrated_db: str) -> None:
    before = _count(migrated_db, "select count(*) from public.admin_logs")
    with pytest.raises(Exception):  # noqa: B017 (a duplicate slug: the database refuses)
        data.insert(ADMIN, "memory_nodes", {"slug": "dup", "type": "fact"})
        data.insert(ADMIN, "memory_nodes", {"slug": "dup", "type": "fact"})
    assert _count(migrated_db, "select count(*) from public.admin_logs") == before + 1


def test_a_dropped_column_is_schema_drift_and_nothing_is_written(
    data: DataService, migrated_db: str
) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("alter table public.memory_nodes drop column source")
    with pytest.raises(SchemaDrift) as caught:
        data.insert(ADMIN, "memory_nodes", {"slug": "d-1", "type": "fact", "source": "web"})
    assert caught.value.finding.code == "DATA_SCHEMA_DRIFT"
    assert "source" in caught.value.message
    assert _count(migrated_db, "select count(*) from public.memory_nodes where slug = 'd-1'") == 0
    assert _count(migrated_db, "select count(*) from public.admin_logs where action like "
                  "'data.memory_nodes.%%'") == 0  # fmt: skip
    assert _count(migrated_db, "select count(*) from public.error_logs where source = 'data' "
                  "and message like 'DATA_SCHEMA_DRIFT%%'") == 1  # fmt: skip
    # Reads that do not need the column still work.
    assert data.list(SERVICE, "memory_nodes").rows == []


def test_a_missing_table_is_schema_drift(data: DataService, migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("drop table public.translations")
    with pytest.raises(SchemaDrift):
        data.list(SERVICE, "translations")


def test_an_unknown_table_names_the_close_ones(data: DataService) -> None:
    from ops.errors import UsageError

    with pytest.raises(UsageError, match="memory_nodes"):
        data.get(SERVICE, "memory_node", "x")


def test_every_table_round_trips_its_demo_rows(migrated_db: str, data: DataService, cli) -> None:
    """Each table's demo rows read through the service, written back whole (an upsert on the
    primary key: every column's value through validation and parameters) and read again."""
    seeded = cli("db", "seed-demo", "--yes", env={"DATABASE_URL": migrated_db})
    assert seeded.exit_code == 0, seeded.output
    from ops.migrate.manifest import load_manifest

    manifest = load_manifest()["tables"]

    def grants(name: str) -> list[str]:
        return list((manifest[name].get("grants") or {}).get("service_role", []))

    tried = 0
    for name, spec in sorted(load_tables().items()):
        if spec.schema == "empire_private":  # no API role may reach it, service_role included
            with pytest.raises(AccessDenied, match="permission denied for schema"):
                data.list(SERVICE, name, limit=3)
            continue
        rows = data.list(SERVICE, name, limit=3).rows
        for row in rows:
            key = {c: row[c] for c in spec.primary_key}
            assert data.get(SERVICE, name, key) == row, name
            if "UPDATE" not in grants(name):  # append-only for the API (the logs): refused
                with pytest.raises(AccessDenied, match="permission denied"):
                    data.upsert(SERVICE, name, row, on=list(spec.primary_key))
                continue
            stored = data.upsert(SERVICE, name, row, on=list(spec.primary_key))
            moved = {"updated_at"}  # the set_updated_at trigger
            assert {k: v for k, v in stored.items() if k not in moved} == {
                k: v for k, v in row.items() if k not in moved
            }, name
            tried += 1
    tables_with_rows = sum(
        bool(data.list(SERVICE, n, limit=1).rows)
        for n, spec in load_tables().items()
        if spec.schema == "public"
    )
    assert tables_with_rows >= 20 and tried >= 3 * tables_with_rows - 10
