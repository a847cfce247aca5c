"""The Supabase-shaped fixture on both servers: the shape other tests rely on."""

from __future__ import annotations

import shutil
import uuid

import psycopg
import pytest
from psycopg import errors as pg_errors

from tests.supabase import cli_port
from tests.supabase.project import SupabaseProject


def test_postgres_is_demoted_and_supabase_admin_is_superuser(
    any_supabase_project: SupabaseProject,
) -> None:
    p = any_supabase_project
    with psycopg.connect(p.dsn) as conn:
        assert conn.execute("select current_user").fetchone() == ("postgres",)
        row = conn.execute(
            "select rolsuper, rolcreaterole, rolbypassrls from pg_roles where rolname = 'postgres'"
        ).fetchone()
        assert row == (False, True, True)
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute("alter role postgres superuser")
    with psycopg.connect(p.admin_dsn) as conn:
        assert conn.execute("select current_setting('is_superuser')").fetchone() == ("on",)
        # the bootstrap superuser, so postgres could really be demoted
        assert conn.execute("select rolname from pg_roles where oid = 10").fetchone() == (
            "supabase_admin",
        )
    assert "password" not in p.dsn and "password" not in p.admin_dsn


def test_auth_uid_reads_the_request_claims(any_supabase_project: SupabaseProject) -> None:
    user = str(uuid.uuid4())
    with psycopg.connect(any_supabase_project.dsn) as conn:
        assert conn.execute("select auth.uid()").fetchone() == (None,)
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (f'{{"sub": "{user}", "role": "authenticated"}}',),
        )
        assert conn.execute("select auth.uid()::text, auth.role()").fetchone() == (
            user,
            "authenticated",
        )


def test_storage_and_auth_objects_belong_to_their_services(
    any_supabase_project: SupabaseProject,
) -> None:
    with psycopg.connect(any_supabase_project.dsn) as conn:
        owners = dict(
            conn.execute(
                "select c.oid::regclass::text, pg_get_userbyid(c.relowner) from pg_class c "
                "where c.oid in ('storage.objects'::regclass, 'auth.users'::regclass)"
            ).fetchall()
        )
        assert owners == {
            "storage.objects": "supabase_storage_admin",
            "auth.users": "supabase_auth_admin",
        }
        events = {r[0] for r in conn.execute("select evtname from pg_event_trigger")}
        assert {"pgrst_ddl_watch", "pgrst_drop_watch", "issue_pg_net_access"} <= events
        assert conn.execute(
            "select current_setting('supautils.privileged_extensions', true) like '%pgcrypto%'"
        ).fetchone() == (True,)


def test_the_cli_history_holds_the_users_two_migrations(
    any_supabase_project: SupabaseProject,
) -> None:
    p = any_supabase_project
    with psycopg.connect(p.dsn) as conn:
        rows = cli_port.read_migration_table(conn)
    assert [r[0] for r in rows] == p.user_versions == ["20261101000000", "20261115000000"]
    files = cli_port.list_local_migrations(p.migrations_dir)
    for (_version, name, statements), path in zip(rows, files, strict=True):
        assert name == path.name.split("_", 1)[1].removesuffix(".sql")
        assert statements == cli_port.split_and_trim(path.read_text())
    # the dollar-quoted function body stayed one statement
    assert sum("create function public.todos_touch()" in s for s in rows[0][2]) == 1


def test_the_cli_finds_nothing_pending(any_supabase_project: SupabaseProject) -> None:
    p = any_supabase_project
    with psycopg.connect(p.dsn) as conn:
        remote = cli_port.list_remote_migrations(conn)
    local = cli_port.list_local_migrations(p.migrations_dir)
    assert cli_port.find_pending_migrations(local, remote) == []


def test_the_cli_refuses_a_remote_version_without_its_file(
    any_supabase_project: SupabaseProject,
) -> None:
    p = any_supabase_project
    (p.migrations_dir / "20261115000000_todos_revoke_anon.sql").unlink()
    with psycopg.connect(p.dsn) as conn:
        remote = cli_port.list_remote_migrations(conn)
    with pytest.raises(cli_port.MissingLocalMigrations) as exc:
        cli_port.find_pending_migrations(cli_port.list_local_migrations(p.migrations_dir), remote)
    assert exc.value.versions == ["20261115000000"]


