"""Real scheduler processes against a real PostgreSQL, each in its own project folder ("host")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from ops.scheduler.settings import DEFAULT_JOBS
from tests.conftest import REPO

# Every built-in job off (whatever jobs are added later), so a test runs exactly the
# jobs it declares: a job left on runs at its own times, in some runs of a test only.
ALL_OFF = "".join(f"[scheduler.jobs.{name}]\nenabled = false\n" for name in DEFAULT_JOBS)


@dataclass
class Host:
    """A project folder standing for one host: its config, state store and scheduler process."""

    root: Path
    env: dict[str, str]
    proc: subprocess.Popen[str] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "scheduler.log"

    def configure(self, text: str) -> None:
        (self.root / "empire-ops.toml").write_text(text)

    def start(self) -> Host:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ops", "--log-format", "plain", "scheduler", "run"],
            cwd=self.root,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )
        return self

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ops", *args], cwd=self.root, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def history(self) -> list[dict[str, object]]:
        """This host's job history from its state store (a fresh read)."""
        import sqlite3

        path = self.root / ".empire" / "state.sqlite3"
        with sqlite3.connect(path) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("select * from job_history order by id")]

    def wait_for_log(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log.read_text():
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} not in the scheduler's log:\n{self.log.read_text()}")


@pytest.fixture
def hosts(tmp_path: Path, migrated_db: str) -> Iterator[Callable[[str], Host]]:
    """``hosts("a")`` -> a Host whose project folder is ``tmp_path/a``, on ``migrated_db``."""
    made: list[Host] = []

    def make(name: str) -> Host:
        root = tmp_path / name
        root.mkdir()
        env = {**os.environ, "PYTHONPATH": str(REPO), "DATABASE_URL": migrated_db,
               "EMPIRE_OPS_PROGRESS": "plain"}  # fmt: skip
        host = Host(root, env)
        made.append(host)
        return host

    yield make
    for host in made:
        host.kill()


def query(dsn: str, statement: str, params: object = None) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return list(cur.fetchall()) if cur.description else []
