"""Faults of the machine are ordinary faults: each has its documented exit code and a fix.

A read-only or unwritable state folder or working directory is exit 2; a full
disk is exit 1 (README "Exit codes"); none is "internal error" (10). The tests
run as root in CI, where file modes stop nothing, so they use what stops root
too: a file where a folder must be (ENOTDIR), /sys (EPERM or EROFS), a
read-only tmpfs mount (EROFS), a tiny tmpfs (ENOSPC), and an unprivileged
user for a 0555 folder (EACCES).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ops.embedded import PostgresCluster
from ops.errors import ConfigError, DiskFull, PathNotUsable
from ops.fsutil import atomic_write_text, ensure_dir, file_lock
from tests.conftest import require_service, server_tmpdir
from tests.helpers import assert_ordinary, tmpfs


def _config(folder: Path, state_dir: str) -> None:
    (folder / "empire-ops.toml").write_text(f'[project]\nstate_dir = "{state_dir}"\n')


# -- the sites raise their own errors -------------------------------------------------------
def test_a_file_where_the_state_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PathNotUsable) as info:
        atomic_write_text(tmp_path / "afile" / "state" / "x.json", "{}")
    assert info.value.exit_code == 2 and "not a folder" in info.value.message
    with pytest.raises(PathNotUsable, match="not a folder"):
        ensure_dir(tmp_path / "afile", purpose="the state folder")


def test_sys_is_not_writable_even_for_root() -> None:
    with pytest.raises(PathNotUsable) as info:
        ensure_dir(Path("/sys/empire-ops-test"), purpose="the state folder")
    assert info.value.exit_code == 2
    assert "/sys/empire-ops-test" in info.value.message
    assert "the state folder" in info.value.message


def test_a_read_only_file_system() -> None:
    with tmpfs("ro,mode=0777") as mnt:
        with pytest.raises(PathNotUsable, match="read-only") as info:
            atomic_write_text(mnt / "x.json", "{}")
        assert "project.state_dir" in (info.value.hint or "")
        with (
            pytest.raises(PathNotUsable, match="read-only"),
            file_lock(mnt / "embedded.lock", timeout=0, what="a test"),
        ):
            pass


def test_a_full_disk_keeps_the_old_file() -> None:
    with tmpfs("size=64k") as mnt:
        target = mnt / "state.json"
        atomic_write_text(target, "old")
        with pytest.raises(DiskFull) as info:
            atomic_write_text(target, "x" * 200_000)
        assert info.value.exit_code == 1 and isinstance(info.value, OSError)
        assert target.read_text() == "old"
        assert sorted(p.name for p in mnt.iterdir()) == ["state.json"]


# -- through the CLI ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state_dir", "words"),
    [
        ("afile/state", ["not a folder", "afile"]),
        ("/sys/empire-ops-state", ["/sys/empire-ops-state"]),
    ],
)
def test_db_start_with_an_unusable_state_folder_is_exit_2(
    tmp_path: Path, run_cli, state_dir: str, words: list[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    _config(tmp_path, state_dir)
    for command in (["db", "start"], ["up"]):
        result = run_cli(*command)
        if command == ["up"]:
            # up reports the failed step as a finding and exits with its code
            assert result.exit_code == 2, result.output
            assert "UP_DATABASE_FAILED" in result.stdout and "internal error" not in result.output
        else:
            assert_ordinary(result, 2, *words)


def test_a_read_only_working_directory_is_exit_2(run_cli) -> None:
    with tmpfs("ro,mode=0777") as mnt:
        result = subprocess.run(
            [*_python(), "-m", "ops", "db", "start"],
            cwd=mnt,
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
    assert result.returncode == 2, result.stderr
    assert "read-only" in result.stderr and f"{mnt}/.empire" in result.stderr
    assert "internal error" not in result.stderr


def test_an_unwritable_working_directory_is_exit_2() -> None:
    """A 0555 folder. Root passes any mode, so as root the CLI runs without the capabilities
    that override file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), like a normal user."""
    folder = server_tmpdir("ro")
    folder.chmod(0o555)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        require_service(bool(setpriv), "setpriv (util-linux) is needed to drop root's overrides")
        prefix = [str(setpriv), "--bounding-set", "-dac_override,-dac_read_search", "--"]
    try:
        result = subprocess.run(
            [*prefix, *_python(), "-m", "ops", "db", "start"],
            cwd=folder,
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert result.returncode == 2, result.stderr
    assert "permission denied" in result.stderr and f"make {folder} writable" in result.stderr
    assert "internal error" not in result.stderr


def test_initdb_on_a_full_disk_is_exit_1_with_the_reason(run_cli) -> None:
    with tmpfs("size=4m,mode=0777") as mnt:
        _config(mnt, "state")
        result = subprocess.run(
            [*_python(), "-m", "ops", "db", "start"],
            cwd=mnt,
            capture_output=True,
            text=True,
            env=_env(),
            timeout=180,
        )
        leftovers = sorted(p.name for p in (mnt / "state").iterdir())
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert "hint: free some space on the disk holding" in result.stderr
    assert "internal error" not in result.stderr
    # no password file for a cluster that does not exist, no temporary password file
    assert "pgpass" not in leftovers and not [n for n in leftovers if n.startswith(".initdb")]


def test_an_out_of_range_port_is_exit_2_in_config_and_at_runtime(tmp_path: Path, run_cli) -> None:
    (tmp_path / "empire-ops.toml").write_text("[embedded]\nport = 70000\n")
    result = run_cli("db", "start")
    assert_ordinary(result, 2, "embedded.port", "70000")
    # the cluster checks it too, for a port that reaches it another way
    with pytest.raises(ConfigError, match="70000 is not a TCP port"):
        PostgresCluster(tmp_path / "pgdata", port=70000).start()
    assert not (tmp_path / "pgdata").exists() or not any((tmp_path / "pgdata").iterdir())


def _python() -> list[str]:
    import sys

    return [sys.executable]


def _env() -> dict[str, str]:
    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EMPIRE_OPS_CONFIG")}
    env["PYTHONPATH"] = str(REPO)
    return env
