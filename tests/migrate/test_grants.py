"""Least privilege on a real PostgreSQL 18: the Empire grants only on its own tables.

Each Empire table is granted table by table by the migration that creates it;
a user's own table keeps exactly the privileges the user left it with, through
`migrate up` and `migrate down`. The API roles get no TRUNCATE, TRIGGER or
REFERENCES, never reach the credentials, and may only append to admin_logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from ops import db
from ops.findings import Severity
from ops.migrate.apply import migrate_up
from ops.migrate.catalog import read_catalog
from ops.migrate.drift import run_check
from ops.migrate.lints import is_sensitive_column, lint
from ops.migrate.manifest import load_manifest
from ops.migrate.revert import migrate_down
from tests.helpers import assert_admin_logs_refuse_rewrites

from .conftest import target_for

API_ROLES = ("anon", "authenticated", "service_role")
CLIENTS = ("anon", "authenticated")
NEVER_FOR_CLIENTS = ("TRUNCATE", "TRIGGER", "REFERENCES")


def _supabase_like_user_table(dsn: str) -> None:
    """What a Supabase project holds before adoption: roles, default privileges, a revoked table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for role in API_ROLES:
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role)))
        # Supabase's default privileges: ALL on every new table in public.
        conn.execute(
            "alter default privileges in schema public "
            "grant all on tables to anon, authenticated, service_role"
        )
        conn.execute(
            "alter default privileges in schema public "
            "grant all on sequences to anon, authenticated, service_role"
        )
        conn.execute("create table public.todos (id bigserial primary key, task text)")
        conn.execute("alter table public.todos enable row level security")
        conn.execute("revoke all on table public.todos from anon")
        conn.execute("revoke all on sequence public.todos_id_seq from anon")
        conn.execute("revoke truncate, trigger, references on public.todos from authenticated")


def _acls(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select c.relname, c.relacl::text from pg_class c "
            "where c.relnamespace = 'public'::regnamespace and c.relname like 'todos%'"
        ).fetchall()
    return dict(rows)


def _privileges(dsn: str, role: str, table: str) -> set[str]:
    kinds = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")
    with psycopg.connect(dsn) as conn:
        return {
            k
            for k in kinds
            if conn.execute("select has_table_privilege(%s, %s, %s)", (role, table, k)).fetchone()[
                0
            ]  # type: ignore[index]
        }


def test_the_users_revoked_table_stays_revoked_through_up_and_down(fresh_db: str) -> None:
    _supabase_like_user_table(fresh_db)
    before = _acls(fresh_db)
    assert _privileges(fresh_db, "anon", "public.todos") == set()

    migrate_up(target_for(fresh_db), None, confirmed=True)

    assert _acls(fresh_db) == before
    assert _privileges(fresh_db, "anon", "public.todos") == set()
    assert _privileges(fresh_db, "authenticated", "public.todos") == {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
    }
    with psycopg.connect(fresh_db) as conn:
        conn.execute("set role anon")
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table todos"):
            conn.execute("select * from public.todos")
        conn.rollback()
        conn.execute("set role anon")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("insert into public.todos (task) values ('x')")

    migrate_down(target_for(fresh_db), None, to="0", confirmed=True)

    assert _acls(fresh_db) == before
    with psycopg.connect(fresh_db) as conn:
        left = conn.execute(
            "select nspname from pg_namespace where nspname = 'empire_private'"
        ).fetchall()
    assert left == []


def test_the_api_roles_get_no_truncate_trigger_or_references_anywhere(migrated_db: str) -> None:
    tables = sorted(load_manifest()["tables"])
    assert len(tables) > 30
    with psycopg.connect(migrated_db) as conn:
        rows = conn.execute(
            "select t, r, p from unnest(%s::text[]) t, unnest(%s::text[]) r, unnest(%s::text[]) p "
            "where has_table_privilege(r, t, p)",
            (tables, list(CLIENTS), list(NEVER_FOR_CLIENTS)),
        ).fetchall()
        # Partitions: nothing at all, they are reached through their parent.
        partitions = conn.execute(
            "select c.oid::regclass::text, r from pg_class c, unnest(%s::text[]) r "
            "where c.relispartition and c.relnamespace = 'public'::regnamespace "
            "and has_table_privilege(r, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')",
            (list(API_ROLES),),
        ).fetchall()
    assert rows == []
    assert partitions == []
    assert _privileges(migrated_db, "anon", "public.offers") == {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
    }


