"""The configured schedule as a crontab fragment or as systemd timer units.

``empire-ops cron print`` shows what to install when the host's cron or systemd,
rather than the built-in scheduler, starts the jobs. Every entry runs
``empire-ops jobs run JOB``, which takes the same lock and records the same
findings and alerts as the daemon; this module makes the host start it at the
times the daemon would.

The schedule means what APScheduler runs (decision 0006), so each expression is
read here by APScheduler too, and written out from what it read:

- systemd: every field has an exact OnCalendar= form. APScheduler fires only when
  the day of month AND the day of week match, and so does systemd: one
  OnCalendar= line per job is exact.
- cron: when both day fields are restricted, cron fires when EITHER matches, so
  such a job has no crontab line (ValueError); nor has ``last`` (day of month),
  which cron lacks. ``5/15`` and ``sat-sun`` are written as ``5-59/15`` and
  ``sat,sun``: cron reads the first as ``5`` alone and the second as a range
  running backwards (it numbers Sunday 0).

Nothing is approximated: what cannot be written exactly raises ValueError naming
the job and the field. Known difference left: daylight-saving changes. A time
that does not exist when clocks spring forward (02:30 in Europe/Paris) runs an
hour later under APScheduler and not at all under systemd; one that happens twice
when they fall back runs twice under APScheduler, once under systemd.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from ops.config import Config, check_cron
from ops.scheduler.settings import job_schedule, job_schedules

# The five crontab fields as APScheduler names them, with a label for messages.
_FIELDS = {
    "minute": "minute",
    "hour": "hour",
    "day": "day of month",
    "month": "month",
    "day_of_week": "day of week",
}
_LOWEST = {"minute": 0, "hour": 0, "day": 1, "month": 1}
_HIGHEST = {"minute": 59, "hour": 23, "day": 31, "month": 12}
# APScheduler numbers weekdays from Monday = 0; systemd and cron take these names.
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- reading an expression -----------------------------------------------------------------
def _read(expr: str) -> dict[str, tuple[str, list[Any]]]:
    """Each field of ``expr``: name -> (the text written, APScheduler's expressions for it).

    Raises ValueError when the config check (``check_cron``) refuses ``expr``.
    """
    from apscheduler.triggers.cron import CronTrigger

    check_cron(expr)
    trigger = CronTrigger.from_crontab(expr, timezone="UTC")
    written = dict(zip(_FIELDS, expr.split(), strict=True))
    return {
        name: (written[name], trigger.fields[CronTrigger.FIELD_NAMES.index(name)].expressions)
        for name in _FIELDS
    }


def _is_every(expression: Any) -> bool:
    """True for a bare ``*`` (``RangeExpression`` and kin subclass ``AllExpression``)."""
    from apscheduler.triggers.cron.expressions import AllExpression

    return type(expression) is AllExpression and expression.step is None


# -- systemd -------------------------------------------------------------------------------
def _calendar_part(name: str, expression: Any) -> str:
    """One APScheduler expression of field ``name`` in systemd.time(7) syntax.

    Raises ValueError for a kind systemd has no form for in this field.
    """
    from apscheduler.triggers.cron.expressions import (
        AllExpression,
        RangeExpression,
        WeekdayRangeExpression,
    )

    if isinstance(expression, WeekdayRangeExpression):
        first, last = _WEEKDAYS[expression.first], expression.last
        return first if last in (None, expression.first) else f"{first}..{_WEEKDAYS[last]}"
    if name == "day_of_week":
        raise ValueError(f"{expression} has no systemd weekday form")
    if type(expression) is AllExpression:
        # systemd has no "*/n": a repetition starts from a value ("00/15" is 0, 15, 30, 45).
        return f"{_LOWEST[name]:02d}/{expression.step}"
    if isinstance(expression, RangeExpression):
        first, last, step = expression.first, expression.last, expression.step
        if step is None:
            return f"{first:02d}" if last in (None, first) else f"{first:02d}..{last:02d}"
        if last is None:
            return f"{first:02d}/{step}"  # from first to the field's end, as APScheduler
        # A stepped range written out: older systemd versions lack "a..b/n".
        return ",".join(f"{v:02d}" for v in range(first, last + 1, step))
    raise ValueError(f"{expression} has no systemd form")


def _calendar_field(name: str, text: str, expressions: list[Any]) -> str:
    """Field ``name`` (written ``text``) in systemd syntax; ValueError naming the field."""
    if any(_is_every(e) for e in expressions):
        return "*"
    try:
        return ",".join(_calendar_part(name, e) for e in expressions)
    except ValueError as exc:
        raise ValueError(f"cron {_FIELDS[name]} {text!r}: {exc}") from None


def _calendar_date(fields: dict[str, tuple[str, list[Any]]]) -> str:
    """The ``*-MONTH-DAY`` part; the last day of a month is ``*-MONTH~01`` in systemd."""
    from apscheduler.triggers.cron.expressions import LastDayOfMonthExpression

    month = _calendar_field("month", *fields["month"])
    text, days = fields["day"]
    if any(isinstance(e, LastDayOfMonthExpression) for e in days):
        if len(days) > 1:
            # "~" replaces the "-" before the day, so it cannot share a list with days.
            raise ValueError(
                f"cron day of month {text!r}: systemd cannot list the last day with other "
                "days in one OnCalendar="
            )
        return f"*-{month}~01"
    return f"*-{month}-{_calendar_field('day', text, days)}"


def on_calendar(expr: str, timezone: str) -> str:
    """The systemd ``OnCalendar=`` value that elapses when APScheduler fires ``expr``.

    ``expr`` is a five-field cron expression read in ``timezone`` (an IANA name,
    appended as systemd allows). Raises ValueError naming the field that has no
    exact systemd form, or why ``check_cron`` refuses ``expr``.
    """
    fields = _read(expr)
    weekdays = _calendar_field("day_of_week", *fields["day_of_week"])
    hour = _calendar_field("hour", *fields["hour"])
    minute = _calendar_field("minute", *fields["minute"])
    prefix = "" if weekdays == "*" else f"{weekdays} "
    return f"{prefix}{_calendar_date(fields)} {hour}:{minute}:00 {timezone}"


# -- cron ----------------------------------------------------------------------------------
def _cron_part(name: str, expression: Any) -> str:
    """One APScheduler expression as cron reads it the same; ValueError when cron cannot."""
    from apscheduler.triggers.cron.expressions import (
        LastDayOfMonthExpression,
        RangeExpression,
        WeekdayRangeExpression,
    )

    if isinstance(expression, LastDayOfMonthExpression):
        raise ValueError("cron has no last day of the month; use the systemd timers")
    if isinstance(expression, WeekdayRangeExpression) and expression.first < expression.last == 6:
        # cron numbers Sunday 0, so a range ending on Sunday would run backwards.
        first = expression.first
        return "sat,sun" if first == 5 else f"{_WEEKDAYS[first].lower()}-sat,sun"
    if type(expression) is RangeExpression and expression.step and expression.last is None:
        # cron reads "5/15" as 5 alone (or refuses it): write the range to the end.
        return f"{expression.first}-{_HIGHEST[name]}/{expression.step}"
    return str(expression)


def cron_fields(expr: str) -> str:
    """``expr`` written so that cron fires it when APScheduler does (the five fields).

    Raises ValueError naming the field cron would read otherwise: ``last``, or
    both day fields restricted (cron then fires when either matches, APScheduler
    only when both do); or why ``check_cron`` refuses ``expr``.
    """
    fields = _read(expr)
    out: dict[str, str] = {}
    for name, (text, expressions) in fields.items():
        try:
            out[name] = ",".join(_cron_part(name, e) for e in expressions)
        except ValueError as exc:
            raise ValueError(f"cron {_FIELDS[name]} {text!r}: {exc}") from None
    # cron's rule: a field that starts with "*" leaves the other day field alone.
    if not out["day"].startswith("*") and not out["day_of_week"].startswith("*"):
        raise ValueError(
            f"cron day of month {fields['day'][0]!r} and day of week {fields['day_of_week'][0]!r}: "
            "cron runs the job when either matches, the scheduler only when both do; "
            "use the systemd timers, or restrict one of the two"
        )
    return " ".join(out.values())


def _cron_word(word: str) -> str:
    """``word`` shell-quoted for a crontab command, ``%`` escaped (cron makes it a newline).

    Raises ValueError for what no crontab line can carry: a line break, or a
    backslash before ``%`` (cron would take it as the escape).
    """
    if "\n" in word or "\r" in word or "\\%" in word:
        raise ValueError(f"{word!r} cannot be written in a crontab line")
    return shlex.quote(word).replace("%", "\\%")


def _comment(text: str) -> str:
    """``text`` kept on one comment line (a strange project name cannot end it)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# -- commands ------------------------------------------------------------------------------
def _job_args(config: Config, command: Sequence[str], job: str, *extra: str) -> list[str]:
    """The argument list that runs ``job`` with this config: ``--config``/``--env`` as loaded."""
    if not command:
        raise ValueError("the command to run empire-ops is empty")
    args = list(command)
    if config.path is not None:
        args += ["--config", str(config.path)]
    if config.env_explicit:
        args += ["--env", config.env]
    return [*args, *extra, "jobs", "run", job]


def _crontab_header(config: Config, timezone: str) -> list[str]:
    where = str(config.path) if config.path else f"built-in defaults in {config.base_dir}"
    return [
        f"# empire-ops scheduled jobs: project {config.get('project.name')}, "
        f"environment {config.env}, config {where}.",
        "# Generated by `empire-ops cron print`; add these lines with `crontab -e`.",
        "# Each line runs `empire-ops jobs run JOB`: the job's lock, findings, alerts and exit",
        "# code are the daemon's. Use these lines or the built-in scheduler, not both.",
        "# cron mails a job's output to the crontab's owner: set MAILTO=you@example.com",
        '# above these lines (MAILTO="" sends nothing).',
        f"# The times are in {timezone}: cronie honours CRON_TZ; Debian's cron (Vixie) does",
        "# not, and reads them in the system's time zone.",
    ]


def render_crontab(config: Config, *, command: Sequence[str]) -> str:
    """A crontab fragment with one line per enabled job, in ``[scheduler] timezone``.

    ``command`` runs empire-ops (``[sys.executable, "-m", "ops"]`` or the script's
    path); each line changes to the project root, then runs ``command
    [--config PATH] [--env ENV] --log-format plain jobs run JOB``, every word
    shell-quoted. Raises ValueError naming the job whose schedule cron would read
    differently (see :func:`cron_fields`), or a word no crontab line can carry.
    """
    timezone = config.get("scheduler.timezone")
    # Always set: without it cronie reads the times in the system's zone, even for UTC.
    lines = [_comment(line) for line in _crontab_header(config, timezone)]
    lines.append(f"CRON_TZ={timezone}")
    for job, schedule in job_schedules(config).items():
        if schedule.every is not None:
            lines.append(
                f"# {job} runs {schedule.describe()}: cron counts minutes, so only "
                "`empire-ops scheduler run` runs it; give it a cron expression to run it here"
            )
    for job, expr in job_schedule(config).items():
        args = _job_args(config, command, job, "--log-format", "plain")
        try:
            when = cron_fields(expr)
            # cron starts jobs in $HOME; the project root decides .env and the state folder.
            run = " ".join(_cron_word(a) for a in args)
            line = f"{when} cd {_cron_word(str(config.base_dir))} && {run}"
        except ValueError as exc:
            raise ValueError(f"job {job!r}: {exc}") from None
        lines.append(line)
    return "\n".join(lines) + "\n"


# -- systemd units -------------------------------------------------------------------------
def _unit_value(text: str) -> str:
    """``text`` as a unit file value: ``%`` doubled (systemd's specifiers); one line only."""
    if _CONTROL.search(text) or text != text.strip():
        raise ValueError(f"{text!r} cannot be written in a systemd unit")
    return text.replace("%", "%%")


def _exec_word(word: str) -> str:
    """``word`` as one ExecStart= argument: double-quoted, C-escaped, ``%`` and ``$`` doubled."""
    out = []
    for ch in word:
        if ch in '\\"':
            out.append("\\" + ch)
        elif _CONTROL.match(ch):
            out.append(f"\\x{ord(ch):02x}")
        elif ch in "%$":
            out.append(ch * 2)  # "%%" is a literal % (specifiers), "$$" a literal $ (variables)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _service(config: Config, job: str, args: list[str]) -> str:
    if not PurePath(args[0]).is_absolute():
        # systemd looks a bare name up in its own PATH, never in a virtualenv.
        raise ValueError(f"systemd needs the absolute path of the command, not {args[0]!r}")
    return "\n".join(
        [
            f"# Generated by `empire-ops cron print --systemd` (environment {config.env}).",
            "[Unit]",
            f"Description=empire-ops {job}: {_unit_value(job_schedules(config)[job].doc)}",
            "",
            "[Service]",
            "Type=oneshot",
            f"WorkingDirectory={_unit_value(str(config.base_dir))}",
            "Environment=EMPIRE_OPS_LOG_FORMAT=plain",
            f"ExecStart={' '.join(_exec_word(a) for a in args)}",
            "# `systemctl stop` signals empire-ops alone, which stops its job's pg_dump",
            "# itself and records the run as aborted (the default would kill them all).",
            "KillMode=mixed",
            "",
        ]
    )


def _timer(job: str, expr: str, calendar: str, timezone: str) -> str:
    return "\n".join(
        [
            f"# Generated by `empire-ops cron print --systemd`: cron {expr!r} in {timezone}.",
            "[Unit]",
            f"Description=Start empire-ops-{job}.service on its schedule",
            "",
            "[Timer]",
            f"OnCalendar={calendar}",
            "# A run missed while the machine was off starts once at the next boot.",
            "Persistent=true",
            "# The default (1min) lets systemd start a job up to a minute late to batch",
            "# wake-ups; the schedules are minute-exact, some every minute.",
            "AccuracySec=1s",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ]
    )


def render_systemd(config: Config, *, command: Sequence[str]) -> dict[str, str]:
    """Unit file name -> text: ``empire-ops-JOB.service`` and ``.timer`` per enabled job.

    The service is a oneshot that runs ``command [--config PATH] [--env ENV] jobs
    run JOB`` in the project root with plain log lines; the timer elapses when the
    scheduler would fire the job (:func:`on_calendar`), in ``[scheduler]
    timezone``. ``command[0]`` must be an absolute path. Raises ValueError naming
    the job whose schedule or command systemd cannot take exactly.
    """
    timezone = config.get("scheduler.timezone")
    units: dict[str, str] = {}
    for job, expr in job_schedule(config).items():
        try:
            calendar = on_calendar(expr, timezone)
            service = _service(config, job, _job_args(config, command, job))
        except ValueError as exc:
            raise ValueError(f"job {job!r}: {exc}") from None
        units[f"empire-ops-{job}.service"] = service
        units[f"empire-ops-{job}.timer"] = _timer(job, expr, calendar, timezone)
    return units


def render(config: Config, *, command: Sequence[str], systemd: bool) -> str:
    """What ``empire-ops cron print`` shows: the crontab, or every unit after a separator.

    Raises ValueError as :func:`render_crontab` / :func:`render_systemd` do.
    """
    if not systemd:
        return render_crontab(config, command=command)
    units = render_systemd(config, command=command)
    return "\n".join(f"# --- {name} ---\n{text}" for name, text in units.items())
