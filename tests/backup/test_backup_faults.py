"""Faults during `backup run`: a full disk, pg_dump's server session killed mid-dump, and
the command itself stopped by SIGTERM. Each is a clean failure: no temporary file, no
complete-looking backup, a finding or a failed manifest, and the next run succeeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops.backup.dump import STOPPED
from tests.backup.test_backup_run import _manifests
from tests.helpers import tmpfs


def _bulk(dsn: str, rows: int) -> None:
    """Rows of incompressible text, so the dump is big enough to fill or to interrupt."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table public.bulk (id bigint primary key, body text not null)")
        conn.execute(
            "insert into public.bulk select g, string_agg(md5(g::text || ':' || k::text), '') "
            "from generate_series(1, %s) g, generate_series(1, 8) k group by g",
            (rows,),
        )


def test_a_full_disk_fails_cleanly_and_lists_no_complete_backup(
    migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    _bulk(migrated_db, 20000)  # ~5 MB of md5 text: more than the 1 MiB disk below
    with tmpfs("size=1m") as disk:
        (tmp_path / "empire-ops.toml").write_text(
            f'[backup.repos.small]\nurl = "file:{disk}/backups"\n'
        )
        result = cli("backup", "run", "--json", env={"DATABASE_URL": migrated_db})
        assert result.exit_code == 1, result.output
        payload = json.loads(result.stdout)
        [finding] = payload["findings"]
        assert finding["code"] == "BACKUP_FAILED" and "full" in finding["message"]
        assert not list((disk / "backups").glob("*/.tmp-*"))  # the partial file is gone
        assert all(m["status"] == "failed" for m in _manifests(disk / "backups"))
        listed = json.loads(cli("backup", "list", "--json").stdout)["data"]["repositories"]
        assert [b["status"] for b in listed["small"]["backups"]] in ([], ["failed"])
    (tmp_path / "empire-ops.toml").write_text('[backup.repos.local]\nurl = "file:backups"\n')
    again = cli("backup", "run", env={"DATABASE_URL": migrated_db})
    assert again.exit_code == 0, again.output


def test_the_dump_session_killed_mid_dump_fails_cleanly_and_the_next_run_succeeds(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _bulk(migrated_db, 60000)  # ~15 MB: pg_dump is still streaming when it is killed
    (tmp_path / "empire-ops.toml").write_text('[backup.repos.local]\nurl = "file:backups"\n')
    killed: list[int] = []

    def kill_pg_dump() -> None:
        deadline = time.monotonic() + 60
        with pg.admin() as conn:
            while time.monotonic() < deadline and not killed:
                rows = conn.execute(
                    "select pid from pg_stat_activity where application_name = 'pg_dump' "
                    "and state = 'active' and query ilike '%%copy%%bulk%%'"
                ).fetchall()
                for (pid,) in rows:
                    conn.execute("select pg_terminate_backend(%s)", (pid,))
                    killed.append(pid)
                time.sleep(0.02)

    killer = threading.Thread(target=kill_pg_dump)
    killer.start()
    result = cli("backup", "run", "--json", env={"DATABASE_URL": migrated_db})
    killer.join()
    assert killed, "pg_dump finished before it could be killed: make the table bigger"
    assert result.exit_code == 1, result.output
    [finding] = json.loads(result.stdout)["findings"]
    assert finding["code"] == "BACKUP_FAILED" and "pg_dump exited" in finding["message"]
    assert not list((tmp_path / "backups").glob("*/.tmp-*"))
    assert [m["status"] for m in _manifests(tmp_path / "backups")] == ["failed"]
    again = cli("backup", "run", env={"DATABASE_URL": migrated_db})
    assert again.exit_code == 0, again.output
    statuses = sorted(m["status"] for m in _manifests(tmp_path / "backups"))
    assert statuses == ["complete", "failed"]


def _dumping(conn: psycopg.Connection[Any]) -> list[int]:
    """The pids of pg_dump's server sessions copying the bulk table."""
    rows = conn.execute(
        "select pid from pg_stat_activity where application_name = 'pg_dump' "
        "and state = 'active' and query ilike '%%copy%%bulk%%'"
    ).fetchall()
    return [pid for (pid,) in rows]


def test_sigterm_stops_a_backup_removes_its_files_and_records_it_failed(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _bulk(migrated_db, 120000)  # ~30 MB: pg_dump is still streaming when the signal comes
    (tmp_path / "empire-ops.toml").write_text('[backup.repos.local]\nurl = "file:backups"\n')
    with pg.admin() as admin:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ops", "backup", "run"], cwd=tmp_path,
            env={**os.environ, "DATABASE_URL": migrated_db},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not _dumping(admin):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the backup never got to dumping the bulk table")
                time.sleep(0.01)
            proc.send_signal(signal.SIGTERM)  # as a service manager or `timeout` sends
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode == 130, stderr[-2000:]
        assert "Traceback" not in stderr and STOPPED in stderr
        assert not list((tmp_path / "backups").glob("*/.tmp-*"))  # the partial file is gone
        [manifest] = _manifests(tmp_path / "backups")
        assert manifest["status"] == "failed" and manifest["error"] == STOPPED
        deadline = time.monotonic() + 10
        while _dumping(admin):  # pg_dump was stopped, not left to run on
            assert time.monotonic() < deadline, "pg_dump still runs after the backup stopped"
            time.sleep(0.05)
    again = cli("backup", "run", env={"DATABASE_URL": migrated_db})
    assert again.exit_code == 0, again.output
    statuses = sorted(m["status"] for m in _manifests(tmp_path / "backups"))
    assert statuses == ["complete", "failed"]