def test_the_cli_refuses_a_local_file_older_than_the_newest_remote(
    any_supabase_project: SupabaseProject,
) -> None:
    p = any_supabase_project
    older = p.migrations_dir / "20261110000000_between.sql"
    older.write_text("select 1;\n")
    with psycopg.connect(p.dsn) as conn:
        remote = cli_port.list_remote_migrations(conn)
    local = cli_port.list_local_migrations(p.migrations_dir)
    with pytest.raises(cli_port.InsertBeforeRemote) as exc:
        cli_port.find_pending_migrations(local, remote)
    assert exc.value.paths == [older]
    assert cli_port.find_pending_migrations(local, remote, include_all=True) == [older]


def test_a_newer_file_is_pending_then_applied_as_the_cli_does(
    any_supabase_project: SupabaseProject,
) -> None:
    p = any_supabase_project
    newer = p.migrations_dir / "20261201000000_notes.sql"
    newer.write_text("create table public.notes (id int);\ncomment on table public.notes is 'a;b';")
    with psycopg.connect(p.dsn) as conn:
        local = cli_port.list_local_migrations(p.migrations_dir)
        pending = cli_port.find_pending_migrations(local, cli_port.list_remote_migrations(conn))
        assert pending == [newer]
        cli_port.cli_apply_migration(conn, newer)
        assert cli_port.find_pending_migrations(local, cli_port.list_remote_migrations(conn)) == []
        assert cli_port.read_migration_table(conn)[-1] == (
            "20261201000000",
            "notes",
            ["create table public.notes (id int)", "comment on table public.notes is 'a;b'"],
        )


def test_a_failing_file_leaves_no_history_row(any_supabase_project: SupabaseProject) -> None:
    p = any_supabase_project
    bad = p.migrations_dir / "20261201000000_bad.sql"
    bad.write_text("create table public.half (id int);\nselect no_such_function();")
    with psycopg.connect(p.dsn) as conn:
        with pytest.raises(pg_errors.UndefinedFunction):
            cli_port.cli_apply_migration(conn, bad)
        assert cli_port.list_remote_migrations(conn) == p.user_versions
        assert conn.execute("select to_regclass('public.half')").fetchone() == (None,)


def test_anon_cannot_read_the_users_todos(any_supabase_project: SupabaseProject) -> None:
    with psycopg.connect(any_supabase_project.dsn) as conn:
        conn.execute("set role anon")
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute("select * from public.todos")
        conn.rollback()
        conn.execute("set role authenticated")
        # authenticated still holds its default privileges; RLS then shows its own rows only
        assert conn.execute("select count(*) from public.todos").fetchone() == (0,)


def test_snapshot_is_stable_and_sees_a_changed_supabase_function(
    any_supabase_project: SupabaseProject,
) -> None:
    p = any_supabase_project
    first = p.snapshot()
    with psycopg.connect(p.dsn) as conn:
        assert p.snapshot(conn) == first  # as postgres too
    assert p.snapshot() == first
    assert any(row[:2] == ("auth", "uid") for row in first["functions"])
    assert tuple(r[0] for r in first["publications"]) == ("supabase_realtime",)
    with psycopg.connect(p.admin_dsn, autocommit=True) as conn:
        conn.execute("alter function auth.email() security definer")
    after = p.snapshot()
    assert after != first
    assert [k for k in first if first[k] != after[k]] == ["functions"]


def test_skips_are_recorded_per_server(
    supabase_project: SupabaseProject, supabase_project_pg15: SupabaseProject
) -> None:
    def skipped(p: SupabaseProject) -> str:
        return "\n".join(s.what for s in p.skipped)

    for p in (supabase_project, supabase_project_pg15):
        assert "create extension if not exists pgjwt" in skipped(p)
        assert "session_preload_libraries = 'safeupdate'" in skipped(p)
        assert all(s.reason for s in p.skipped)
    # uuid-ossp is in the system PG 15, not in the embedded build
    assert '"uuid-ossp"' in skipped(supabase_project)
    assert '"uuid-ossp"' not in skipped(supabase_project_pg15)
    with psycopg.connect(supabase_project_pg15.dsn) as conn:
        assert conn.execute(
            "select extnamespace::regnamespace::text from pg_extension where extname = 'pgcrypto'"
        ).fetchone() == ("extensions",)


def test_each_test_gets_its_own_copy(supabase_project: SupabaseProject) -> None:
    # a test may change the folder and the database freely; the template is untouched
    shutil.rmtree(supabase_project.migrations_dir)
    with psycopg.connect(supabase_project.admin_dsn, autocommit=True) as conn:
        conn.execute("drop table public.todos")
        template = conn.execute(
            "select datistemplate or datname = 'supabase_template' from pg_database "
            "where datname = current_database()"
        ).fetchone()
    assert template == (False,)
