"""Adopting the Empire schema into the folder shared with Supabase CLI (issue 8, section 1).

The database here carries a Supabase CLI history written the way the CLI
writes it (``pkg/migration/history.go``: the table, then each file's
statements and its ``(version, name, statements)`` row in one transaction).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops.migrate import adopt, history
from ops.migrate.errors import MigrationFileError
from ops.migrate.files import (
    SHIPPED_DIR,
    comment_out_down,
    load_migrations,
    parse_migration,
    sql_code,
    statements_code,
    uncomment_down,
)

USER_FILES = {
    "20261101000000_create_todos.sql": (
        "-- the user's own table\ncreate table public.todos (id bigint primary key, task text);\n"
        "insert into public.todos values (1, 'ship it');\n"
    ),
    "20261115000000_todos_revoke_anon.sql": "revoke all on public.todos from public;\n",
}
SHIPPED = load_migrations([SHIPPED_DIR])


# -- the commented-down form -----------------------------------------------------------
@pytest.mark.parametrize("mig", SHIPPED, ids=lambda m: m.filename)
def test_commented_form_is_the_same_migration_with_the_same_checksum(
    mig: Any, tmp_path: Path
) -> None:
    text = mig.path.read_text()
    commented = comment_out_down(text)
    assert uncomment_down(commented) == text
    copy = parse_migration(tmp_path / mig.filename, commented.encode())
    assert (copy.checksum, copy.up_sql, copy.down_sql) == (mig.checksum, mig.up_sql, mig.down_sql)
    if mig.down_sql:
        assert copy.down_commented
    # What the Supabase CLI runs of it (every line that is not a comment): the up section.
    assert statements_code([commented]) == statements_code(s.sql for s in mig.up_statements)


def test_a_live_line_in_a_commented_down_section_is_refused(tmp_path: Path) -> None:
    text = "-- migrate:up\ncreate table t (a int);\n-- migrate:down:commented\ndrop table t;\n"
    with pytest.raises(MigrationFileError) as err:
        parse_migration(tmp_path / "1_t.sql", text.encode())
    assert ":4:" in err.value.message and "Supabase CLI would run it" in err.value.message


def test_sql_code_ignores_comments_and_layout_but_not_literals() -> None:
    a = "create table t (a text default 'x  y'); -- note\n/* block /* nested */ */ select 1"
    b = "create   table t\n(a text default 'x  y');select 1 -- other"
    assert statements_code([a]) == statements_code(b.split(";"))
    assert sql_code("select 'x  y'") != sql_code("select 'x y'")
    assert sql_code("select $$ a -- not a comment $$") == "select $$ a -- not a comment $$"


# -- planning (pure) -------------------------------------------------------------------
def _row(version: str, name: str, *, by_runner: bool = False) -> history.AppliedRow:
    return history.AppliedRow(
        version, name, None, None, None, None, False, statements=[], by_runner=by_runner
    )


def test_new_files_get_versions_newer_than_the_newest_applied(tmp_path: Path) -> None:
    applied = {"29990101000000": _row("29990101000000", "far_future")}
    plan = adopt.plan_adoption(tmp_path, SHIPPED, [], applied)
    versions = [f.version for f in plan.files]
    assert len(versions) == len(SHIPPED) and versions == sorted(versions)
    assert versions[0] == "29990101000001" and len(set(versions)) == len(versions)
    assert all(f.filename.split("_", 1)[1].startswith("empire_") for f in plan.files)


def test_versions_the_history_records_are_kept(tmp_path: Path) -> None:
    first, second = SHIPPED[0], SHIPPED[1]
    applied = {
        first.version: _row(first.version, first.name, by_runner=True),  # applied as shipped
        "20261201000000": _row("20261201000000", f"empire_{second.name}", by_runner=True),
    }
    plan = adopt.plan_adoption(tmp_path, SHIPPED, [], applied)
    assert [(f.version, f.reason) for f in plan.files[:2]] == [
        (first.version, "recorded"),
        ("20261201000000", "recorded"),
    ]
    assert all(f.reason == "new" and f.version > "20261201000000" for f in plan.files[2:])


def test_a_missing_file_before_a_present_one_is_not_given_a_new_version(tmp_path: Path) -> None:
    later = SHIPPED[3]
    present = parse_migration(tmp_path / f"20261201000000_empire_{later.name}.sql", b"select 1;")
    with pytest.raises(MigrationFileError) as err:
        adopt.plan_adoption(tmp_path, SHIPPED, [present], {})
    assert "restore" in (err.value.hint or "") and SHIPPED[0].filename in err.value.message


# -- a project with a Supabase CLI history ---------------------------------------------
def cli_apply(dsn: str, path: Path) -> None:
    """Apply ``path`` as `supabase db push` does: history DDL, statements and row, one tx."""
    from ops.migrate.files import split_statements

    statements = [s.sql for s in split_statements(path.read_text())]
    version, name = path.stem.split("_", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("set lock_timeout = '4s'")
        conn.execute("create schema if not exists supabase_migrations")
        conn.execute(
            "create table if not exists supabase_migrations.schema_migrations "
            "(version text not null primary key)"
        )
        conn.execute(
            "alter table supabase_migrations.schema_migrations "
            "add column if not exists statements text[]"
        )
        conn.execute(
            "alter table supabase_migrations.schema_migrations add column if not exists name text"
        )
        with conn.transaction():
            for stmt in statements:
                conn.execute(stmt)  # type: ignore[arg-type]
            conn.execute(
                "insert into supabase_migrations.schema_migrations (version, name, statements) "
                "values (%s, %s, %s)",
                (version, name, statements),
            )


@pytest.fixture
def cli_project(fresh_db: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A project folder with supabase/migrations holding two user files the CLI applied."""
    folder = tmp_path / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (tmp_path / "empire-ops.toml").write_text('[project]\nname = "t"\n')
    for name, text in USER_FILES.items():
        (folder / name).write_text(text)
        cli_apply(fresh_db, folder / name)
    return folder, {"DATABASE_URL": fresh_db}


