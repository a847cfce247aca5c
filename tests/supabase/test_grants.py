"""Adoption on a database built like Supabase's: least privilege, and Supabase's objects untouched.

On both servers (PostgreSQL 18 and 15), as the demoted ``postgres`` a user
connects as: ``migrate up`` leaves Supabase's own objects exactly as they
were, the user's ``public.todos`` stays unreadable by anon, the API roles
never reach the credentials, and admin_logs only grows. ``migrate check`` and
``heal`` then say nothing about Supabase's schemas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from ops.migrate.lints import is_sensitive_column
from ops.migrate.manifest import load_manifest
from ops.supabase_schemas import SUPABASE_SCHEMAS
from tests.helpers import assert_admin_logs_refuse_rewrites
from tests.supabase.project import SupabaseProject

API_ROLES = ("anon", "authenticated", "service_role")
CLIENTS = ("anon", "authenticated")
EMPIRE_REALTIME = {"public.users", "public.offers", "public.quiz_results", "public.notifications"}


@dataclass
class Adopted:
    project: SupabaseProject
    before: dict[str, Any]  # Supabase's objects before `migrate up`
    todos_acl: str  # the user's table's ACL before
    env: dict[str, str]


def _todos_acl(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select relacl::text from pg_class where oid = 'public.todos'::regclass"
        ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def adopted(empire_ready_project: SupabaseProject, cli: Any, monkeypatch: Any) -> Adopted:
    """The project after `migrate up`, run as postgres from the project folder, without flags."""
    project = empire_ready_project
    before = project.snapshot()
    acl = _todos_acl(project.admin_dsn)
    monkeypatch.chdir(project.root)
    env = {"DATABASE_URL": project.dsn}
    up = cli("migrate", "up", "--yes", env=env)
    assert up.exit_code == 0, up.output
    return Adopted(project, before, acl, env)


def _supabase_only(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [r for r in rows if r[1] in SUPABASE_SCHEMAS]


def test_adoption_leaves_supabases_objects_unchanged(adopted: Adopted) -> None:
    after = adopted.project.snapshot()
    assert set(after) == set(adopted.before)
    for key in sorted(after):
        if key == "publication_tables":
            continue
        assert after[key] == adopted.before[key], key
    published = "publication_tables"
    assert _supabase_only(after[published]) == _supabase_only(adopted.before[published])
    added = {f"{r[1]}.{r[2]}" for r in set(after[published]) - set(adopted.before[published])}
    assert added == EMPIRE_REALTIME


def test_the_users_revoked_table_is_still_unreadable_by_anon(adopted: Adopted) -> None:
    dsn = adopted.project.dsn
    assert _todos_acl(dsn) == adopted.todos_acl
    with psycopg.connect(dsn) as conn:
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"):
            row = conn.execute(
                "select has_table_privilege('anon', 'public.todos', %s)", (privilege,)
            ).fetchone()
            assert row == (False,), privilege
        conn.execute("set role anon")  # postgres is a member of anon on Supabase
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table todos"):
            conn.execute("select * from public.todos")


@pytest.mark.parametrize("role", CLIENTS)
def test_clients_cannot_read_the_credentials(adopted: Adopted, role: str) -> None:
    with psycopg.connect(adopted.project.dsn) as conn:
        for column in ("password_hash", "session_tokens"):
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            with pytest.raises(errors.InsufficientPrivilege, match="schema empire_private"):
                conn.execute(
                    sql.SQL("select {} from empire_private.user_credentials").format(
                        sql.Identifier(column)
                    )
                )
            conn.rollback()
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            with pytest.raises(errors.UndefinedColumn):
                conn.execute(sql.SQL("select {} from public.users").format(sql.Identifier(column)))
            conn.rollback()


def test_no_api_role_reaches_the_credentials_nor_does_realtime(adopted: Adopted) -> None:
    with psycopg.connect(adopted.project.dsn) as conn:
        reach = conn.execute(
            "select r from unnest(%s::text[]) r "
            "where has_schema_privilege(r, 'empire_private', 'USAGE') "
            "or has_table_privilege(r, 'empire_private.user_credentials', "
            "'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')",
            (list(API_ROLES),),
        ).fetchall()
        published = conn.execute(
            "select a.attname from pg_publication_rel pr "
            "join pg_publication p on p.oid = pr.prpubid "
            "join pg_attribute a on a.attrelid = pr.prrelid and a.attnum > 0 "
            "where p.pubname = 'supabase_realtime'"
        ).fetchall()
    assert reach == []
    assert published and not [c for (c,) in published if is_sensitive_column(c)]


def test_clients_get_no_truncate_trigger_or_references_on_any_empire_table(
    adopted: Adopted,
) -> None:
    tables = sorted(load_manifest()["tables"])
    with psycopg.connect(adopted.project.dsn) as conn:
        rows = conn.execute(
            "select t, r, p from unnest(%s::text[]) t, unnest(%s::text[]) r, unnest(%s::text[]) p "
            "where has_table_privilege(r, t, p)",
            (tables, list(CLIENTS), ["TRUNCATE", "TRIGGER", "REFERENCES"]),
        ).fetchall()
    assert rows == []


@pytest.mark.parametrize("role", API_ROLES)
def test_admin_logs_refuse_update_delete_and_truncate(adopted: Adopted, role: str) -> None:
    with psycopg.connect(adopted.project.dsn) as conn:
        for statement in (
            "update public.admin_logs set subject = 'rewritten'",
            "delete from public.admin_logs",
            "truncate public.admin_logs",
        ):
            conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            with pytest.raises(errors.InsufficientPrivilege, match="admin_logs"):
                conn.execute(statement)
            conn.rollback()


def test_admin_logs_refuse_the_owner_too(adopted: Adopted) -> None:
    with psycopg.connect(adopted.project.dsn, autocommit=True) as conn:
        conn.execute("insert into public.admin_logs (action, actor_id) values ('todo.check', 'me')")
        assert_admin_logs_refuse_rewrites(conn)
        assert conn.execute("select count(*) from public.admin_logs").fetchone() == (1,)


def test_check_and_heal_say_nothing_about_supabases_schemas(adopted: Adopted, cli: Any) -> None:
    check = cli("migrate", "check", "--json", env=adopted.env)
    findings = json.loads(check.stdout)["findings"]
    assert check.exit_code == 0, check.output
    assert [f for f in findings if f["subject"].split(".")[0] in SUPABASE_SCHEMAS] == []
    assert ("SCHEMA_EXTRA_TABLE", "public.todos") in {(f["code"], f["subject"]) for f in findings}
    assert not [f for f in findings if f["code"] == "SCHEMA_EXTRA_EXTENSION"]

    heal = cli("migrate", "heal", "--json", env=adopted.env)
    data = json.loads(heal.stdout)["data"]
    assert data["actions"] == [] and data["unhealed"] == []
