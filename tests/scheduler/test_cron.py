"""The schedule as crontab lines and systemd units: they fire when the scheduler would.

The systemd side is checked by systemd itself (``systemd-analyze calendar`` and
``verify``), the crontab side by running its command through ``sh`` after
cron's own ``%`` rule, and both against APScheduler's next fire times.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger

from ops.config import Config, check_cron, load_config
from ops.scheduler.cron import (
    cron_fields,
    on_calendar,
    render,
    render_crontab,
    render_systemd,
)
from ops.scheduler.settings import DEFAULT_JOBS
from tests.conftest import require_service
from tests.helpers import write_config

COMMAND = [sys.executable, "-m", "ops"]
# A stand-in for empire-ops that prints where it runs and what it was given.
ECHO = [
    sys.executable,
    "-c",
    "import json, os, sys; print(json.dumps([os.getcwd(), *sys.argv[1:]]))",
]
# December and July: no daylight-saving change within the next fire times.
BASES = (
    datetime(2026, 12, 7, 13, 7, 30, tzinfo=UTC),
    datetime(2027, 7, 15, 22, 59, 30, tzinfo=UTC),
)
EXPRESSIONS = sorted(
    {job["cron"] for job in DEFAULT_JOBS.values()}
    | {
        "0 2 * * *",
        "*/15 * * * *",
        "30 1 * * *",
        "0 3 * * sun",
        "0 9 1-7 * mon-fri",
        "5,35 */2 * jan,jul *",
        "0 0 last * *",
        "5/15 1-10/3 * * sat-sun",
        "0 0 */2 * mon",
        "0 12 10-20/5 mar-may *",
        "0 0-10/4 * * *",
    }
)


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    require_service(path is not None, "systemd-analyze is not installed (systemd checks skipped)")
    assert path is not None
    return path


def _job_lines(crontab: str) -> list[str]:
    return [x for x in crontab.splitlines() if x and not x.startswith(("#", "CRON_TZ="))]


def _cron_command(line: str) -> str:
    """What cron hands the shell for ``line``: ``\\%`` is ``%``; a bare ``%`` ends the command."""
    text = line.split(None, 5)[5]
    out, i = [], 0
    while i < len(text) and text[i] != "%":
        step = 2 if text.startswith("\\%", i) else 1
        out.append(text[i + step - 1])
        i += step
    return "".join(out)


def _systemd_elapses(calendar: str, base: datetime, count: int = 6) -> list[datetime]:
    """The next ``count`` elapses systemd computes for ``calendar`` after ``base``."""
    done = subprocess.run(
        [
            _systemd_analyze(),
            "calendar",
            f"--iterations={count}",
            f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC",
            calendar,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TZ": "UTC"},  # the elapses are printed in this zone
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # "    Next elapse: Tue 2026-12-08 02:00:00 UTC", then "       Iter. #2: ..."
    found = re.findall(
        r"^\s*(?:Next elapse|Iter\. #\d+): \w{3} (\S+ \S+) UTC$", done.stdout, re.MULTILINE
    )
    return [datetime.fromisoformat(t).replace(tzinfo=UTC) for t in found]


def _apscheduler_fires(expr: str, timezone: str, base: datetime, count: int = 6) -> list[datetime]:
    trigger = CronTrigger.from_crontab(expr, timezone=timezone)
    fires, now = [], base
    for _ in range(count):
        fire = trigger.get_next_fire_time(None, now)
        fires.append(fire.astimezone(UTC))
        now = fire + timedelta(seconds=1)
    return fires


def _config(tmp_path: Path, text: str) -> Config:
    return load_config(write_config(tmp_path, text))


# -- crontab -------------------------------------------------------------------------------
def test_the_default_schedule_has_a_line_per_job_in_utc() -> None:
    config = load_config()
    text = render_crontab(config, command=COMMAND)
    lines = _job_lines(text)
    assert [line.rsplit(" ", 1)[1] for line in lines] == list(DEFAULT_JOBS)
    assert "CRON_TZ=UTC" in text.splitlines()  # cronie would otherwise read the host's zone
    assert "MAILTO" in text and "`empire-ops cron print`" in text
    for line, (job, spec) in zip(lines, DEFAULT_JOBS.items(), strict=True):
        assert line.startswith(spec["cron"] + " ")
        argv = shlex.split(_cron_command(line))
        run = [*COMMAND, "--log-format", "plain", "jobs", "run", job]
        assert argv == ["cd", str(config.base_dir), "&&", *run]


def test_every_crontab_line_parses_back_as_a_schedule(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        '[scheduler.jobs.backup]\ncron = "5/15 1-10/3 * * sat-sun"\n'
        '[scheduler.jobs.verify]\ncron = "0 0 */2 * mon"\n',
    )
    for line in _job_lines(render_crontab(config, command=COMMAND)):
        check_cron(" ".join(line.split()[:5]))


def test_a_disabled_job_is_absent(tmp_path: Path) -> None:
    config = _config(tmp_path, "[scheduler.jobs.drill]\nenabled = false\n")
    crontab = render_crontab(config, command=COMMAND)
    assert len(_job_lines(crontab)) == len(DEFAULT_JOBS) - 1
    assert "jobs run drill" not in crontab
    units = render_systemd(config, command=COMMAND)
    assert len(units) == 2 * (len(DEFAULT_JOBS) - 1)
    assert not any("drill" in name for name in units)


def test_the_time_zone_reaches_cron_and_every_timer(tmp_path: Path) -> None:
    config = _config(tmp_path, '[scheduler]\ntimezone = "Europe/Paris"\n')
    lines = render_crontab(config, command=COMMAND).splitlines()
    tz_at = lines.index("CRON_TZ=Europe/Paris")
    assert tz_at < lines.index(_job_lines("\n".join(lines))[0])
    assert any("cronie" in line and "CRON_TZ" in line for line in lines[:tz_at])
    calendars = [
        line.removeprefix("OnCalendar=")
        for text in render_systemd(config, command=COMMAND).values()
        for line in text.splitlines()
        if line.startswith("OnCalendar=")
    ]
    assert len(calendars) == len(DEFAULT_JOBS)
    assert all(c.endswith(" Europe/Paris") for c in calendars)


STRANGE = 'it\'s 100% "$HOME" here'


def test_a_strange_config_path_survives_cron_and_the_shell(tmp_path: Path) -> None:
    project = tmp_path / STRANGE
    project.mkdir()
    config = load_config(write_config(project, ""), env="prod")
    crontab = render_crontab(config, command=ECHO)
    assert "100\\%" in crontab and "100% " not in crontab.split("CRON_TZ")[1]
    for line, job in zip(_job_lines(crontab), DEFAULT_JOBS, strict=True):
        done = subprocess.run(
            ["sh", "-c", _cron_command(line)], capture_output=True, text=True, check=True
        )
        assert json.loads(done.stdout) == [
            str(project),
            "--config",
            str(project / "empire-ops.toml"),
            "--env",
            "prod",
            "--log-format",
            "plain",
            "jobs",
            "run",
            job,
        ]


def test_cron_fields_rewrite_what_cron_reads_otherwise() -> None:
    rewritten = {
        "5/15 * * * *": "5-59/15 * * * *",  # cron reads 5/15 as 5 alone
        "0 3 * * sat-sun": "0 3 * * sat,sun",  # cron numbers Sunday 0: 6-0 runs backwards
        "0 3 * * mon-sun": "0 3 * * mon-sat,sun",
        "0 3 * * sun": "0 3 * * sun",
        "0 0 */2 * mon": "0 0 */2 * mon",  # a day field starting with * : cron ANDs too
    }
    base = BASES[0]
    for configured, written in rewritten.items():
        assert cron_fields(configured) == written
        check_cron(written)
        assert _apscheduler_fires(written, "UTC", base, 20) == _apscheduler_fires(
            configured, "UTC", base, 20
        )


def test_cron_refuses_what_it_would_run_at_other_times(tmp_path: Path) -> None:
    both = _config(tmp_path, '[scheduler.jobs.backup]\ncron = "0 9 1-7 * mon-fri"\n')
    with pytest.raises(ValueError, match=r"job 'backup': .*either matches.*systemd timers"):
        render_crontab(both, command=COMMAND)
    with pytest.raises(ValueError, match="cron day of month 'last'"):
        cron_fields("0 0 last * *")


def test_a_line_break_in_the_command_is_refused() -> None:
    with pytest.raises(ValueError, match=r"job 'secrets': .*crontab line"):
        render_crontab(load_config(), command=["/opt/empire\nops"])


# -- systemd -------------------------------------------------------------------------------
@pytest.mark.parametrize("timezone", ["UTC", "Europe/Paris"])
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_on_calendar_elapses_when_apscheduler_fires(expr: str, timezone: str) -> None:
    calendar = on_calendar(expr, timezone)
    for base in BASES:
        assert _systemd_elapses(calendar, base) == _apscheduler_fires(expr, timezone, base), (
            f"{expr!r} as {calendar!r} from {base}"
        )


def test_both_day_fields_restricted_is_one_calendar_line_as_the_scheduler_reads_it() -> None:
    # APScheduler requires both fields to match (cron would take either): on Monday
    # 2026-12-07 the next run is Friday 2027-01-01, not Tuesday 2026-12-08.
    expr = "0 9 1-7 * mon-fri"
    assert _apscheduler_fires(expr, "UTC", BASES[0], 1) == [datetime(2027, 1, 1, 9, tzinfo=UTC)]
    assert on_calendar(expr, "UTC") == "Mon..Fri *-*-01..07 09:00:00 UTC"


def test_what_systemd_cannot_express_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cron day of month '1,last'"):
        on_calendar("0 0 1,last * *", "UTC")
    config = _config(tmp_path, '[scheduler.jobs.backup]\ncron = "0 0 1,last * *"\n')
    with pytest.raises(ValueError, match=r"job 'backup': cron day of month"):
        render_systemd(config, command=COMMAND)
    with pytest.raises(ValueError, match="absolute path"):
        render_systemd(load_config(), command=["empire-ops"])


def test_units_run_the_job_in_the_project_root(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, ""), env="prod")
    units = render_systemd(config, command=COMMAND)
    assert sorted(units) == sorted(
        f"empire-ops-{job}.{kind}" for job in DEFAULT_JOBS for kind in ("service", "timer")
    )
    service = units["empire-ops-backup.service"]
    assert "Type=oneshot" in service
    assert f"WorkingDirectory={tmp_path}" in service
    assert "Environment=EMPIRE_OPS_LOG_FORMAT=plain" in service
    exec_start = next(x for x in service.splitlines() if x.startswith("ExecStart="))
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == [
        *COMMAND,
        "--config",
        str(tmp_path / "empire-ops.toml"),
        "--env",
        "prod",
        "jobs",
        "run",
        "backup",
    ]
    timer = units["empire-ops-backup.timer"]
    assert "OnCalendar=*-*-* 02:00:00 UTC" in timer
    assert "Persistent=true" in timer and "AccuracySec=1s" in timer
    assert "WantedBy=timers.target" in timer


def test_systemd_accepts_every_unit_even_for_a_strange_path(tmp_path: Path) -> None:
    project = tmp_path / STRANGE
    project.mkdir()
    write_config(project, '[scheduler]\ntimezone = "Europe/Paris"\n')
    units = render_systemd(load_config(project / "empire-ops.toml"), command=COMMAND)
    assert '"' + str(project).replace("%", "%%").replace('"', '\\"').replace("$", "$$") in "".join(
        units.values()
    )
    folder = tmp_path / "units"
    folder.mkdir()
    for name, text in units.items():
        (folder / name).write_text(text)
    done = subprocess.run(
        [_systemd_analyze(), "verify", "--man=no", *sorted(str(p) for p in folder.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    # verify only warns about a bad OnCalendar= or an unknown %-specifier: nothing may be said.
    assert (done.returncode, done.stderr, done.stdout) == (0, "", "")


# -- render --------------------------------------------------------------------------------
def test_render_prints_either_form() -> None:
    config = load_config()
    assert render(config, command=COMMAND, systemd=False) == render_crontab(config, command=COMMAND)
    text = render(config, command=COMMAND, systemd=True)
    units = render_systemd(config, command=COMMAND)
    assert text.count("# --- empire-ops-") == len(units) == 2 * len(DEFAULT_JOBS)
    for name, unit in units.items():
        assert f"# --- {name} ---\n{unit}" in text
