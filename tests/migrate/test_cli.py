"""`empire-ops migrate ...` end to end: real processes, the lock, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from ops import db
from ops.migrate.files import SHIPPED_DIR, load_migrations

from .conftest import history_counts

REPO = Path(__file__).resolve().parents[2]
SHIPPED = len(load_migrations())


def _config(tmp_path: Path, text: str) -> None:
    (tmp_path / "empire-ops.toml").write_text(text)


def test_two_up_processes_apply_each_migration_once(fresh_db: str) -> None:
    env = {**os.environ, "DATABASE_URL": fresh_db, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "ops", "migrate", "up", "--yes"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    # The second waits for the lock (exit 0, nothing left) or gives up busy (exit 5).
    assert sorted(codes) in ([0, 0], [0, 5]), outs
    applied = [out.count("\napplied 2026") for out, _ in outs]
    assert sorted(applied) == [0, SHIPPED], outs
    assert history_counts(fresh_db) == (SHIPPED, SHIPPED)
    for out, _ in outs:
        dbname = db.parse_dsn(fresh_db).dbname
        assert out.startswith(f"target: database '{dbname}' on 127.0.0.1:"), out
        assert out.splitlines()[0].endswith("as postgres (from DATABASE_URL)")


def test_up_exits_5_while_another_run_holds_the_lock(
    fresh_db: str, cli: Any, tmp_path: Path
) -> None:
    _config(tmp_path, '[database]\nlock_timeout = "300ms"\n')
    with db.connect(fresh_db, autocommit=True) as holder:
        assert db.try_advisory_lock(holder, "migrate", 0)
        result = cli("migrate", "up", "--yes", env={"DATABASE_URL": fresh_db})
    assert result.exit_code == 5, result.output
    assert "holds the 'migrate' lock" in result.stderr
    assert result.stdout.startswith("target: ")
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select to_regclass('public.users')").fetchone() == (None,)


def test_status_dry_run_and_down_policy(migrated_db: str, cli: Any, tmp_path: Path) -> None:
    env = {"DATABASE_URL": migrated_db}
    status = cli("migrate", "status", "--json", env=env)
    data = json.loads(status.stdout)
    assert status.exit_code == 0 and data["findings"][0]["code"] == "MIGRATE_UP_TO_DATE"
    assert len(data["data"]["migrations"]) == SHIPPED and "target: " in status.stderr
    assert {m["state"] for m in data["data"]["migrations"]} == {"applied"}

    refused = cli("--env", "prod", "migrate", "down", "--to", "0", env=env)
    assert refused.exit_code == 1 and "needs --yes" in refused.stderr

    dry = cli("--env", "prod", "migrate", "down", "--to", "20260101001100", "--dry-run", env=env)
    assert dry.exit_code == 0, dry.output
    assert "would revert 20260101001300_realtime_and_grants" in dry.stdout
    assert "would revert 20260101001200_embedding_hnsw_indexes (no transaction)" in dry.stdout

    done = cli("--env", "prod", "migrate", "down", "--to", "20260101001100", "--yes", env=env)
    assert done.exit_code == 0, done.output
    assert history_counts(migrated_db) == (SHIPPED - 2, SHIPPED + 2)
    pending = cli("migrate", "status", env=env)
    assert pending.exit_code == 1 and "SCHEMA_PENDING_MIGRATIONS" in pending.stdout
    up_dry = cli("migrate", "up", "--dry-run", env=env)
    assert "would apply 20260101001200_embedding_hnsw_indexes" in up_dry.stdout
    assert cli("--env", "dev", "migrate", "up", "--to", "20260101001200", env=env).exit_code == 0
    assert history_counts(migrated_db)[0] == SHIPPED - 1


def test_user_supabase_folder_via_config(fresh_db: str, cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "20270101000000_user_table.sql").write_text(
        "create table public.user_notes (id bigint primary key, body text);\n"
    )
    _config(tmp_path, '[migrate]\ndirs = ["supabase/migrations"]\n')
    env = {"DATABASE_URL": fresh_db}
    assert cli("migrate", "up", "--yes", env=env).exit_code == 0
    # The shared folder now holds the Empire schema too, after the user's newest file.
    adopted = sorted(folder.glob("*_empire_*.sql"))
    assert len(adopted) == len(list(SHIPPED_DIR.glob("*.sql")))
    assert all(p.name > "20270101000000" for p in adopted)
    status = json.loads(cli("migrate", "status", "--json", env=env).stdout)
    states = {m["version"]: m["state"] for m in status["data"]["migrations"]}
    assert set(states.values()) == {"applied"} and len(states) == len(adopted) + 1
    user = [m for m in status["data"]["migrations"] if m["version"] == "20270101000000"]
    assert user and user[0]["up_only"]
    refused = cli("migrate", "down", "--to", "0", "--yes", env=env)
    assert refused.exit_code == 1 and "up-only" in refused.stderr
    reverted = cli("migrate", "down", "--to", "20270101000000", "--yes", env=env)
    assert reverted.exit_code == 0, reverted.output
    assert reverted.stdout.count("reverted ") == len(adopted)


def test_new_and_verify(fresh_db: str, cli: Any, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    _config(tmp_path, '[migrate]\ndirs = ["mine"]\n')
    created = cli("migrate", "new", "add_orders")  # into the first of [migrate] dirs
    assert created.exit_code == 0 and "_add_orders.sql" in created.stdout
    path = next(folder.glob("*_add_orders.sql"))
    path.write_text("-- migrate:up\ncreate index concurrently i on t (a);\n-- migrate:down\n")
    result = cli("migrate", "verify", "--json", env={"DATABASE_URL": fresh_db})
    data = json.loads(result.stdout)
    invalid = [f for f in data["findings"] if f["code"] == "MIGRATE_FILE_INVALID"]
    assert result.exit_code == 1 and invalid and "no-transaction" in invalid[0]["message"]


def test_migrate_test_proves_the_shipped_schema(pg: Any, cli: Any) -> None:
    result = cli("migrate", "test", "--json", env={"DATABASE_URL": pg.dsn()})
    data = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    codes = [f["code"] for f in data["findings"]]
    assert "MIGRATE_TEST_PASSED" in codes, data["findings"]
    # Down to zero and up again equals the committed expected-schema snapshot.
    assert data["data"]["manifest_compared"] and "MIGRATE_SNAPSHOT_EQUAL" in codes
    with psycopg.connect(pg.dsn()) as conn:
        left = conn.execute(
            "select count(*) from pg_database where datname = %s",
            (data["data"]["scratch_database"],),
        ).fetchone()
    assert left == (0,)


def test_new_never_writes_into_the_package(cli: Any, tmp_path: Path) -> None:
    from ops.migrate.files import SHIPPED_DIR

    shipped = sorted(p.name for p in SHIPPED_DIR.iterdir())
    # No [migrate] dirs: there is no project folder to write to, so it says how to name one.
    refused = cli("migrate", "new", "add_orders")
    assert refused.exit_code == 2, refused.output
    assert "[migrate] dirs" in refused.stderr and "--dir" in refused.stderr
    # A folder inside an installed package (site-packages) is refused too.
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "ops" / "migrate"
    site.mkdir(parents=True)
    inside = cli("migrate", "new", "add_orders", "--dir", str(site))
    assert inside.exit_code == 2 and "installed package" in inside.stderr, inside.output
    assert list(site.iterdir()) == []
    assert sorted(p.name for p in SHIPPED_DIR.iterdir()) == shipped
    # --dir names the project's folder explicitly.
    mine = tmp_path / "supabase" / "migrations"
    mine.mkdir(parents=True)
    made = cli("migrate", "new", "add_orders", "--dir", str(mine))
    assert made.exit_code == 0, made.output
    assert [p.name.split("_", 1)[1] for p in mine.iterdir()] == ["add_orders.sql"]
