"""Reading the live schema: a constant number of queries, stable names, both PostgreSQL majors."""

from __future__ import annotations

from typing import Any

import pytest

from ops import db
from ops.migrate.catalog import read_catalog
from ops.migrate.drift import check_schema
from ops.migrate.manifest import manifest_of
from tests.pgtrace import traced


@pytest.fixture
def conn(migrated_conn: Any) -> Any:
    return migrated_conn


def test_query_count_is_measured_and_constant_whatever_the_number_of_tables(
    migrated_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counted on the wire (libpq's trace of a real connection), not taken from
    # the code's own claim: Catalog.queries must be what was really sent.
    with traced(monkeypatch) as trace:
        conn = db.connect(migrated_db, autocommit=True)
    try:
        before = read_catalog(conn)
        sent_before = len(trace.statements())
        assert sent_before == before.queries <= 10
        with conn.transaction():
            for i in range(300):
                table = db.Identifier("public", f"extra_{i}")
                conn.execute(db.SQL("create table {} (id int primary key, v text)").format(table))
                conn.execute(db.SQL("create index on {} (v)").format(table))
        start = len(trace.statements())
        after = read_catalog(conn)
        assert len(after.tables) == len(before.tables) + 300
        assert len(trace.statements()) - start == sent_before == after.queries
    finally:
        conn.close()


def test_the_callers_search_path_and_transaction_are_left_alone(migrated_db: str) -> None:
    c = db.connect(migrated_db)  # not autocommit: the reads run in a savepoint
    try:
        c.execute("set search_path = public, extensions")
        c.execute("create table public.mine (id int)")
        read_catalog(c)
        assert c.execute("show search_path").fetchone() == {"search_path": "public, extensions"}
        c.commit()
        assert c.execute("select to_regclass('public.mine') is not null as t").fetchone() == {
            "t": True
        }
    finally:
        c.close()


def test_definitions_are_schema_qualified_whatever_the_search_path(conn: Any) -> None:
    conn.execute("set search_path = extensions, public")
    blogs = read_catalog(conn).tables["public.blogs"]
    hnsw = blogs["indexes"]["idx_blogs_vector_embedding"]["definition"]
    assert "extensions.vector_cosine_ops" in hnsw
    assert blogs["columns"]["vector_embedding"]["type"] == "extensions.vector(1536)"


def test_monthly_partitions_are_ignored_but_default_partitions_kept(conn: Any) -> None:
    conn.execute(
        "create table public.analytics_events_p209901 partition of public.analytics_events "
        "for values from ('2099-01-01') to ('2099-02-01')"
    )
    tables = read_catalog(conn).tables
    assert "public.analytics_events_p209901" not in tables
    assert not [t for t in tables if t.rsplit("_p", 1)[-1].isdigit()]
    default = tables["public.analytics_events_default"]
    assert default["partition_of"] == "public.analytics_events"
    assert default["partition_bound"] == "DEFAULT"
    assert "set_updated_at" in default["triggers"]


_SMALL_SCHEMA = """
create role anon nologin; create role authenticated nologin; create role service_role nologin;
create schema auth; create schema extensions;
create function auth.uid() returns uuid language sql stable as $$ select null::uuid $$;
create publication supabase_realtime;
create table public.notes (
  id bigint generated always as identity primary key,
  owner uuid not null,
  body text not null default '',
  status text not null default 'draft' check (status in ('draft', 'done'))
);
create index idx_notes_owner on public.notes (owner);
alter table public.notes enable row level security;
create policy own on public.notes for select to authenticated using ((select auth.uid()) = owner);
grant select on public.notes to anon, authenticated, service_role;
alter publication supabase_realtime add table public.notes;
"""


def test_catalog_and_check_work_on_postgresql_15(pg15: Any) -> None:
    with db.connect(pg15.dsn(), autocommit=True) as admin:
        admin.execute("drop database if exists catalog15")
        admin.execute("create database catalog15")
    with db.connect(pg15.dsn("catalog15"), autocommit=True) as c:
        assert db.server_version(c)[0] == 15
        c.execute(_SMALL_SCHEMA)
        cat = read_catalog(c)
        notes = cat.tables["public.notes"]
        assert notes["columns"]["id"]["identity"] == "a"
        assert notes["policies"]["own"]["using"] == "(( SELECT auth.uid() AS uid) = owner)"
        assert notes["grants"]["anon"] == ["SELECT"]
        assert cat.publications["supabase_realtime"] == ["public.notes"]
        manifest = manifest_of(c)
        assert [f.code for f in check_schema(c, manifest=manifest)] == ["SCHEMA_OK"]
        c.execute("drop index idx_notes_owner")
        codes = [f.code for f in check_schema(c, manifest=manifest) if f.is_problem]
        assert codes == ["SCHEMA_MISSING_INDEX"]