def test_init_adopts_after_the_newest_applied_and_up_applies_without_flags(
    cli_project: tuple[Path, dict[str, str]], cli: Any
) -> None:
    folder, env = cli_project
    status = cli("migrate", "status", "--json", env=env)
    codes = [f["code"] for f in json.loads(status.stdout)["findings"]]
    assert status.exit_code == 1 and "MIGRATE_NOT_ADOPTED" in codes

    init = cli("migrate", "init", env=env)
    assert init.exit_code == 0, init.output
    adopted = sorted(folder.glob("*_empire_*.sql"))
    assert len(adopted) == len(SHIPPED)
    assert min(p.name for p in adopted) > max(USER_FILES)
    # The CLI runs every line: no live down statement in any adopted file.
    for path in adopted:
        assert parse_migration(path).checksum in {m.checksum for m in SHIPPED}
        assert "-- migrate:down\n" not in path.read_text()
    again = cli("migrate", "init", env=env)
    assert again.exit_code == 0 and len(list(folder.glob("*_empire_*.sql"))) == len(SHIPPED)

    up = cli("migrate", "up", "--yes", env=env)
    assert up.exit_code == 0, up.output
    data = json.loads(cli("migrate", "status", "--json", env=env).stdout)["data"]
    by = {m["version"]: (m["state"], m["recorded_by"]) for m in data["migrations"]}
    assert {v: by[v] for v in (n.split("_", 1)[0] for n in USER_FILES)} == {
        "20261101000000": ("applied", "supabase-cli"),
        "20261115000000": ("applied", "supabase-cli"),
    }
    assert {s for s, _ in by.values()} == {"applied"} and len(by) == len(SHIPPED) + 2

    verify = json.loads(cli("migrate", "verify", "--json", env=env).stdout)
    cli_rows = [f for f in verify["findings"] if f["code"] == "MIGRATE_APPLIED_BY_CLI"]
    assert len(cli_rows) == 2 and all("matches" in f["message"] for f in cli_rows)
    ok = [f for f in verify["findings"] if f["code"] == "MIGRATE_VERIFIED"]
    assert (
        ok and f"{len(SHIPPED)} applied with matching checksums, 2 applied by" in (ok[0]["message"])
    )


