"""Supabase's own objects are not drift: check never reports them, heal never touches them.

On the embedded PostgreSQL 18, objects like Supabase's are created in its
schemas (auth, storage, realtime, graphql, vault, extensions); the tests
under tests/supabase/ do the same with Supabase's own SQL.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ops import db
from ops.migrate.catalog import read_catalog
from ops.migrate.drift import run_check
from ops.migrate.heal import heal
from ops.supabase_schemas import SUPABASE_SCHEMAS, is_supabase_schema

SUPABASE_LIKE = [
    "create schema if not exists storage",
    "create table storage.objects (id uuid primary key, name text)",  # no RLS
    "create schema if not exists realtime",
    "create table realtime.messages (id bigint primary key, payload jsonb)",
    "alter publication supabase_realtime add table realtime.messages",
    "create table auth.users (id uuid primary key, encrypted_password text)",
    "grant select on auth.users to anon",
    "create function auth.email() returns text language sql stable as $$ select 'x' $$",
    "create schema if not exists vault",
    "create table vault.secrets (id uuid primary key, secret text)",
    "create schema if not exists graphql",
    "create function graphql.resolve() returns int language sql as $$ select 1 $$",
    "create extension if not exists pg_trgm with schema extensions",
]


def _mentions_supabase(subject: str) -> bool:
    return is_supabase_schema(subject.split(".", 1)[0].split(" ")[-1])


def test_the_list_is_the_one_supabase_excludes_from_a_user_dump() -> None:
    assert {"auth", "storage", "realtime", "extensions", "graphql", "graphql_public", "vault"} <= (
        set(SUPABASE_SCHEMAS)
    )
    assert {"supabase_migrations", "pgsodium", "_realtime", "_supavisor", "pgmq"} <= set(
        SUPABASE_SCHEMAS
    )
    assert "public" not in SUPABASE_SCHEMAS


def test_check_and_heal_leave_supabases_objects_alone(migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        for statement in SUPABASE_LIKE:
            conn.execute(statement)
    with db.connect(migrated_db, autocommit=True) as conn:
        result = run_check(conn)
        plan = heal(conn, None, apply=False)
    assert [f.subject for f in result.findings if _mentions_supabase(f.subject)] == []
    assert [f.code for f in result.findings] == ["SCHEMA_OK"]
    assert plan.actions == [] and plan.unhealed == []


def test_what_is_not_supabases_is_still_reported(migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("create extension if not exists pg_trgm with schema public")
        conn.execute("create table public.notes (id int primary key)")
        conn.execute("alter publication supabase_realtime add table public.notes")
    with db.connect(migrated_db, autocommit=True) as conn:
        found = {(f.code, f.subject) for f in run_check(conn).findings}
    assert ("SCHEMA_EXTRA_EXTENSION", "pg_trgm") in found
    assert ("SCHEMA_EXTRA_REALTIME", "public.notes") in found


@pytest.mark.parametrize("schema", ["auth", "storage", "extensions"])
def test_the_catalog_refuses_to_compare_a_supabase_schema(migrated_db: str, schema: str) -> None:
    with db.connect(migrated_db, autocommit=True) as conn, pytest.raises(ValueError, match=schema):
        read_catalog(conn, schemas=("public", schema))


def test_heal_plans_nothing_for_a_finding_in_a_supabase_schema() -> None:
    from ops import findings as F
    from ops.migrate.heal import plan_heal

    manifest: dict[str, Any] = {"tables": {"auth.users": {"rls_enabled": True}}}
    found = [F.error("RLS_DISABLED", "auth.users", "off", details={"table": "auth.users"})]
    actions, unhealed = plan_heal(found, manifest, migrations_allowed=False)
    assert actions == [] and [f.subject for f in unhealed] == ["auth.users"]