def test_a_new_monthly_partition_gets_no_api_privilege(migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("alter default privileges in schema public grant all on tables to anon")
        assert conn.execute("select public.create_event_partitions(15)").fetchone()[0] > 0  # type: ignore[index]
        leaked = conn.execute(
            "select c.relname from pg_class c where c.relname ~ '_p[0-9]{6}$' "
            "and has_table_privilege('anon', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')"
        ).fetchall()
    assert leaked == []


@pytest.fixture
def as_role(migrated_db: str) -> Iterator[Any]:
    """``as_role(role, statement, params)``: run one statement as ``role``, rolled back after."""
    conn = psycopg.connect(migrated_db)

    def run(role: str, statement: str, params: tuple[Any, ...] = ()) -> Any:
        try:
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            return (
                conn.execute(statement, params).fetchall()
                if statement.startswith("select")
                else conn.execute(statement, params)
            )
        finally:
            conn.rollback()

    yield run
    conn.close()


@pytest.mark.parametrize("role", CLIENTS)
def test_clients_cannot_read_or_write_the_credentials(as_role: Any, role: str) -> None:
    for statement in (
        "select password_hash from empire_private.user_credentials",
        "select session_tokens from empire_private.user_credentials",
        "update empire_private.user_credentials set password_hash = 'x'",
    ):
        with pytest.raises(errors.InsufficientPrivilege, match="schema empire_private"):
            as_role(role, statement)
    # and public.users, which the API does read, no longer has them
    for column in ("password_hash", "session_tokens"):
        with pytest.raises(errors.UndefinedColumn):
            as_role(role, f"select {column} from public.users")


def test_credentials_are_out_of_realtime_payloads(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        published = conn.execute(
            "select schemaname, tablename, attnames from pg_publication_tables "
            "where pubname = 'supabase_realtime'"
        ).fetchall()
    assert ("public", "users") in {(s, t) for s, t, _ in published}
    columns = {c for _, _, names in published for c in names}
    assert "email" in columns
    assert not [c for c in columns if is_sensitive_column(c)]


def test_no_api_role_not_even_service_role_reaches_the_credentials(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        reach = conn.execute(
            "select r from unnest(%s::text[]) r "
            "where has_schema_privilege(r, 'empire_private', 'USAGE') "
            "or has_table_privilege(r, 'empire_private.user_credentials', "
            "'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
            (list(API_ROLES),),
        ).fetchall()
    assert reach == []


@pytest.mark.parametrize("role", API_ROLES)
def test_admin_logs_refuse_update_delete_and_truncate_for_every_api_role(
    as_role: Any, role: str
) -> None:
    for statement in (
        "update public.admin_logs set subject = 'rewritten'",
        "delete from public.admin_logs",
        "truncate public.admin_logs",
    ):
        with pytest.raises(errors.InsufficientPrivilege, match="admin_logs"):
            as_role(role, statement)


def test_service_role_may_append_and_read_the_log_and_clients_may_not(as_role: Any) -> None:
    insert = "insert into public.admin_logs (action, actor_id) values ('offer.update', 'svc')"
    as_role("service_role", insert)
    assert as_role("service_role", "select count(*) from public.admin_logs") == [
        (0,)
    ]  # rolled back
    for role in CLIENTS:
        with pytest.raises(errors.InsufficientPrivilege):
            as_role(role, insert)
        with pytest.raises(errors.InsufficientPrivilege):
            as_role(role, "select * from public.admin_logs")


def test_the_trigger_refuses_even_where_privileges_allow(migrated_db: str) -> None:
    """Owner and superuser alike; and a service_role that was wrongly granted UPDATE."""
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("insert into public.admin_logs (action, actor_id) values ('a.b', 'x')")
        assert_admin_logs_refuse_rewrites(conn)
        conn.execute("grant update, delete on public.admin_logs to service_role")
        with conn.transaction():
            conn.execute("set local role service_role")
            for verb, statement in (
                ("UPDATE", "update public.admin_logs set subject = 'rewritten'"),
                ("DELETE", "delete from public.admin_logs"),
            ):
                refused = pytest.raises(errors.RaiseException, match=f"{verb} is refused")
                with refused, conn.transaction():
                    conn.execute(statement)
        assert conn.execute("select count(*) from public.admin_logs").fetchone() == (1,)
        # the owner's explicit way, in one transaction
        with conn.transaction():
            conn.execute("alter table public.admin_logs disable trigger admin_logs_append_only")
            conn.execute("delete from public.admin_logs")
            conn.execute("alter table public.admin_logs enable trigger admin_logs_append_only")
        assert conn.execute("select count(*) from public.admin_logs").fetchone() == (0,)


def test_a_wrong_grant_on_an_empire_table_is_drift(migrated_db: str) -> None:
    with db.connect(migrated_db, autocommit=True) as conn:
        conn.execute("grant truncate on public.offers to anon")
        conn.execute("grant update (subject) on public.admin_logs to service_role")
        found = {(f.code, f.subject) for f in run_check(conn).findings if f.is_problem}
    assert ("GRANT_MISMATCH", "public.offers to anon") in found
    assert ("GRANT_MISMATCH", "public.admin_logs.subject to service_role") in found


# -- the sensitive-column lint, on a real catalog ----------------------------------------
def _lint_codes(dsn: str) -> dict[tuple[str, str], Any]:
    with db.connect(dsn, autocommit=True) as conn:
        cat = read_catalog(conn)
    return {(f.code, f.subject): f for f in lint(cat, load_manifest())}


def test_a_readable_credentials_column_is_an_error_however_it_is_granted(
    migrated_db: str,
) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "create table public.accounts (id int primary key, name text, api_secret text, "
            "refresh_tokens jsonb, password_hash text)"
        )
        conn.execute("alter table public.accounts enable row level security")
        conn.execute("create policy p on public.accounts for select to anon using (true)")
        conn.execute("revoke all on public.accounts from anon, authenticated")
    assert not [k for k in _lint_codes(migrated_db) if k[0] == "LINT_SENSITIVE_COLUMN_EXPOSED"]

    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("grant select on public.accounts to anon")  # table-level
    found = _lint_codes(migrated_db)
    exposed = sorted(s for c, s in found if c == "LINT_SENSITIVE_COLUMN_EXPOSED")
    assert exposed == [
        "public.accounts.api_secret",
        "public.accounts.password_hash",
        "public.accounts.refresh_tokens",
    ]
    f = found[("LINT_SENSITIVE_COLUMN_EXPOSED", "public.accounts.api_secret")]
    assert f.severity == Severity.ERROR and f.details["readable_by"] == ["anon"]
    assert f.runbook == "runbooks/LINT_SENSITIVE_COLUMN_EXPOSED.md"

    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("revoke select on public.accounts from anon")
        conn.execute("grant select (id, name) on public.accounts to anon")  # column-level, safe
    assert not [k for k in _lint_codes(migrated_db) if k[0] == "LINT_SENSITIVE_COLUMN_EXPOSED"]

    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("grant select (password_hash) on public.accounts to public")  # via PUBLIC
    exposed_now = {s: f for (c, s), f in _lint_codes(migrated_db).items() if c.endswith("EXPOSED")}
    assert list(exposed_now) == ["public.accounts.password_hash"]
    assert exposed_now["public.accounts.password_hash"].details["readable_by"] == [
        "anon",
        "authenticated",
    ]


def test_the_empire_schema_exposes_no_credentials(migrated_db: str) -> None:
    assert not [k for k in _lint_codes(migrated_db) if k[0] == "LINT_SENSITIVE_COLUMN_EXPOSED"]


def test_the_naming_rule() -> None:
    sensitive = ("password_hash", "session_tokens", "access_token", "token", "client_secret")
    sensitive += ("secret_key", "user_password", "passwd", "stripe_api_key", "private_key")
    for name in sensitive:
        assert is_sensitive_column(name), name
    for name in ("email", "license_key", "api_key_ref", "tokenizer", "tokens_used_count", "id"):
        assert not is_sensitive_column(name), name


# -- LINT_RLS_DISABLED_IN_PUBLIC tells the truth ----------------------------------------------
def test_rls_disabled_is_an_error_only_when_the_api_holds_privileges(migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("create table public.notes (id int primary key)")
        conn.execute("grant select on public.notes to authenticated")
    f = _lint_codes(migrated_db)[("LINT_RLS_DISABLED_IN_PUBLIC", "public.notes")]
    assert f.severity == Severity.ERROR
    assert "authenticated hold privileges on it: the API exposes every row" in f.message

    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("revoke all on public.notes from anon, authenticated, public")
    f = _lint_codes(migrated_db)[("LINT_RLS_DISABLED_IN_PUBLIC", "public.notes")]
    assert f.severity == Severity.WARNING
    assert "exposes every row" not in f.message.split(";")[0]
    assert "the API cannot reach it today" in f.message

    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("grant select (id) on public.notes to anon")  # a column grant reaches rows too
    f = _lint_codes(migrated_db)[("LINT_RLS_DISABLED_IN_PUBLIC", "public.notes")]
    assert f.severity == Severity.ERROR and f.details["reachable_by"] == ["anon"]
