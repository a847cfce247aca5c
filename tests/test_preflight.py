"""Preflight and up against real databases."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest

from ops import db
from ops.migrate.files import load_migrations
from tests.pgtrace import catalog_markers, traced

SHIPPED = len(load_migrations())


def applied_versions(dsn: str) -> int | None:
    """Rows in Supabase's schema_migrations; None while the table does not exist."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select to_regclass('supabase_migrations.schema_migrations') is not null"
        ).fetchone()
        if not row or not row[0]:
            return None
        rows = conn.execute("select count(*) from supabase_migrations.schema_migrations")
        counted = rows.fetchone()
        return int(counted[0]) if counted else 0


def public_tables(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone()
        return int(row[0]) if row else 0


def has_policy(dsn: str, table: str, name: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select count(*) from pg_policies where schemaname = 'public' and tablename = %s "
            "and policyname = %s",
            (table, name),
        ).fetchone()
        return bool(row and row[0])


def test_preflight_ok_on_a_reachable_database(migrated_db: str, cli) -> None:
    result = cli("preflight", env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 0, result.output
    assert "DB_REACHABLE" in result.stdout
    assert "EXTENSION_" in result.stdout


def test_preflight_json_shape(migrated_db: str, cli) -> None:
    result = cli("preflight", "--json", env={"DATABASE_URL": migrated_db})
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["exit_code"] == 0 and data["data"]["env"] == "dev"
    assert data["data"]["facts"]["server_major"] == 18


def test_unreachable_dsn_exits_4_within_the_timeout_and_masks(tmp_path: Path, run_cli) -> None:
    (tmp_path / "empire-ops.toml").write_text('[database]\nconnect_timeout = "2s"\n')
    dsn = "postgresql://app:Sup3rS3cretPw@127.0.0.1:1/empire"
    started = time.monotonic()
    result = run_cli("preflight", env={"DATABASE_URL": dsn})
    assert time.monotonic() - started < 10
    assert result.exit_code == 4, result.output
    assert "Sup3rS3cretPw" not in result.output
    assert "postgresql://app:****@127.0.0.1:1/empire" in result.stdout


def test_hung_database_exits_4_within_the_connect_timeout(
    tmp_path: Path, run_cli, silent_server: int
) -> None:
    (tmp_path / "empire-ops.toml").write_text('[database]\nconnect_timeout = "2s"\n')
    started = time.monotonic()
    result = run_cli(
        "preflight",
        "--json",
        env={"DATABASE_URL": f"postgresql://a:pw9876543@127.0.0.1:{silent_server}/x"},
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 4
    assert elapsed < 2 + 3  # the timeout plus interpreter start-up
    assert "pw9876543" not in result.output
    assert json.loads(result.stdout)["findings"][0]["code"] == "DB_UNREACHABLE"


def test_required_extension_missing_is_an_error(fresh_db: str, tmp_path: Path, cli) -> None:
    (tmp_path / "empire-ops.toml").write_text('[database]\nrequired_extensions = ["no_such_ext"]\n')
    result = cli("preflight", "--json", env={"DATABASE_URL": fresh_db})
    assert result.exit_code == 1
    findings = json.loads(result.stdout)["findings"]
    missing = [f for f in findings if f["code"] == "EXTENSION_UNAVAILABLE"]
    assert [f["subject"] for f in missing] == ["no_such_ext"]


def test_min_version_is_enforced(fresh_db: str, tmp_path: Path, cli) -> None:
    (tmp_path / "empire-ops.toml").write_text("[database]\nmin_server_version = 99\n")
    result = cli("preflight", env={"DATABASE_URL": fresh_db})
    assert result.exit_code == 1
    assert "DB_VERSION_UNSUPPORTED" in result.stdout


def test_no_dsn_and_embedded_disabled_is_a_config_error(tmp_path: Path, cli) -> None:
    (tmp_path / "empire-ops.toml").write_text("[embedded]\nenabled = false\n")
    result = cli("preflight")
    assert result.exit_code == 2
    assert "DATABASE_URL is not set" in result.stdout


def test_up_runs_every_step_and_summarises(fresh_db: str, cli) -> None:
    result = cli("--env", "dev", "up", env={"DATABASE_URL": fresh_db})
    assert result.exit_code == 0, result.output
    assert "database" in result.stdout and "preflight" in result.stdout
    assert "result: ok" in result.stdout


def test_up_stops_at_the_first_failed_step(run_cli) -> None:
    result = run_cli("up", env={"DATABASE_URL": "postgresql://a:pw5555555@127.0.0.1:1/x"})
    assert result.exit_code == 4
    assert "FAILED (exit 4)" in result.stdout
    assert "pw5555555" not in result.output


# -- checks do not write by surprise ------------------------------------------------------
@pytest.mark.parametrize(
    ("confirm_args", "confirm_env"),
    [(("--env", "dev", "up"), {}), (("up", "--yes"), {}), (("up",), {"EMPIRE_ENV": "dev"})],
    ids=["--env dev", "--yes", "$EMPIRE_ENV"],
)
def test_up_on_a_non_embedded_database_without_env_writes_nothing(
    fresh_db: str, cli, confirm_args: tuple[str, ...], confirm_env: dict[str, str]
) -> None:
    env = {"DATABASE_URL": fresh_db}
    refused = cli("up", env=env)
    # Pending migrations are a finding with the fix; exit 2 (a confirmation is missing).
    assert refused.exit_code == 2, refused.output
    assert "MIGRATE_NOT_CONFIRMED" in refused.stdout
    assert "SCHEMA_PENDING_MIGRATIONS" in refused.stdout
    flat = " ".join(refused.stdout.split())
    assert "nothing was written" in flat and "--env ENV" in flat and "--yes" in flat
    assert applied_versions(fresh_db) is None and public_tables(fresh_db) == 0

    done = cli(*confirm_args, env={**env, **confirm_env})
    assert done.exit_code == 0, done.output
    assert applied_versions(fresh_db) == SHIPPED


def test_up_without_env_on_an_up_to_date_database_only_checks(migrated_db: str, cli) -> None:
    result = cli("up", env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 0, result.output
    assert "result: ok" in result.stdout


def test_preflight_only_reads_by_default(fresh_db: str, migrated_db: str, cli) -> None:
    pending = cli("--env", "dev", "preflight", env={"DATABASE_URL": fresh_db})
    assert pending.exit_code == 1 and "SCHEMA_PENDING_MIGRATIONS" in pending.stdout
    assert applied_versions(fresh_db) is None and public_tables(fresh_db) == 0

    with db.connect(migrated_db, autocommit=True) as conn:
        conn.execute("drop policy own_rows_select on public.user_sessions")
    drift = cli("--env", "dev", "preflight", env={"DATABASE_URL": migrated_db})
    assert drift.exit_code == 1 and "POLICY_MISSING" in drift.stdout
    assert "SCHEMA_HEALED" not in drift.stdout
    assert not has_policy(migrated_db, "user_sessions", "own_rows_select")


def test_preflight_heals_only_when_config_asks_and_the_env_is_chosen(
    migrated_db: str, tmp_path: Path, cli
) -> None:
    (tmp_path / "empire-ops.toml").write_text('[migrate]\nauto_heal_in = ["dev"]\n')
    env = {"DATABASE_URL": migrated_db}
    with db.connect(migrated_db, autocommit=True) as conn:
        conn.execute("drop policy own_rows_select on public.user_sessions")
    # dev by default, on a database that is not the embedded server: not healed, and said so.
    implicit = cli("preflight", env=env)
    assert implicit.exit_code == 1 and "SCHEMA_HEAL_SKIPPED" in implicit.stdout
    assert not has_policy(migrated_db, "user_sessions", "own_rows_select")
    chosen = cli("--env", "dev", "preflight", env=env)
    assert chosen.exit_code == 0, chosen.output
    assert "SCHEMA_HEALED" in chosen.stdout
    assert has_policy(migrated_db, "user_sessions", "own_rows_select")


def test_preflight_reads_the_catalog_once(
    migrated_db: str, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counted in what the server was sent (libpq's trace of the real connections).
    with traced(monkeypatch) as trace:
        result = cli("preflight", env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 0, result.output
    assert [trace.count_containing(m) for m in catalog_markers()] == [1] * len(catalog_markers())