def test_up_alone_adopts_and_a_concurrent_up_adopts_nothing_twice(
    cli_project: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, env = cli_project
    cmd = [sys.executable, "-m", "ops", "migrate", "up", "--yes"]
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, env={**_env(), **env}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    assert len(list(folder.glob("*_empire_*.sql"))) == len(SHIPPED)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "EMPIRE_"))}


def test_a_file_edited_after_the_cli_applied_it_is_reported(
    cli_project: tuple[Path, dict[str, str]], cli: Any
) -> None:
    folder, env = cli_project
    assert cli("migrate", "up", "--yes", env=env).exit_code == 0
    edited = folder / "20261101000000_create_todos.sql"
    edited.write_text(edited.read_text().replace("'ship it'", "'ship it later'"))
    verify = cli("migrate", "verify", "--json", env=env)
    bad = [f for f in json.loads(verify.stdout)["findings"] if f["severity"] == "error"]
    assert verify.exit_code == 1
    assert [(f["code"], f["subject"]) for f in bad] == [
        ("MIGRATE_CLI_STATEMENTS_MISMATCH", "20261101000000_create_todos")
    ]


def test_down_past_the_users_own_migrations_says_so(
    cli_project: tuple[Path, dict[str, str]], cli: Any
) -> None:
    _, env = cli_project
    assert cli("migrate", "up", "--yes", env=env).exit_code == 0
    refused = cli("migrate", "down", "--to", "0", "--yes", env=env)
    assert refused.exit_code == 1
    assert "applied by Supabase CLI" in refused.stderr and "--to 20261115000000" in refused.stderr
    assert "MIGRATE_DOWN_PAST_CLI" in refused.stderr
    # Nothing was reverted.
    data = json.loads(cli("migrate", "status", "--json", env=env).stdout)["data"]
    assert {m["state"] for m in data["migrations"]} == {"applied"}
    back = cli("migrate", "down", "--to", "20261115000000", "--yes", env=env)
    assert back.exit_code == 0 and back.stdout.count("reverted ") == len(SHIPPED)


def test_without_the_folder_a_newer_history_points_at_init(
    cli_project: tuple[Path, dict[str, str]], cli: Any
) -> None:
    folder, env = cli_project
    for path in folder.glob("*.sql"):
        path.unlink()
    folder.rmdir()
    refused = cli("migrate", "up", "--yes", env=env)
    assert refused.exit_code == 1 and "empire-ops migrate init" in refused.stderr
    missing = cli("migrate", "init", env=env)
    assert missing.exit_code == 2 and "supabase init" in missing.stderr


def test_an_earlier_adoption_under_the_shipped_versions_is_written_as_recorded(
    fresh_db: str, tmp_path: Path, cli: Any
) -> None:
    env = {"DATABASE_URL": fresh_db}
    (tmp_path / "empire-ops.toml").write_text('[project]\nname = "t"\n')
    assert cli("migrate", "up", "--yes", env=env).exit_code == 0  # no folder: shipped versions
    folder = tmp_path / "supabase" / "migrations"
    folder.mkdir(parents=True)
    init = cli("migrate", "init", "--json", env=env)
    written = json.loads(init.stdout)["data"]["written"]
    assert {(w["version"], w["reason"]) for w in written} == {
        (m.version, "recorded") for m in SHIPPED
    }
    status = cli("migrate", "status", "--json", env=env)
    assert status.exit_code == 0, status.output  # same checksums: nothing edited, nothing pending


def test_new_in_the_shared_folder_comments_the_down_section_and_verify_guards_it(
    cli_project: tuple[Path, dict[str, str]], cli: Any
) -> None:
    folder, env = cli_project
    created = cli("migrate", "new", "add_orders")
    assert created.exit_code == 0, created.output
    path = next(folder.glob("*_add_orders.sql"))
    assert "-- migrate:down:commented" in path.read_text()
    path.write_text("-- migrate:up\ncreate table o (a int);\n-- migrate:down\ndrop table o;\n")
    verify = json.loads(cli("migrate", "verify", "--json", env=env).stdout)
    invalid = [f for f in verify["findings"] if f["code"] == "MIGRATE_FILE_INVALID"]
    assert invalid and "the CLI runs every line" in invalid[0]["message"]
