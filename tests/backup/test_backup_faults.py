"""Faults during `backup run`: a full disk, and pg_dump's server session killed mid-dump.
Each is a clean failure: no temporary file, no complete-looking backup, a finding, and
the next run succeeds."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

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
