"""run_job in-process: a job's exception of any kind is a finding, recorded and alerted."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.config import load_config
from ops.errors import EXIT_INTERNAL
from ops.scheduler import jobs
from ops.scheduler.runner import run_job
from tests.helpers import write_config
from tests.scheduler.conftest import ALL_OFF


def test_a_job_that_raises_a_bug_is_job_failed_exit_10_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_db: str
) -> None:
    def explode(ctx: jobs.JobContext) -> list:
        raise KeyError("no such thing")

    monkeypatch.setitem(jobs.BUILT_IN, "partitions", explode)
    monkeypatch.setenv("DATABASE_URL", migrated_db)
    cfg = load_config(write_config(tmp_path, ALL_OFF))
    report = run_job(cfg, "partitions")
    assert report.outcome == "failed" and report.exit_code == EXIT_INTERNAL
    (finding,) = report.findings
    assert finding.code == "JOB_FAILED" and "KeyError" in finding.message
    assert report.alerts["alerted"] == [["JOB_FAILED", "partitions"]]
    from ops.alerts.store import open_store

    with open_store(cfg) as store:
        (run,) = store.job_runs("partitions")
    assert run["outcome"] == "failed" and run["exit_code"] == EXIT_INTERNAL


def test_cron_print_on_the_command_line(tmp_path: Path, cli) -> None:
    from ops.config import check_cron

    write_config(tmp_path, '[scheduler]\ntimezone = "Europe/Paris"\n')
    crontab = cli("--env", "prod", "cron", "print")
    assert crontab.exit_code == 0, crontab.output
    lines = [ln for ln in crontab.stdout.splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "CRON_TZ=Europe/Paris"
    assert len(lines) == 1 + len(jobs.BUILT_IN)
    for line in lines[1:]:
        check_cron(" ".join(line.split()[:5]))
        assert line.endswith(tuple(f"jobs run {j}" for j in jobs.BUILT_IN))
        assert "--env prod" in line and str(tmp_path / "empire-ops.toml") in line
    units = cli("cron", "print", "--systemd")
    assert units.exit_code == 0
    assert units.stdout.count("# --- empire-ops-") == 2 * len(jobs.BUILT_IN)
    assert "OnCalendar=*-*-* 02:00:00 Europe/Paris" in units.stdout


def test_cron_print_with_a_sql_job_and_an_interval_job(tmp_path: Path, cli) -> None:
    write_config(
        tmp_path,
        '[scheduler.jobs.refresh]\ncron = "*/5 * * * *"\nsql = "refresh materialized view x"\n'
        '[scheduler.jobs.partitions]\nevery = "30s"\n',
    )
    crontab = cli("cron", "print")
    assert crontab.exit_code == 0, crontab.output
    assert "jobs run refresh" in crontab.stdout and "jobs run partitions" not in crontab.stdout
    assert "# partitions runs every 30s: cron counts minutes" in crontab.stdout
    units = cli("cron", "print", "--systemd")
    assert units.exit_code == 0, units.output
    assert "Description=empire-ops refresh: the project's own SQL job" in units.stdout


def test_a_misfire_grace_under_a_second_is_a_config_error(tmp_path: Path, cli) -> None:
    write_config(tmp_path, '[scheduler]\nmisfire_grace = "500ms"\n')
    result = cli("config", "validate")
    assert result.exit_code == 2 and "scheduler.misfire_grace" in result.stderr
