"""`restore` against the real servers: into a new database, timed, refusing wrong targets;
chosen tables only; -j 2; encrypted; and a PostgreSQL 15 backup restored into 18."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops import db
from tests.backup.test_backup_run import _config, _seed


def _backup(cli: Any, dsn: str) -> str:
    result = cli("backup", "run", "--json", env={"DATABASE_URL": dsn})
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["data"]["backup_id"])


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"select count(*) from {table}").fetchone()  # test-owned name
    assert row is not None
    return int(row[0])


def _new_name() -> str:
    return f"restored_{secrets.token_hex(4)}"


def _drop(pg: Any, name: str) -> None:
    with pg.admin() as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def test_restore_into_a_new_database_matches_the_backup_and_is_timed(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _seed(migrated_db)
    _config(tmp_path)
    backup_id = _backup(cli, migrated_db)
    name = _new_name()
    try:
        result = cli(
            "restore", "latest", "--target-db", name, "--create", "--json",
            env={"DATABASE_URL": migrated_db},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)["data"]
        assert data["backup_id"] == backup_id and set(data["stages"]) == {
            "fetch_and_restore", "grants", "history", "verify"
        }  # fmt: skip
        assert data["errors"] == [] and data["tables"] > 30
        restored = db.with_dbname(migrated_db, name)
        assert _count(restored, "public.offers") == 300
        # The CLI's ledger, left out of the dump, is back: nothing reads as pending.
        findings = json.loads(result.stdout)["findings"]
        history = [f for f in findings if f["code"] == "RESTORE_HISTORY"]
        assert [f["severity"] for f in history] == ["ok"]
        status = cli("migrate", "status", "--json", env={"DATABASE_URL": restored})
        assert status.exit_code == 0, status.output
        assert _pending(status.stdout) == [] and _applied(restored) == _applied(migrated_db)
        # The target is not empty now: a second restore is refused without --force.
        again = cli("restore", "latest", "--target-db", name, env={"DATABASE_URL": migrated_db})
        assert again.exit_code == 2 and "is not empty" in again.stderr
        parallel = cli(
            "restore", "latest", "--target-db", name, "--force", "-j", "2", "--json",
            env={"DATABASE_URL": migrated_db},
        )  # fmt: skip
        stages = json.loads(parallel.stdout)["data"]["stages"]
        assert set(stages) == {"fetch", "restore", "grants", "history", "verify"}
    finally:
        _drop(pg, name)


def _pending(status_json: str) -> list[str]:
    migrations = json.loads(status_json)["data"]["migrations"]
    assert migrations  # the status saw the migrations: an empty answer would prove nothing
    return [m["version"] for m in migrations if m["state"] != "applied"]


def _applied(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select version from supabase_migrations.schema_migrations order by 1"
        ).fetchall()
    return [r[0] for r in rows]


def test_a_migration_only_the_cli_logged_is_named_after_a_restore(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    # The newest migration as Supabase CLI alone would have applied it: in the ledger (which
    # the dump leaves out), not in empire-ops' log (which the dump holds).
    newest = _applied(migrated_db)[-1]
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("delete from ops.migration_history where version = %s", (newest,))
    _config(tmp_path)
    _backup(cli, migrated_db)
    name = _new_name()
    try:
        result = cli("restore", "latest", "--target-db", name, "--create", "--json",
                     env={"DATABASE_URL": migrated_db})  # fmt: skip
        assert result.exit_code == 0, result.output
        (history,) = [
            f for f in json.loads(result.stdout)["findings"] if f["code"] == "RESTORE_HISTORY"
        ]  # fmt: skip
        assert history["severity"] == "warning" and newest in history["message"]
        assert history["runbook"] == "runbooks/RESTORE_HISTORY.md"
        restored = db.with_dbname(migrated_db, name)
        status = cli("migrate", "status", "--json", env={"DATABASE_URL": restored})
        assert _pending(status.stdout) == [newest]  # exactly the one the runbook repairs
    finally:
        _drop(pg, name)


def test_restore_refuses_the_configured_database_and_a_missing_target(
    migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    _config(tmp_path)
    _backup(cli, migrated_db)
    env = {"DATABASE_URL": migrated_db}
    itself = cli("restore", "latest", "--target-dsn", migrated_db, "--force", env=env)
    assert itself.exit_code == 2 and "the configured database itself" in itself.stderr
    neither = cli("restore", "latest", env=env)
    assert neither.exit_code == 2 and "--target-db NAME or --target-dsn" in neither.stderr
    bad_table = cli("restore", "latest", "--target-db", "x", "--table", "offers;drop", env=env)
    assert bad_table.exit_code == 2 and "is not SCHEMA.TABLE" in bad_table.stderr


def test_restore_of_chosen_tables_only(migrated_db: str, pg: Any, tmp_path: Path, cli: Any) -> None:
    _seed(migrated_db)
    _config(tmp_path)
    _backup(cli, migrated_db)
    name = _new_name()
    try:
        result = cli(
            "restore", "latest", "--target-db", name, "--create", "--table", "public.offers",
            "--json", env={"DATABASE_URL": migrated_db},
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        restored = db.with_dbname(migrated_db, name)
        assert _count(restored, "public.offers") == 300
        # a --table restore leaves the migration ledger alone
        assert "history" not in json.loads(result.stdout)["data"]["stages"]
        with psycopg.connect(restored) as conn:
            others = conn.execute(
                "select count(*) from pg_tables where schemaname = 'public'"
            ).fetchone()
        assert others == (1,)
    finally:
        _drop(pg, name)


def test_an_encrypted_backup_restores_with_its_identity(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    from pyrage import x25519

    _seed(migrated_db)
    identity = x25519.Identity.generate()
    _config(tmp_path, f'[backup]\nrecipients = ["{identity.to_public()}"]\n')
    _backup(cli, migrated_db)
    name = _new_name()
    try:
        env = {"DATABASE_URL": migrated_db}
        refused = cli("restore", "latest", "--target-db", name, "--create", env=env)
        assert refused.exit_code == 3 and "BACKUP_AGE_IDENTITY" in refused.stderr
        env["BACKUP_AGE_IDENTITY"] = str(identity)
        done = cli("restore", "latest", "--target-db", name, "--create", "--force", env=env)
        assert done.exit_code == 0, done.output
        assert _count(db.with_dbname(migrated_db, name), "public.offers") == 300
        assert str(identity) not in done.stdout + done.stderr
    finally:
        _drop(pg, name)


@pytest.mark.pg15
def test_a_postgresql_15_backup_restores_into_18(
    pg15_source: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    source, target_name = pg15_source, _new_name()
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("create table public.notes (id bigint primary key, body text not null)")
        conn.execute(
            "insert into public.notes select g, 'note ' || g from generate_series(1, 500) g"
        )
    _config(tmp_path)
    try:
        backup_id = _backup(cli, source)
        info = json.loads(cli("backup", "info", backup_id, "--json").stdout)["data"]
        assert info["database"]["server_major"] == 15 and info["pg_dump_version"].startswith("18")
        with pg.admin() as conn:
            conn.execute(f'create database "{target_name}"')
        target = pg.dsn(target_name)
        done = cli(
            "restore", backup_id, "--target-dsn", target, "--json",
            env={"DATABASE_URL": source},
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        assert _count(target, "public.notes") == 500
    finally:
        _drop(pg, target_name)


def test_a_restore_that_fails_drops_the_database_it_created_and_a_rerun_succeeds(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _seed(migrated_db)
    _config(tmp_path)
    backup_id = _backup(cli, migrated_db)
    [stored] = [
        p for p in (tmp_path / "backups" / backup_id).iterdir() if p.name != "manifest.json"
    ]
    pristine = stored.read_bytes()
    blob = bytearray(pristine)
    blob[len(blob) // 2] ^= 0x01  # the restore breaks midway, its database half filled
    stored.write_bytes(bytes(blob))
    name = _new_name()
    env = {"DATABASE_URL": migrated_db}
    try:
        failed = cli("restore", "latest", "--target-db", name, "--create", env=env)
        assert failed.exit_code == 1, failed.output
        assert f"dropped {name}, which this restore had created" in failed.stderr
        with pg.admin() as conn:
            found = conn.execute("select 1 from pg_database where datname = %s", (name,))
            assert found.fetchone() is None
        stored.write_bytes(pristine)
        again = cli("restore", "latest", "--target-db", name, "--create", env=env)
        assert again.exit_code == 0, again.output
        assert _count(db.with_dbname(migrated_db, name), "public.offers") == 300
    finally:
        _drop(pg, name)
