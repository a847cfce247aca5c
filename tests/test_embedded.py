"""The embedded PostgreSQL lifecycle through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import psycopg
import pytest

from ops.embedded import PostgresCluster


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch, run_cli):
    """A project folder whose embedded server is stopped and removed afterwards."""
    from tests.conftest import server_tmpdir

    folder = server_tmpdir("project")
    monkeypatch.chdir(folder)
    yield folder
    run_cli("db", "stop")
    PostgresCluster(folder / ".empire" / "pgdata").destroy()
    shutil.rmtree(folder, ignore_errors=True)


def _status(run_cli) -> dict:
    result = run_cli("db", "status", "--json")
    return json.loads(result.stdout)


def test_start_status_stop_and_restart_after_kill_9(project: Path, run_cli) -> None:
    first = run_cli("db", "start")
    assert first.exit_code == 0, first.output
    status = _status(run_cli)
    assert status["running"] is True
    assert status["version"].startswith("18.")
    assert status["vector_available"] is True
    assert status["data_dir"] == str(project / ".empire" / "pgdata")

    # vector really is installable there
    with psycopg.connect(status["url"], autocommit=True) as conn:
        conn.execute("create extension if not exists vector")
        assert conn.execute("select '[1,2]'::vector(2)::text").fetchone()[0] == "[1,2]"

    # idempotent: a second start changes nothing
    again = run_cli("db", "start")
    assert again.exit_code == 0
    assert _status(run_cli)["pid"] == status["pid"]

    # url prints the DSN without a password
    url = run_cli("db", "url")
    assert url.stdout.strip() == status["url"]

    # kill -9 the postmaster: start recovers, on the same port, with the data intact
    os.kill(status["pid"], 9)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _status(run_cli)["running"]:
        time.sleep(0.1)
    recovered = run_cli("db", "start")
    assert recovered.exit_code == 0, recovered.output
    after = _status(run_cli)
    assert after["running"] and after["pid"] != status["pid"]
    assert after["port"] == status["port"]
    with psycopg.connect(after["url"]) as conn:
        assert conn.execute("select extname from pg_extension where extname='vector'").fetchone()

    stopped = run_cli("db", "stop")
    assert stopped.exit_code == 0 and "stopped" in stopped.stdout
    down = run_cli("db", "status")
    assert down.exit_code == 1 and "running:   no" in down.stdout
    assert run_cli("db", "stop").stdout.strip() == "embedded PostgreSQL was not running"


def test_start_survives_a_stale_pid_file(project: Path, run_cli) -> None:
    assert run_cli("db", "start").exit_code == 0
    assert run_cli("db", "stop").exit_code == 0
    pid_file = project / ".empire" / "pgdata" / "postmaster.pid"
    # a pid file left by a crash, naming a process that no longer exists
    pid_file.write_text("999999\n" + str(project / ".empire" / "pgdata") + "\n0\n5432\n")
    result = run_cli("db", "start")
    assert result.exit_code == 0, result.output
    assert _status(run_cli)["running"] is True


def test_url_when_not_running_is_a_clear_error(project: Path, run_cli) -> None:
    result = run_cli("db", "url")
    assert result.exit_code == 1
    assert "not running" in result.stderr and "empire-ops db start" in result.stderr


def test_configured_port_that_is_taken_is_a_clear_error(project: Path, run_cli) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        (project / "empire-ops.toml").write_text(f"[embedded]\nport = {port}\n")
        result = run_cli("db", "start")
    assert result.exit_code == 1
    assert f"port {port}" in result.stderr and "taken" in result.stderr
