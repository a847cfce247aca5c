"""Preflight and up against real databases."""

from __future__ import annotations

import json
import time
from pathlib import Path


def test_preflight_ok_on_a_reachable_database(fresh_db: str, cli) -> None:
    result = cli("preflight", env={"DATABASE_URL": fresh_db})
    assert result.exit_code == 0, result.output
    assert "DB_REACHABLE" in result.stdout
    assert "EXTENSION_" in result.stdout


def test_preflight_json_shape(fresh_db: str, cli) -> None:
    result = cli("preflight", "--json", env={"DATABASE_URL": fresh_db})
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["exit_code"] == 0 and data["env"] == "dev"
    assert data["facts"]["server_major"] == 18


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
    result = cli("up", env={"DATABASE_URL": fresh_db})
    assert result.exit_code == 0, result.output
    assert "database" in result.stdout and "preflight" in result.stdout
    assert "result: ok" in result.stdout


def test_up_stops_at_the_first_failed_step(run_cli) -> None:
    result = run_cli("up", env={"DATABASE_URL": "postgresql://a:pw5555555@127.0.0.1:1/x"})
    assert result.exit_code == 4
    assert "FAILED (exit 4)" in result.stdout
    assert "pw5555555" not in result.output
