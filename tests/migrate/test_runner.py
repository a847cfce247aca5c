"""The runner against a real PostgreSQL 18: history, failures, ordering, down, indexes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from ops.errors import UsageError
from ops.migrate import history
from ops.migrate.apply import migrate_up
from ops.migrate.errors import DownRefused, MigrationFailed, OutOfOrder
from ops.migrate.files import load_migrations
from ops.migrate.revert import migrate_down
from ops.migrate.scratch import read_catalog_lines
from ops.migrate.status import migration_status
from ops.migrate.verify import verify_migrations

from .conftest import history_counts, target_for


def _catalog(dsn: str) -> set[str]:
    from ops import db

    with db.connect(dsn, autocommit=True) as conn:
        return read_catalog_lines(conn, "ops")


def _states(dsn: str, mini_dir: Path) -> dict[str, str]:
    report = migration_status(target_for(dsn), None, load_migrations([mini_dir]))
    return {e.version: e.state for e in report.entries}


def test_up_writes_supabase_history_and_side_table(fresh_db: str, mini_dir: Path) -> None:
    migs = load_migrations([mini_dir])
    target = target_for(fresh_db)
    before = migration_status(target, None, migs)
    assert [f.code for f in before.findings] == ["SCHEMA_PENDING_MIGRATIONS"]
    assert before.exit_code == 1

    result = migrate_up(target, None, migrations=migs, actor="tester@host")

    assert [s.version for s in result.steps] == [m.version for m in migs]
    assert result.target == target.masked
    with psycopg.connect(fresh_db) as conn:
        # Supabase CLI's own column set.
        rows = conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations "
            "order by version"
        ).fetchall()
        side = conn.execute(
            "select version, checksum, applied_by, success, duration_ms >= 0, down_sql "
            "from ops.migration_history order by id"
        ).fetchall()
        label = conn.execute(
            "insert into items (code) values ('a1') returning items_label(items)"
        ).fetchone()
    assert [(r[0], r[1]) for r in rows] == [(m.version, m.name) for m in migs]
    assert rows[0][2] == [s.sql for s in migs[0].up_statements] and len(rows[0][2]) == 2
    assert [(s[0], s[1], s[2], s[3], s[4]) for s in side] == [
        (m.version, m.checksum, "tester@host", True, True) for m in migs
    ]
    assert side[1][5] == migs[1].down_sql
    assert label == ("a1: none; really",)
    after = migration_status(target, None, migs)
    assert [f.code for f in after.findings] == ["MIGRATE_UP_TO_DATE"] and after.exit_code == 0
    assert migrate_up(target, None, migrations=migs).steps == []


def test_extra_columns_in_supabase_table_are_tolerated(fresh_db: str, mini_dir: Path) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create schema supabase_migrations")
        conn.execute(
            "create table supabase_migrations.schema_migrations (version text primary key, "
            "statements text[], name text, created_by text default 'someone', "
            "idempotency_key text)"
        )
        conn.execute(
            "insert into supabase_migrations.schema_migrations (version, name, statements) "
            "values ('20240101000000', 'from_supabase_cli', array['select 1'])"
        )
    migs = load_migrations([mini_dir])
    result = migrate_up(target_for(fresh_db), None, migrations=migs, include_all=True)
    assert len(result.steps) == 3
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "select version, name, created_by from supabase_migrations.schema_migrations "
            "order by version"
        ).fetchall()
    assert rows[0] == ("20240101000000", "from_supabase_cli", "someone")
    assert [r[1] for r in rows[1:]] == [m.name for m in migs]
    states = _states(fresh_db, mini_dir)
    assert states["20240101000000"] == "missing_locally"


def test_failed_migration_leaves_no_trace(
    fresh_db: str, mini_dir: Path, write_migration: Callable[[str, str], Path]
) -> None:
    target = target_for(fresh_db)
    migrate_up(target, None, migrations=load_migrations([mini_dir]))
    schema_before = _catalog(fresh_db)
    counts_before = history_counts(fresh_db)
    write_migration(
        "20250101000300_half_way.sql",
        "-- migrate:up\ncreate table public.half (id int primary key);\n"
        "alter table public.items add column extra int;\n"
        "insert into public.no_such_table values (1);\n"
        "-- migrate:down\ndrop table public.half;\n",
    )
    with pytest.raises(MigrationFailed) as err:
        migrate_up(target, None, migrations=load_migrations([mini_dir]))
    message = str(err.value)
    assert "20250101000300_half_way.sql:4 (statement 3/3" in message
    assert 'relation "public.no_such_table" does not exist' in message
    assert "rolled back" in message and err.value.exit_code == 1
    assert _catalog(fresh_db) == schema_before
    assert history_counts(fresh_db) == counts_before


def test_out_of_order_needs_include_all(fresh_db: str, mini_dir: Path) -> None:
    migs = load_migrations([mini_dir])
    target = target_for(fresh_db)
    migrate_up(target, None, migrations=[migs[0], migs[2]])
    assert _states(fresh_db, mini_dir)[migs[1].version] == "out_of_order"
    with pytest.raises(OutOfOrder, match=migs[1].filename):
        migrate_up(target, None, migrations=migs)
    result = migrate_up(target, None, migrations=migs, include_all=True)
    assert [s.version for s in result.steps] == [migs[1].version]


def test_checksum_mismatch_and_missing_locally(fresh_db: str, mini_dir: Path) -> None:
    target = target_for(fresh_db)
    migrate_up(target, None, migrations=load_migrations([mini_dir]))
    edited = mini_dir / "20250101000100_create_tags.sql"
    edited.write_text(edited.read_text() + "\n-- edited after it was applied\n")
    (mini_dir / "20250101000200_items_code_unique.sql").unlink()
    report = migration_status(target, None, load_migrations([mini_dir]))
    rerun = migrate_up(target, None, migrations=load_migrations([mini_dir]))
    assert rerun.steps == [] and "create_tags.sql was edited" in rerun.warnings[0]
    codes = {f.code: f for f in report.findings}
    assert codes["MIGRATE_CHECKSUM_MISMATCH"].subject == "20250101000100_create_tags"
    assert codes["MIGRATE_MISSING_LOCALLY"].subject == "20250101000200_items_code_unique"
    assert report.exit_code == 1
    verified = verify_migrations(target, None, load_migrations([mini_dir]))
    assert {"MIGRATE_CHECKSUM_MISMATCH", "MIGRATE_MISSING_LOCALLY"} <= {
        f.code for f in verified.findings
    }
    # The deleted file is reverted with the down SQL recorded when it was applied.
    result = migrate_down(target, None, to="20250101000100", migrations=load_migrations([mini_dir]))
    assert [s.version for s in result.steps] == ["20250101000200"]
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select to_regclass('public.items_code_uq')").fetchone() == (None,)


def test_down_to_zero_and_up_again(fresh_db: str, mini_dir: Path) -> None:
    migs = load_migrations([mini_dir])
    target = target_for(fresh_db)
    empty = _catalog(fresh_db)
    migrate_up(target, None, migrations=migs)
    applied = _catalog(fresh_db)
    dry = migrate_down(target, None, to="0", migrations=migs, dry_run=True)
    assert [s.version for s in dry.steps] == [m.version for m in reversed(migs)]
    assert _catalog(fresh_db) == applied
    migrate_down(target, None, to="0", migrations=migs)
    assert _catalog(fresh_db) == empty
    assert history_counts(fresh_db) == (0, 6)
    migrate_up(target, None, migrations=migs)
    assert _catalog(fresh_db) == applied


def test_down_refuses_up_only_files_before_doing_anything(
    fresh_db: str, mini_dir: Path, write_migration: Callable[[str, str], Path]
) -> None:
    write_migration("20250101000300_supabase_style.sql", "create table public.plain (id int);\n")
    migs = load_migrations([mini_dir])
    target = target_for(fresh_db)
    migrate_up(target, None, migrations=migs)
    before = (_catalog(fresh_db), history_counts(fresh_db))
    with pytest.raises(DownRefused, match=r"20250101000300_supabase_style\.sql"):
        migrate_down(target, None, to="0", migrations=migs)
    assert (_catalog(fresh_db), history_counts(fresh_db)) == before
    with pytest.raises(UsageError):
        migrate_down(target, None, to="12345", migrations=migs)


def test_failed_concurrent_index_is_detected_and_rebuilt(fresh_db: str, mini_dir: Path) -> None:
    migs = load_migrations([mini_dir])
    target = target_for(fresh_db)
    migrate_up(target, None, migrations=migs, to=migs[1].version)
    with psycopg.connect(fresh_db) as conn:
        conn.execute("insert into items (code) values ('dup'), ('dup')")
    with pytest.raises(MigrationFailed, match=r"unique\.sql:5 .*could not create unique"):
        migrate_up(target, None, migrations=migs)
    valid = "select indisvalid from pg_index where indexrelid = 'public.items_code_uq'::regclass"
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(valid).fetchone() == (False,)
        conn.execute("delete from items where id = (select max(id) from items)")
    assert _states(fresh_db, mini_dir)[migs[2].version] == "failed"
    verified = verify_migrations(target, None, migs)
    assert "MIGRATE_PARTIAL" in {f.code for f in verified.findings}

    result = migrate_up(target, None, migrations=migs)

    assert result.rebuilt_indexes == ["public.items_code_uq"]
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(valid).fetchone() == (True,)
    assert _states(fresh_db, mini_dir)[migs[2].version] == "applied"
    # An index made INVALID after the file was applied is rebuilt by the next up.
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("update pg_index set indisvalid = false where indexrelid = "
                     "'public.items_code_uq'::regclass")  # fmt: skip
    assert "MIGRATE_INVALID_INDEX" in {
        f.code for f in verify_migrations(target, None, migs).findings
    }
    assert migrate_up(target, None, migrations=migs).rebuilt_indexes == ["public.items_code_uq"]
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(valid).fetchone() == (True,)


def test_read_applied_without_tables_is_empty(fresh_db: str) -> None:
    from ops import db

    with db.connect(fresh_db, autocommit=True) as conn:
        assert history.read_applied(conn, "ops") == {}
        assert history.read_failed(conn, "ops") == {}


def test_ensure_migrated_follows_auto_apply_in(fresh_db: str) -> None:
    from ops import db
    from ops.config import load_config
    from ops.migrate.apply import ensure_migrated

    target = target_for(fresh_db)
    prod = ensure_migrated(target, load_config(None, "prod"))
    assert [f.code for f in prod] == ["SCHEMA_PENDING_MIGRATIONS"]
    with db.connect(fresh_db, autocommit=True) as holder:
        assert db.try_advisory_lock(holder, "migrate", 0)
        cfg = load_config(None, "dev")
        cfg.data["database"]["lock_timeout"] = "100ms"
        busy = ensure_migrated(target, cfg)
    assert [(f.code, f.effective_exit_code) for f in busy] == [("MIGRATE_FAILED", 5)]
    dev = ensure_migrated(target, load_config(None, "dev"))
    assert [f.code for f in dev] == ["MIGRATE_APPLIED"] and dev[0].subject == "14 migration(s)"
    assert [f.code for f in ensure_migrated(target, load_config(None, "dev"))] == [
        "MIGRATE_UP_TO_DATE"
    ]


def test_an_old_supabase_table_gets_its_missing_columns(fresh_db: str, mini_dir: Path) -> None:
    with psycopg.connect(fresh_db) as conn:
        conn.execute("create schema supabase_migrations")
        conn.execute(
            "create table supabase_migrations.schema_migrations (version text primary key)"
        )
    migrate_up(target_for(fresh_db), None, migrations=load_migrations([mini_dir]))
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "select version, name, cardinality(statements) from "
            "supabase_migrations.schema_migrations order by version"
        ).fetchall()
    assert rows[0] == ("20250101000000", "create_items", 2) and len(rows) == 3
