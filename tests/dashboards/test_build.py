"""`dashboard build`, the scheduler's dashboard job and `up`: files written whole, paths said."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import tmpfs, write_config


def test_build_writes_both_files_and_says_where(
    dashboard_config: object, tmp_path: Path, cli
) -> None:
    result = cli("dashboard", "build")
    assert result.exit_code == 0, result.output
    folder = tmp_path / ".empire" / "dashboard"
    html, data = folder / "db-health.html", folder / "db-health.json"
    assert f"dashboard: {html}" in result.stdout and str(data) in result.stdout
    assert html.read_text().startswith("<!doctype html>")
    assert json.loads(data.read_text())["schema_version"] == 1
    assert sorted(p.name for p in folder.iterdir()) == ["db-health.html", "db-health.json"]


def test_build_to_a_read_only_folder_is_exit_2_and_keeps_nothing_half_written(
    dashboard_config: object, cli
) -> None:
    with tmpfs("ro,mode=0777") as mnt:
        result = cli("dashboard", "build", "--out", str(mnt / "dash"))
        assert result.exit_code == 2, result.output
        assert "read-only" in result.output or "cannot" in result.output
        assert not (mnt / "dash").exists()


def test_build_on_a_full_disk_is_exit_1_and_keeps_the_last_page(
    dashboard_config: object, cli
) -> None:
    with tmpfs("size=48k,mode=0777") as mnt:
        first = cli("dashboard", "build", "--out", str(mnt))
        if first.exit_code == 0:  # the first fits: fill the disk, build again
            before = (mnt / "db-health.html").read_bytes()
            with open(mnt / "filler", "wb") as filler:
                try:
                    filler.write(b"\0" * (1 << 20))
                except OSError:
                    pass
            again = cli("dashboard", "build", "--out", str(mnt))
            assert again.exit_code == 1, again.output
            assert "full" in again.output
            assert (mnt / "db-health.html").read_bytes() == before
        else:
            assert first.exit_code == 1 and "full" in first.output, first.output
        leftovers = [p.name for p in mnt.iterdir() if p.name.startswith(".")]
        assert leftovers == []


def test_two_builds_at_once_both_succeed_with_whole_files(
    dashboard_config: object, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "ops", "dashboard", "build"], cwd=tmp_path,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    folder = tmp_path / ".empire" / "dashboard"
    assert json.loads((folder / "db-health.json").read_text())["parts"]
    assert (folder / "db-health.html").read_text().rstrip().endswith("</html>")
    points = json.loads((folder / "db-health.json").read_text())["history"]
    assert len(points) >= 1


def test_the_dashboard_job_builds_and_returns_only_its_own_checks(
    dashboard_config: object, tmp_path: Path, cli
) -> None:
    result = cli("jobs", "run", "dashboard", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    codes = {f["code"] for f in payload["findings"]}
    assert "DASHBOARD_BUILT" in codes
    assert all(c.startswith(("DB_", "DASHBOARD_", "ALERT", "JOB_")) for c in codes), codes
    assert (tmp_path / ".empire" / "dashboard" / "db-health.html").is_file()


@pytest.mark.slow
def test_up_ends_with_the_dashboard_path(tmp_path: Path, run_cli) -> None:
    write_config(tmp_path, "")
    env = {"EMPIRE_OPS_CONFIG": str(tmp_path / "empire-ops.toml")}
    try:
        result = run_cli("up", env=env, timeout=300)
        assert result.exit_code == 0, result.output
        html = tmp_path / ".empire" / "dashboard" / "db-health.html"
        assert result.stdout.splitlines()[-2] == f"dashboard: {html}"
        page = html.read_text()
        # The run's own backup and drill are on the page it ends with.
        data = json.loads(html.with_name("db-health.json").read_text())
        assert data["parts"]["backups"]["state"] == "ok"
        assert data["parts"]["drills"]["last"]["ok"] is True
        assert "Restore drills" in page
    finally:
        run_cli("db", "stop", env=env, timeout=120)
