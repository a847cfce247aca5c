"""The `empire-ops` command line: wires the domain commands and maps errors to exits.

Every command is a few lines that call one function of its domain package.
:class:`OpsGroup` is the one place where an :class:`~ops.errors.OpsError`
becomes a message, a hint and an exit code (a traceback only with ``--debug``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

import typer
from typer.core import TyperGroup

from ops.errors import EXIT_INTERNAL, OpsError


class OpsGroup(TyperGroup):
    """Runs a command and turns any error into one redacted message and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except OpsError as exc:
            _report_error(ctx, exc, f"error: {exc.message}", exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug: say so, and how to report it
            _report_error(
                ctx,
                exc,
                f"internal error: {type(exc).__name__}: {exc}",
                "this is a bug in empire-ops; rerun with --debug and report the traceback",
            )
            raise typer.Exit(EXIT_INTERNAL) from None


def _report_error(ctx: Any, exc: BaseException, message: str, hint: str | None) -> None:
    from ops.logs import redact

    state = ctx.obj if isinstance(ctx.obj, AppState) else None
    if state and state.debug:
        tb = "".join(traceback.format_exception(exc))
        typer.echo(redact(tb), err=True)
    typer.echo(redact(message), err=True)
    if hint:
        typer.echo(redact(f"hint: {hint}"), err=True)


@dataclass
class AppState:
    """Global options, and the config loaded on first use."""

    config_path: str | None = None
    env: str | None = None
    debug: bool = False
    _config: Any = field(default=None, repr=False)

    @property
    def config(self) -> Any:
        if self._config is None:
            from ops.config import load_config

            self._config = load_config(self.config_path, self.env)
        return self._config


app = typer.Typer(
    cls=OpsGroup,
    name="empire-ops",
    help="Secrets-first ops and resilience control plane for a Supabase/PostgreSQL database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    ctx: typer.Context,
    config: str = typer.Option(
        None,
        "--config",
        "-c",
        help="Config file (default: $EMPIRE_OPS_CONFIG or ./empire-ops.toml).",
    ),
    env: str = typer.Option(
        None, "--env", "-e", help="Environment overlay: dev, test, staging, prod ($EMPIRE_ENV)."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    log_format: str = typer.Option(
        None, "--log-format", help="Log lines as text, plain or json (default: config)."
    ),
) -> None:
    """Secrets-first ops and resilience control plane for a Supabase/PostgreSQL database."""
    from ops.logs import setup_logging

    ctx.obj = AppState(config_path=config, env=env, debug=debug)
    setup_logging(
        "debug" if debug else os.environ.get("EMPIRE_OPS_LOG_LEVEL", "info"),
        log_format or os.environ.get("EMPIRE_OPS_LOG_FORMAT", "auto"),
    )


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_object(AppState)
    assert obj is not None
    return obj


def configure_logging_from(ctx: typer.Context) -> None:
    """Apply the config file's logging settings unless a flag overrode them."""
    from ops.logs import setup_logging

    st = state(ctx)
    cfg = st.config
    level = "debug" if st.debug else cfg.get("logging.level")
    fmt = ctx.parent.params.get("log_format") if ctx.parent else None
    log_file = cfg.get("logging.file")
    setup_logging(
        level,
        fmt or os.environ.get("EMPIRE_OPS_LOG_FORMAT") or cfg.get("logging.format"),
        str(cfg.resolve_path(log_file)) if log_file else None,
    )


def echo_json(data: Any) -> None:
    from ops.logs import redact

    text = data if isinstance(data, str) else json.dumps(data, indent=2, default=str)
    typer.echo(redact(text))


def echo(text: str, *, err: bool = False) -> None:
    from ops.logs import redact

    typer.echo(redact(text), err=err)


def is_tty() -> bool:
    return sys.stdout.isatty()


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
    from ops.config import render_toml

    cfg = state(ctx).config
    if as_json:
        echo_json(cfg.to_dict())
    else:
        echo(f"# environment: {cfg.env}; file: {cfg.path or 'built-in defaults'}")
        echo(render_toml(cfg.data))


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
        echo_json(status_dict(st))
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


# -- preflight and up -----------------------------------------------------------------
@app.command("preflight")
def preflight(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Check everything the app needs before it boots; exit non-zero on any gap."""
    from ops.findings import render_table
    from ops.preflight import run_preflight

    configure_logging_from(ctx)
    report = run_preflight(state(ctx).config)
    if as_json:
        echo_json(report.to_json())
    else:
        echo(f"preflight ({report.env}) on {report.target or 'no database'}")
        echo(render_table(report.findings, colour=is_tty()))
    raise typer.Exit(report.exit_code)


@app.command("up")
def up(ctx: typer.Context) -> None:
    """Run the main job: ensure the database, then every check and step built so far."""
    from ops.up import render_summary, run_up

    configure_logging_from(ctx)
    report = run_up(state(ctx).config)
    echo(render_summary(report))
    raise typer.Exit(report.exit_code)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="empire-ops")
