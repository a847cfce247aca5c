"""db-health.json matches dashboards/db-health.schema.json, on real builds of every kind.

Three projects are built for real: a busy, healthy one (demo rows, a backup
and a drill taken by the scheduler's jobs, a scheduler's heartbeat, an open
alert, a long query and a blocked session, a table without RLS), every part
``ok``; one with no database at all (``not_configured``); one whose database
cannot be reached (``unreachable``) and whose backup repository and state
folder fail (``failed``). Each build's db-health.json must validate, so every
part state and the schema's ``if``/``then`` branches are exercised on real
data. The schema itself is valid draft 2020-12, and rejects what it must.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from jsonschema import Draft202012Validator

from dashboards.collect import PART_NAMES
from dashboards.render import build_dashboard
from ops.config import load_config
from ops.embedded import free_port
from tests.conftest import REPO, PgServer
from tests.dashboards.browser import demo_config
from tests.helpers import write_config

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "dashboards" / "db-health.schema.json"
DATABASE_PARTS = ("migrations", "database", "security", "logs")


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)  # format_checker=None: formats are not asserted


def assert_valid(validator: Draft202012Validator, data: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    shown = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:300]}"
             for e in errors[:20]]  # fmt: skip
    assert errors == [], f"{len(errors)} schema errors:\n" + "\n".join(shown)


def states(data: dict[str, Any]) -> dict[str, str]:
    return {name: part["state"] for name, part in data["parts"].items()}


# -- a busy, healthy database -----------------------------------------------------------------
@contextmanager
def busy(dsn: str) -> Iterator[None]:
    """A query running long, and a session waiting for a lock another holds, meanwhile.

    The lock (SHARE, the waiter wants ROW EXCLUSIVE) lets readers through, so the
    build itself does not wait.
    """
    holder = psycopg.connect(dsn)
    holder.execute("lock table public.offers in share mode")  # held until the rollback
    waiter = psycopg.connect(dsn, autocommit=True)
    sleeper = psycopg.connect(dsn, autocommit=True)
    threads = [
        threading.Thread(target=_quietly, args=(waiter, "update public.offers set title = title")),
        threading.Thread(target=_quietly, args=(sleeper, "select pg_sleep(600), 'x' as label")),
    ]
    for t in threads:
        t.start()
    time.sleep(1.5)  # both are older than the test's long_query of 1 s
    try:
        yield
    finally:
        sleeper.cancel_safe()
        holder.rollback()  # the waiter's update then runs
        for t in threads:
            t.join(10)
        for conn in (holder, waiter, sleeper):
            conn.close()


def _quietly(conn: psycopg.Connection[Any], query: str) -> None:
    try:
        conn.execute(query)
    except psycopg.errors.QueryCanceled:
        pass  # the sleeper, cancelled at the end


def run_scheduler_briefly(folder: Path, config: Any) -> None:
    """Start `scheduler run` in ``folder``, wait for its heartbeat, stop it (SIGTERM)."""
    from ops.scheduler.status import all_heartbeats
    from ops.target import existing_target

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = (folder / "scheduler.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "ops", "scheduler", "run"], cwd=folder,
                            env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not all_heartbeats(config, existing_target(config))[0]:
            assert proc.poll() is None and time.monotonic() < deadline, (
                folder / "scheduler.log"
            ).read_text()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, (folder / "scheduler.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def test_a_healthy_busy_database_builds_a_valid_snapshot(
    validator: Draft202012Validator, migrated_db: str, pg: PgServer, tmp_path: Path, cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    config = demo_config(tmp_path, migrated_db, pg.dsn(), monkeypatch,
                         '\n[dashboard]\nlong_query = "1s"\n')  # fmt: skip
    assert cli("db", "seed-demo", "--scale", "0.1", "--yes").exit_code == 0
    # Through the scheduler's runner, so each has a history. After the drill, a table
    # without RLS: a lint (an error), drift, and an alert opened by the migrate job.
    for job in ("backup", "drill", "migrate"):
        if job == "migrate":
            with psycopg.connect(migrated_db, autocommit=True) as conn:
                conn.execute("create table public.scratch_notes (id int primary key, body text)")
        result = cli("jobs", "run", job)
        assert result.exit_code == (1 if job == "migrate" else 0), result.output
    run_scheduler_briefly(tmp_path, config)  # a heartbeat, left "stopped"
    build_dashboard(config)
    with busy(migrated_db):
        data = json.loads(build_dashboard(config).json.read_text())
    assert_valid(validator, data)
    assert states(data) == dict.fromkeys(PART_NAMES, "ok"), states(data)
    parts = data["parts"]
    # What the schema's item definitions were checked against is there.
    assert parts["backups"]["repositories"][0]["backups"] and parts["drills"]["last"]["ok"]
    assert parts["database"]["long_queries"] and parts["database"]["blocking"]
    assert parts["database"]["sequences"] and parts["security"]["lints"]
    assert parts["scheduler"]["jobs"]["backup"]["last_outcome"] and len(data["history"]) >= 2
    assert parts["logs"]["errors"] and parts["logs"]["admin"]
    assert parts["scheduler"]["schedulers"] and parts["alerts"]["open"]
    assert parts["alerts"]["spool"] or parts["alerts"]["sent"]


# -- no database at all -------------------------------------------------------------------
def test_a_project_without_a_database_builds_a_valid_snapshot(
    validator: Draft202012Validator, tmp_path: Path
) -> None:
    # No DATABASE_URL, and the embedded server not running: nothing is started.
    config = load_config(write_config(tmp_path, ""))
    data = json.loads(build_dashboard(config).json.read_text())
    assert_valid(validator, data)
    assert data["database"] == "not configured"
    for name in (*DATABASE_PARTS, "backups", "drills", "scheduler"):
        assert data["parts"][name]["state"] == "not_configured", name
    assert data["parts"]["database"].keys() == {"state", "note", "seconds"}
    assert states(data)["secrets"] == states(data)["alerts"] == "ok"


# -- everything failing --------------------------------------------------------------------
def test_unreachable_and_failed_parts_build_a_valid_snapshot(
    validator: Draft202012Validator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nowhere = free_port()  # nothing listens there
    monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{nowhere}/empire")
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDEMPIRETESTONLY", "AWS_SECRET_ACCESS_KEY":
                        "empire-test-only-not-a-key", "AWS_CONFIG_FILE": "/nonexistent",
                        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    config = load_config(write_config(tmp_path, f"""
