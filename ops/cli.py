"""The `empire-ops` command line: wires the domain commands and maps errors to exits.

Every command is a few lines that call one function of its domain package.
:class:`OpsGroup` is the one place where an :class:`~ops.errors.OpsError`
becomes a message, a hint and an exit code (a traceback only with ``--debug``).
"""

from __future__ import annotations

import os
from typing import Any

import typer

from dashboards import cli as dashboard_cli
from ops.alerts import cli as alerts_cli
from ops.backup import cli as backup_cli
from ops.cliutil import (
    AppState,
    OpsGroup,
    configure_logging_from,
    echo,
    echo_json,
    render_report,
    sigterm_interrupts,
    state,
)
from ops.data import cli as data_cli
from ops.migrate import cli as migrate_cli
from ops.scheduler import cli as scheduler_cli
from ops.secrets import cli as secrets_cli

app = typer.Typer(
    cls=OpsGroup,
    name="empire-ops",
    help="Secrets-first ops and resilience control plane for a Supabase/PostgreSQL database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _log_format(value: str | None) -> str | None:
    from ops.logs import LOG_FORMATS

    if value is not None and value not in LOG_FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(LOG_FORMATS)}")
    return value


def _version(value: bool) -> None:
    """``--version``: print the installed version and exit (read lazily: only when asked)."""
    if not value:
        return
    from ops import installed_version

    typer.echo(f"empire-ops {installed_version('unknown (not installed)')}")
    raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    _show_version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        expose_value=False,
        callback=_version,
        help="Print the version and exit.",
    ),
    config: str = typer.Option(
        None,
        "--config",
        "-c",
        help="Config file (default: $EMPIRE_OPS_CONFIG, else the nearest empire-ops.toml "
        "in this folder or a parent; its folder is the project root).",
    ),
    env: str = typer.Option(
        None, "--env", "-e", help="Environment overlay: dev, test, staging, prod ($EMPIRE_ENV)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    log_format: str = typer.Option(
        None,
        "--log-format",
        envvar="EMPIRE_OPS_LOG_FORMAT",
        metavar="text|plain|json|auto",
        callback=_log_format,
        help="Log lines: text (terminal), plain (timestamped, for cron), json, or auto "
        "(text on a terminal, else plain). Default: \\[logging] format.",
    ),
) -> None:
    """Secrets-first ops and resilience control plane for a Supabase/PostgreSQL database."""
    from ops.logs import setup_logging

    ctx.obj = AppState(config_path=config, env=env, debug=debug, log_format=log_format)
    setup_logging(
        "debug" if debug else os.environ.get("EMPIRE_OPS_LOG_LEVEL", "info"),
        log_format or "auto",
    )


# -- config ---------------------------------------------------------------------------
config_app = typer.Typer(
    cls=OpsGroup, help="Validate and show the configuration.", no_args_is_help=True
)
app.add_typer(config_app, name="config")


@config_app.command("validate")
def config_validate(ctx: typer.Context) -> None:
    """Check empire-ops.toml; report every problem with its dotted path (exit 2)."""
    cfg = state(ctx).config
    where = cfg.path or "built-in defaults"
    echo(f"ok: {where} is valid (environment {cfg.env})")


