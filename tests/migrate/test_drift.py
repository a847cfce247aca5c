"""`migrate check`: every kind of drift is an error finding; extras are info."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from ops import db
from ops.findings import Finding, Severity
from ops.migrate.catalog import read_catalog
from ops.migrate.drift import compare, run_check
from ops.migrate.manifest import load_manifest
from tests.pgtrace import catalog_markers, traced


@pytest.fixture
def conn(migrated_conn: Any) -> Any:
    return migrated_conn


def problems(found: list[Finding]) -> list[tuple[str, str]]:
    return sorted((f.code, f.subject) for f in found if f.severity >= Severity.ERROR)


def test_a_freshly_migrated_database_is_clean(conn: Any) -> None:
    result = run_check(conn)
    assert [f.code for f in result.findings] == ["SCHEMA_OK"]
    assert result.tables == len(load_manifest()["tables"])


def test_migrate_check_sends_a_fixed_number_of_statements_counted_on_the_wire(
    migrated_db: str, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"DATABASE_URL": migrated_db}

    def measured() -> tuple[int, int, int]:
        with traced(monkeypatch) as trace:
            result = cli("migrate", "check", "--json", env=env)
        assert result.exit_code in (0, 1), result.output
        sent = trace.statements()
        catalog = sum(1 for s in sent if any(m in s for m in catalog_markers()))
        return catalog, len(sent), json.loads(result.stdout)["data"]["catalog_queries"]

    catalog, total, reported = measured()
    assert catalog == reported <= 10  # the README's promise, and the number it prints
    assert total <= 16  # the catalog reads plus the migration history's few
    with db.connect(migrated_db, autocommit=True) as c, c.transaction():
        for i in range(300):
            table = db.Identifier("public", f"many_{i}")
            c.execute(db.SQL("create table {} (id int primary key, v text)").format(table))
            c.execute(db.SQL("create index on {} (v)").format(table))
            c.execute(db.SQL("alter table {} enable row level security").format(table))
    assert measured() == (catalog, total, reported)  # 300 more tables, not one more query


@pytest.mark.parametrize(
    ("ddl", "expected"),
    [
        ("drop table public.search_queries", [("SCHEMA_MISSING_TABLE", "public.search_queries")]),
        (
            "alter table public.offers alter column status set default 'live'",
            [("SCHEMA_COLUMN_MISMATCH", "public.offers.status")],
        ),
        (
            "alter table public.offers alter column title drop not null",
            [("SCHEMA_COLUMN_MISMATCH", "public.offers.title")],
        ),
        (
            "alter table public.user_sessions drop constraint user_sessions_ended_at_check",
            [("SCHEMA_MISSING_CONSTRAINT", "public.user_sessions.user_sessions_ended_at_check")],
        ),
        (
            "alter table public.users disable trigger set_updated_at",
            [("SCHEMA_DEFINITION_MISMATCH", "public.users.set_updated_at")],
        ),
        (
            "revoke delete on public.prompts from anon",
            [("GRANT_MISMATCH", "public.prompts to anon")],
        ),
        (
            "grant select on public.admin_logs to public",
            [],  # PUBLIC is not an API role; nothing the manifest tracks changed
        ),
        (
            "alter publication supabase_realtime drop table public.notifications",
            [("REALTIME_MISSING", "public.notifications")],
        ),
        ("drop publication supabase_realtime", [("REALTIME_MISSING", "supabase_realtime")]),
        (
            "alter table public.offers force row level security",
            [],  # stricter than the manifest: not drift that weakens anything
        ),
    ],
)
def test_each_kind_of_drift_is_an_error(conn: Any, ddl: str, expected: list[Any]) -> None:
    conn.execute(ddl)
    assert problems(run_check(conn).findings) == expected


def test_pending_migrations_are_reported(conn: Any) -> None:
    conn.execute(
        "delete from supabase_migrations.schema_migrations where version = "
        "(select max(version) from supabase_migrations.schema_migrations)"
    )
    codes = [f.code for f in run_check(conn).findings]
    assert codes[0] == "SCHEMA_PENDING_MIGRATIONS"


def test_extra_objects_are_info_and_lints_apply_to_them(conn: Any) -> None:
    conn.execute("create table public.scratchpad (id uuid primary key, user_id uuid)")
    conn.execute("alter table public.users add column nickname text")
    conn.execute("create index idx_users_nickname on public.users (nickname)")
    found = run_check(conn).findings
    extras = sorted((f.code, f.subject) for f in found if f.severity == Severity.INFO)
    assert extras == [
        ("SCHEMA_EXTRA_COLUMN", "public.users.nickname"),
        ("SCHEMA_EXTRA_INDEX", "public.users.idx_users_nickname"),
        ("SCHEMA_EXTRA_TABLE", "public.scratchpad"),
    ]
    assert problems(found) == [("LINT_RLS_DISABLED_IN_PUBLIC", "public.scratchpad")]


def test_missing_extension_schema_and_function_from_the_manifest(conn: Any) -> None:
    # Compare against a manifest that expects more than exists (pure comparison).
    manifest = copy.deepcopy(load_manifest())
    manifest["extensions"]["pg_trgm"] = "extensions"
    manifest["schemas"].append("storage")
    manifest["functions"]["public.gone()"] = {"returns": "void"}
    found = compare(manifest, read_catalog(conn))
    assert problems(found) == [
        ("EXTENSION_MISSING", "pg_trgm"),
        ("SCHEMA_MISSING_OBJECT", "function public.gone()"),
        ("SCHEMA_MISSING_OBJECT", "schema storage"),
    ]


def test_a_partition_copy_is_reported_once_through_its_parent(conn: Any) -> None:
    conn.execute("drop trigger set_updated_at on public.consent_logs")
    conn.execute("drop index public.idx_consent_logs_session_id_occurred_at")
    assert problems(run_check(conn).findings) == [
        ("SCHEMA_MISSING_INDEX", "public.consent_logs.idx_consent_logs_session_id_occurred_at"),
        ("SCHEMA_MISSING_TRIGGER", "public.consent_logs.set_updated_at"),
    ]


def test_check_works_inside_the_callers_transaction(migrated_db: str) -> None:
    c = db.connect(migrated_db)
    try:
        c.execute("alter table public.blogs disable row level security")  # uncommitted
        assert problems(run_check(c).findings) == [("RLS_DISABLED", "public.blogs")]
        c.rollback()
        assert problems(run_check(c).findings) == []
    finally:
        c.close()


def test_every_code_check_and_heal_emit_has_a_runbook() -> None:
    from pathlib import Path

    from ops.migrate.drift import ERROR_CODES
    from ops.migrate.lints import LINT_CODES

    runbooks = Path(__file__).resolve().parents[2] / "runbooks"
    codes = [*ERROR_CODES, *LINT_CODES, "SCHEMA_EXTRA_OBJECTS", "SCHEMA_HEALED"]
    codes += ["SCHEMA_HEAL_FAILED", "SCHEMA_PENDING_MIGRATIONS", "SCHEMA_CHECK_FAILED"]
    missing = [c for c in codes if not (runbooks / f"{c}.md").is_file()]
    assert missing == []


def test_extra_functions_count_only_in_public(conn: Any) -> None:
    conn.execute("create function auth.email() returns text language sql as $$ select '' $$")
    conn.execute("create function public.helper() returns int language sql as $$ select 1 $$")
    extras = [(f.code, f.subject) for f in run_check(conn).findings if "EXTRA" in f.code]
    assert extras == [("SCHEMA_EXTRA_FUNCTION", "public.helper()")]
