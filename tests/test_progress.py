"""Progress: a rich bar on a real terminal (a pty), plain lines elsewhere, nothing on stdout."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from ops.progress import ByteProgress

MIB = 1 << 20


def test_plain_lines_say_bytes_rate_and_time_left_and_end_with_done() -> None:
    out = io.StringIO()
    with ByteProgress("backup x", 4 * MIB, stream=out, mode="plain", every=0) as progress:
        for _ in range(2):
            progress.advance(MIB)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        r"backup x: 1\.0 MiB of 4\.0 MiB, [\d.]+ MiB/s(, about \d+ s left)?", lines[0]
    )
    assert re.fullmatch(r"backup x: 2\.0 MiB in [\d.]+ s \([\d.]+ MiB/s\), done", lines[2])


def test_an_estimate_is_marked_and_a_failure_says_stopped() -> None:
    out = io.StringIO()
    with (
        pytest.raises(RuntimeError),
        ByteProgress("b", MIB, estimated=True, stream=out, mode="plain", every=0) as p,
    ):
        p.advance(2 * MIB)  # past the estimate
        raise RuntimeError("boom")
    lines = out.getvalue().splitlines()
    assert "of ~1.0 MiB" in lines[0] and "left" not in lines[0]
    assert lines[-1].endswith(", stopped")


def test_a_short_run_prints_nothing_and_off_prints_nothing_ever() -> None:
    quiet, off = io.StringIO(), io.StringIO()
    with ByteProgress("b", MIB, stream=quiet, mode="plain", every=3600) as p:
        p.advance(MIB)
    with ByteProgress("b", MIB, stream=off, mode="off", every=0) as p:
        p.advance(MIB)
    assert quiet.getvalue() == "" and off.getvalue() == ""


def test_the_mode_follows_the_terminal_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("EMPIRE_OPS_PROGRESS", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert ByteProgress("b", stream=Tty()).mode == "bar"
    assert ByteProgress("b", stream=io.StringIO()).mode == "plain"
    monkeypatch.setenv("TERM", "dumb")
    assert ByteProgress("b", stream=Tty()).mode == "plain"
    monkeypatch.setenv("EMPIRE_OPS_PROGRESS", "off")
    assert ByteProgress("b", stream=Tty()).mode == "off"
    monkeypatch.setenv("EMPIRE_OPS_PROGRESS", "nonsense")
    assert ByteProgress("b", stream=io.StringIO()).mode == "plain"


def _seed_text(dsn: str, megabytes: int) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table public.blob (id int, body text)")
        conn.execute(
            "insert into public.blob select g, md5(g::text) || repeat(md5((g * 7)::text), 30) "
            "from generate_series(1, %s) g",
            (megabytes * 1000,),
        )


def _empire_ops() -> str:
    return str(Path(sys.executable).with_name("empire-ops"))


def test_backup_on_a_terminal_draws_a_bar(migrated_db: str, tmp_path: Path) -> None:
    _seed_text(migrated_db, 20)
    (tmp_path / "empire-ops.toml").write_text('[backup.repos.local]\nurl = "file:backups"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMPIRE_OPS_PROGRESS")}
    env.update(DATABASE_URL=migrated_db, TERM="xterm", COLUMNS="120")
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [_empire_ops(), "backup", "run"], cwd=tmp_path, env=env,
        stdin=secondary, stdout=secondary, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    chunks = []
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "backup 2" in screen and "(~)" in screen  # the bar's label: id, estimated total
    assert "━" in screen and "MB" in screen  # rich's bar and DownloadColumn


def test_json_stdout_stays_json_while_plain_lines_go_to_stderr(
    migrated_db: str, tmp_path: Path
) -> None:
    _seed_text(migrated_db, 5)
    (tmp_path / "empire-ops.toml").write_text('[backup.repos.local]\nurl = "file:backups"\n')
    env = {**os.environ, "DATABASE_URL": migrated_db, "EMPIRE_OPS_PROGRESS": "plain",
           "EMPIRE_OPS_PROGRESS_EVERY": "0"}  # fmt: skip
    done = subprocess.run(
        [_empire_ops(), "backup", "run", "--json"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert re.search(r"^backup \S+: [\d.]+ MiB in [\d.]+ s .*done$", done.stderr, re.M)
