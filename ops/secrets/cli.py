"""`empire-ops secrets ...` and the top-level `empire-ops run`.

Each command parses its options, calls one library function and renders the
result. Output shows names, sources and fingerprints, never a value.
"""

from __future__ import annotations

import typer

from ops.cliutil import OpsGroup, configure_logging_from, echo, echo_json, is_tty, state

app = typer.Typer(
    cls=OpsGroup,
    help="Load, check, move and guard secrets (values are never printed).",
    no_args_is_help=True,
)


def use_env(ctx: typer.Context, env: str | None) -> None:
    """Apply a command-level ``--env`` (same as the global one) before config is loaded."""
    if env:
        st = state(ctx)
        st.env, st._config = env, None


@app.command("status")
def status(
    ctx: typer.Context,
    env: str = typer.Option(None, "--env", "-e", help="Environment (as the global --env)."),
    offline: bool = typer.Option(False, "--offline", help="Remote sources from their cache."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Names-only provenance table: each secret's status, source, detail and fingerprint."""
    from ops.secrets import load_secrets
    from ops.secrets.status import render_status, status_report

    use_env(ctx, env)
    configure_logging_from(ctx)
    report = status_report(load_secrets(state(ctx).config, offline=offline), state(ctx).config)
    if as_json:
        echo_json(report)
    else:
        echo(render_status(report, colour=is_tty()))
    raise typer.Exit(report.exit_code)


def run_command(
    ctx: typer.Context,
    command: list[str] = typer.Argument(None, help="The command and its arguments, after --."),
    env: str = typer.Option(None, "--env", "-e", help="Environment (as the global --env)."),
    only: str = typer.Option(None, "--only", help="Inject only these secrets: NAME,NAME..."),
    offline: bool = typer.Option(False, "--offline", help="Remote sources from their cache."),
) -> None:
    """Run preflight, then CMD with the merged secrets in its environment (exit = CMD's)."""
    from ops.findings import render_table
    from ops.secrets.runner import parse_only, require_command, run_with_secrets

    # Both are usage errors that need no config: refuse before loading anything.
    require_command(command or [])
    names = parse_only(only)
    use_env(ctx, env)
    configure_logging_from(ctx)
    outcome = run_with_secrets(state(ctx).config, command or [], only=names, offline=offline)
    if not outcome.started:
        echo(f"run: refusing to start; preflight ({outcome.report.env}) found gaps:", err=True)
        echo(render_table(outcome.report.findings, colour=False), err=True)
        echo(outcome.report.secrets_line(), err=True)
    raise typer.Exit(outcome.exit_code)


# sync, diff, export, snapshot, restore-snapshot and scan register themselves on `app`.
from ops.secrets import movement_cli as _movement_cli  # noqa: E402, F401
