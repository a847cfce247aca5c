"""`migrate test` catches a down that does not undo its up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from ops.migrate.files import load_migrations
from ops.migrate.scratch import run_migration_test

from .conftest import target_for


def test_a_leaky_down_is_reported(
    pg: Any, mini_dir: Path, write_migration: Callable[[str, str], Path]
) -> None:
    write_migration(
        "20250101000300_leaky.sql",
        "-- migrate:up\ncreate table public.leaky (id int primary key);\n"
        "alter table public.items add column colour text default 'red';\n"
        "-- migrate:down\ndrop table public.leaky;\n",
    )
    report = run_migration_test(target_for(pg.dsn()), None, load_migrations([mini_dir]))
    bad = [f for f in report.findings if f.is_problem]
    assert [(f.code, f.subject) for f in bad] == [
        ("MIGRATE_DOWN_INCOMPLETE", "20250101000300_leaky.sql"),
        ("MIGRATE_TEST_FAILED", "20250101000300_leaky.sql (up after down)"),
    ], report.findings
    assert 'column "colour" of relation "items" already exists' in bad[1].message
    assert any("column public.items.colour text" in line for line in bad[0].details["diff"])
    assert report.exit_code == 1 and not report.manifest_compared
    with psycopg.connect(pg.dsn()) as conn:
        left = conn.execute(
            "select count(*) from pg_database where datname = %s", (report.scratch_database,)
        ).fetchone()
    assert left == (0,)


def test_the_small_set_round_trips(pg: Any, mini_dir: Path) -> None:
    report = run_migration_test(target_for(pg.dsn()), None, load_migrations([mini_dir]))
    assert [f.code for f in report.findings] == ["MIGRATE_TEST_PASSED"]