@config_app.command("show")
def config_show(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Print the effective configuration for the selected environment."""
    cfg = state(ctx).config
    if as_json:
        echo_json(cfg.to_dict())
    else:
        echo(cfg.to_toml().rstrip("\n"))


# -- db -------------------------------------------------------------------------------
db_app = typer.Typer(cls=OpsGroup, help="Run the embedded PostgreSQL.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _cluster(ctx: typer.Context) -> Any:
    from ops.embedded import embedded_cluster

    return embedded_cluster(state(ctx).config)


@db_app.command("start")
def db_start(ctx: typer.Context) -> None:
    """Start the embedded PostgreSQL (idempotent; recovers after a crash)."""
    configure_logging_from(ctx)
    cluster = _cluster(ctx)
    port = cluster.start()
    echo(f"embedded PostgreSQL running on 127.0.0.1:{port} (data {cluster.data_dir})")


@db_app.command("stop")
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded PostgreSQL."""
    configure_logging_from(ctx)
    stopped = _cluster(ctx).stop()
    echo("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


@db_app.command("status")
def db_status(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Show whether the embedded PostgreSQL runs, its version, data folder and pgvector."""
    from ops.embedded import status_dict

    st = _cluster(ctx).status()
    if as_json:
        echo_json(status_dict(st), exit_code=0 if st.running else 1)
    else:
        running = f"yes (pid {st.pid}, port {st.port})" if st.running else "no"
        echo(f"running:   {running}")
        echo(f"version:   PostgreSQL {st.version}")
        echo(f"data:      {st.data_dir}{'' if st.initialised else ' (not initialised)'}")
        echo(f"vector:    {'available' if st.vector_available else 'NOT available'}")
        if st.url:
            echo(f"url:       {st.url}")
    if not st.running:
        raise typer.Exit(1)


@db_app.command("url")
def db_url(ctx: typer.Context) -> None:
    """Print the DSN of the running embedded PostgreSQL (it has no password)."""
    echo(_cluster(ctx).url())


@db_app.command("seed-demo")
def db_seed_demo(
    ctx: typer.Context,
    scale: float = typer.Option(1.0, "--scale", help="1 is about 10 MB; rows grow linearly."),
    seed: int = typer.Option(42, "--seed", help="Same seed, same rows."),
    truncate: bool = typer.Option(False, "--truncate", help="Empty the Empire tables first."),
    yes: bool = typer.Option(False, "--yes", help="Confirm a non-embedded or prod target."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fill every Empire table with deterministic demo data (COPY, one transaction)."""
    from ops.seed import guard_target, render_report, seed_demo
    from ops.target import resolve_target

    configure_logging_from(ctx)
    cfg = state(ctx).config
    target = resolve_target(cfg)
    echo(f"seeding demo data into {target.masked} ({cfg.env})", err=as_json)
    guard_target(target.masked, embedded=target.embedded, env=cfg.env, yes=yes)
    report = seed_demo(
        target.dsn, scale=scale, seed=seed, truncate=truncate, options=target.options,
        lock_timeout=cfg.seconds("database.lock_timeout"),
    )  # fmt: skip
    if as_json:
        echo_json(report.to_json())
    else:
        echo(render_report(report))


app.add_typer(migrate_cli.app, name="migrate")
app.add_typer(backup_cli.app, name="backup")
app.command("restore")(backup_cli.restore)
app.add_typer(backup_cli.drill_app, name="drill")
app.add_typer(secrets_cli.app, name="secrets")
app.add_typer(alerts_cli.app, name="alerts")
app.add_typer(scheduler_cli.app, name="scheduler")
app.add_typer(scheduler_cli.jobs_app, name="jobs")
app.add_typer(scheduler_cli.cron_app, name="cron")
app.add_typer(dashboard_cli.app, name="dashboard")
app.add_typer(data_cli.app, name="data")
app.add_typer(data_cli.realtime_app, name="realtime")
app.command("export")(data_cli.export_command)
app.command("run")(secrets_cli.run_command)


# -- preflight and up -----------------------------------------------------------------
@app.command("preflight")
def preflight(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    env: str = typer.Option(None, "--env", "-e", help="Environment (as the global --env)."),
    offline: bool = typer.Option(False, "--offline", help="Remote secrets from their cache."),
) -> None:
    """Check everything the app needs before it boots; exit non-zero on any gap."""
    from ops.preflight import run_preflight

    secrets_cli.use_env(ctx, env)
    configure_logging_from(ctx)
    report = run_preflight(state(ctx).config, offline=offline)
    if not as_json:
        echo(f"preflight ({report.env}) on {report.target or 'no database'}")
        echo(report.secrets_line())
    render_report(report, as_json)


@app.command("runbook")
def runbook(
    code: str = typer.Argument(..., help="A finding code, e.g. DB_UNREACHABLE."),
    path: bool = typer.Option(False, "--path", help="Print the file's path, not its text."),
) -> None:
    """Show the runbook of a finding code (shipped with empire-ops, so it works installed)."""
    from ops.runbook import runbook_path

    found = runbook_path(code)
    echo(str(found) if path else found.read_text(encoding="utf-8"))


@app.command("up")
def up(
    ctx: typer.Context,
    demo: bool = typer.Option(False, "--demo", help="Also seed a small demo dataset."),
    yes: bool = typer.Option(
        False, "--yes", help="Apply migrations to a non-embedded database without --env."
    ),
) -> None:
    """Run the main job: database, secrets, migrations, preflight (schema check) and summary."""
    from ops.up import render_summary, run_up

    configure_logging_from(ctx)
    report = run_up(state(ctx).config, demo=demo, yes=yes)
    echo(render_summary(report))
    raise typer.Exit(report.exit_code)


def main() -> None:
    """Console-script entry point. SIGTERM stops a command as Ctrl-C does (exit 130)."""
    with sigterm_interrupts():
        app(prog_name="empire-ops")
