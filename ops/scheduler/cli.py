"""`empire-ops scheduler …`, `jobs …` and `cron print`: thin commands over ops.scheduler."""

from __future__ import annotations

import sys

import typer

from ops.cliutil import (
    OpsGroup,
    configure_logging_from,
    echo,
    echo_json,
    render_report,
    state,
)
from ops.config import format_time

app = typer.Typer(
    cls=OpsGroup, help="Run every scheduled job, here, as a daemon.", no_args_is_help=True
)
jobs_app = typer.Typer(
    cls=OpsGroup, help="Run one scheduled job once (cron mode).", no_args_is_help=True
)
cron_app = typer.Typer(
    cls=OpsGroup, help="Print the schedule for cron or systemd.", no_args_is_help=True
)
_JSON = typer.Option(False, "--json", help="Print JSON.")


@app.command("run")
def scheduler_run(ctx: typer.Context) -> None:
    """Run the jobs on their schedules until SIGTERM (the current job finishes or stops; exit 0)."""
    from ops.scheduler.daemon import run_scheduler

    configure_logging_from(ctx)
    raise typer.Exit(run_scheduler(state(ctx).config))


@app.command("status")
def scheduler_status(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Every host's scheduler, and each job's schedule, next run and last result."""
    from ops.scheduler.status import scheduler_status as status
    from ops.target import existing_target

    configure_logging_from(ctx)
    cfg = state(ctx).config
    report = status(cfg, existing_target(cfg))
    if as_json:
        render_report(report, as_json)
    where = "the database" if report.source == "database" else "this host's state store"
    echo(f"schedulers (from {where}):")
    for s in report.schedulers:
        echo(f"  {s['host']} pid {s['pid']}: {s['state']}, last seen {s['age_seconds']:.0f}s ago")
    echo("jobs:")
    for name, job in report.jobs.items():
        last = (
            f"{job['last_outcome']} on {job['last_host']} at {format_time(job['last_started_at'])}"
        )
        found = f" ({', '.join(job['last_findings'])})" if job["last_findings"] else ""
        echo(f"  {name:<11} {job['schedule']:<18} next {format_time(job['next_run'])}; "
             f"last {last if job['last_outcome'] else '-'}{found}")  # fmt: skip
    render_report(report, as_json)


@app.command("forget")
def scheduler_forget(
    ctx: typer.Context, host: str = typer.Argument(..., help="The host name status shows.")
) -> None:
    """Forget a host's schedulers (a host taken out of service is not SCHEDULER_DOWN)."""
    from ops.scheduler.status import forget_host
    from ops.target import existing_target

    configure_logging_from(ctx)
    cfg = state(ctx).config
    count = forget_host(cfg, existing_target(cfg), host)
    echo(f"forgot {count} scheduler(s) of {host}")


@jobs_app.command("run")
def jobs_run(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A job: secrets, migrate, backup, verify, drill, ..."),
    force: bool = typer.Option(
        False, "--force", help="Run even if this minute's tick already ran (the lock still holds)."
    ),
    as_json: bool = _JSON,
) -> None:
    """Run one job now, with the scheduler's lock, history, findings, alerts and exit code."""
    from ops.scheduler.runner import run_job

    configure_logging_from(ctx)
    import time

    # A forced run is a tick of its own (this instant), never cron's minute.
    tick = time.time() if force else None
    report = run_job(state(ctx).config, name, scheduled_for=tick, handle_signals=True)
    if not as_json:
        echo(f"job {name}: {report.outcome} in {report.seconds:.2f}s on {report.host}")
    render_report(report, as_json)


@jobs_app.command("list")
def jobs_list(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Every enabled job with its schedule and what it does."""
    from ops.scheduler.settings import job_schedules

    schedules = job_schedules(state(ctx).config)
    if as_json:
        echo_json(
            {
                "jobs": [
                    {"name": n, "schedule": s.describe(), "doc": s.doc}
                    for n, s in schedules.items()
                ]
            }
        )
        return
    for name, s in schedules.items():
        echo(f"{name:<11} {s.describe():<18} {s.doc}")


@cron_app.command("print")
def cron_print(
    ctx: typer.Context,
    systemd: bool = typer.Option(False, "--systemd", help="systemd service and timer units."),
) -> None:
    """Print crontab lines (or systemd units) that run each job with `jobs run`."""
    from ops.errors import UsageError
    from ops.scheduler.cron import render

    # This interpreter runs the jobs; render() adds the config file and environment.
    try:
        text = render(state(ctx).config, command=[sys.executable, "-m", "ops"], systemd=systemd)
    except ValueError as exc:
        raise UsageError(
            str(exc), hint="write that schedule so cron can read it the same way"
        ) from None
    echo(text.rstrip("\n"))