[backup.repos.offsite]
url = "s3://empire-nowhere/backups"
endpoint_url = "http://127.0.0.1:{nowhere}"
region = "us-east-1"
max_attempts = 1
"""))  # fmt: skip
    # The state folder is a file: the parts that keep state there fail, the build goes on
    # (without history: nothing can be recorded, so none is asked for).
    (tmp_path / ".empire").write_text("not a folder\n")
    built = build_dashboard(config, out=tmp_path / "out", record=False)
    data = json.loads(built.json.read_text())
    assert_valid(validator, data)
    seen = states(data)
    for name in DATABASE_PARTS:
        assert seen[name] == "unreachable", (name, seen)
    assert seen["secrets"] == seen["alerts"] == seen["scheduler"] == seen["backups"] == "failed"
    assert data["parts"]["backups"]["repositories"][0]["error"]
    codes = {f["code"] for f in data["findings"]}
    assert {"DB_UNREACHABLE", "BACKUP_REPO_UNREACHABLE", "DASHBOARD_PART_FAILED"} <= codes
    assert data["history"] == []
    assert "<!doctype html>" in built.html.read_text()  # the page renders failed parts too


# -- the schema itself --------------------------------------------------------------------
def test_the_schema_rejects_what_it_must(validator: Draft202012Validator, tmp_path: Path) -> None:
    data = json.loads(build_dashboard(load_config(write_config(tmp_path, ""))).json.read_text())
    assert_valid(validator, data)

    def rejected(change: Any) -> bool:
        broken = copy.deepcopy(data)
        change(broken)
        return not validator.is_valid(broken)

    assert rejected(lambda d: d["parts"]["secrets"].pop("state"))
    assert rejected(lambda d: d["parts"]["drills"].pop("note"))
    assert rejected(lambda d: d["parts"].pop("logs"))
    assert rejected(lambda d: d["parts"]["logs"].update(state="broken"))
    # An ok part must carry its data; a part not read need not.
    assert rejected(lambda d: d["parts"]["secrets"].pop("items"))
    assert rejected(lambda d: d["parts"]["database"].update(state="ok"))
    assert rejected(lambda d: d["parts"]["secrets"]["items"][0].update(value="hunter2"))
    assert rejected(lambda d: d["findings"].append({"code": "X", "severity": "warning"}))
    assert rejected(lambda d: d.pop("history"))
    assert rejected(lambda d: d.update(status="fine"))
    assert not rejected(lambda d: d["parts"]["backups"].update(state="failed"))
