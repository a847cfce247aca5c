"""`empire-ops run` as a real process: usage errors first, signals, orphans, E2BIG."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO


def start_run(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """``python -m ops run ...`` as a real process, stdout piped (the child prints 'ready')."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "ops", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
    )


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_run_without_a_command_fails_before_loading_anything(tmp_path: Path, run_cli) -> None:
    # A config that cannot load: if run read it first, the error would be about the config.
    (tmp_path / "empire-ops.toml").write_text("[secrets]\nchain = 7\n")
    for args in (["run"], ["run", "--"]):
        result = run_cli(*args)
        assert result.exit_code == 2, result.output
        assert "run needs a command" in result.stderr and "empire-ops run --" in result.stderr
        assert "chain" not in result.output


def test_only_with_an_empty_name_is_a_usage_error(tmp_path: Path, run_cli) -> None:
    marker = tmp_path / "started"
    for only in ("", ",", "A,,B"):
        result = run_cli("run", "--only", only, "--", "touch", str(marker))
        assert result.exit_code == 2, result.output
        assert "empty name" in result.stderr
    assert not marker.exists()


def test_a_sigkilled_run_takes_its_child_with_it(tmp_path: Path, migrated_db: str) -> None:
    script = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    proc = start_run(["--", sys.executable, "-c", script], {"DATABASE_URL": migrated_db})
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    assert alive(child)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    deadline = time.monotonic() + 3
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the child outlived a SIGKILLed empire-ops"


def test_a_sigkilled_run_takes_sleep_with_it(tmp_path: Path, migrated_db: str) -> None:
    # The issue's own example: `empire-ops run -- sleep 60`, found by its parent pid.
    proc = start_run(["--", "sleep", "60"], {"DATABASE_URL": migrated_db})
    deadline = time.monotonic() + 30
    children: list[int] = []
    while not children and time.monotonic() < deadline:
        children = [
            int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
        time.sleep(0.05)
    assert children, "run did not start sleep"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 3
    while alive(children[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(children[0])


def test_sigint_is_forwarded_and_the_childs_code_comes_back(
    tmp_path: Path, migrated_db: str
) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(37))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
        "sys.exit(1)\n"
    )
    proc = start_run(["--", sys.executable, "-c", script], {"DATABASE_URL": migrated_db})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 37


@pytest.mark.parametrize(
    "values",
    [
        {"HUGE_CERT": "x" * (3 * 1024 * 1024)},  # one variable past 128 KiB (and ARG_MAX)
        {f"PART_{i}": "y" * (100 * 1024) for i in range(30)},  # each fine, 3 MB in all
    ],
    ids=["one-huge-value", "too-much-in-all"],
)
def test_an_environment_too_large_to_exec_is_a_clear_usage_error(
    tmp_path: Path, migrated_db: str, run_cli, values: dict[str, str]
) -> None:
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    (tmp_path / ".env").chmod(0o600)
    marker = tmp_path / "started"
    result = run_cli("run", "--", "touch", str(marker), env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 2, result.stderr[-2000:]
    assert "environment is too large" in result.stderr and "--only" in result.stderr
    assert "internal error" not in result.stderr
    assert not marker.exists()
    if len(values) == 1:
        assert "HUGE_CERT exceeds the 128 KiB limit" in result.stderr
    for value in values.values():
        assert value[:64] not in result.output
    # Injecting only what fits starts the command.
    fits = run_cli(
        "run", "--only", "DATABASE_URL", "--", "touch", str(marker),
        env={"DATABASE_URL": migrated_db},
    )  # fmt: skip
    assert fits.exit_code == 0, fits.stderr[-2000:]
    assert marker.exists()
