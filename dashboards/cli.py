"""`empire-ops dashboard …`: build the health page, or serve it behind a token (thin commands)."""

from __future__ import annotations

import typer

from ops.cliutil import OpsGroup, configure_logging_from, echo, echo_json, state

app = typer.Typer(
    cls=OpsGroup,
    help="The health dashboard: one offline HTML page and db-health.json; serve them.",
    no_args_is_help=True,
)


@app.command("build")
def build(
    ctx: typer.Context,
    out: str = typer.Option(
        None, "--out", help="Folder to write into (default: [dashboard] out_dir)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Collect every part's health and write db-health.html and db-health.json (atomically)."""
    from dashboards.render import build_dashboard

    configure_logging_from(ctx)
    report = build_dashboard(state(ctx).config, out)
    if as_json:
        echo_json(report)
        raise typer.Exit(report.exit_code)
    counts = ", ".join(f"{n} {label}" for label, n in report.counts.items() if n)
    echo(f"dashboard: {report.html}")
    echo(f"json:      {report.json}")
    echo(f"status {report.status} ({counts or 'no finding'}), built in {report.seconds:.2f}s")


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, "--host", help="Address to listen on ([dashboard] host)."),
    port: int = typer.Option(None, "--port", help="Port to listen on ([dashboard] port)."),
) -> None:
    """Serve the page and /admin/db-health (JSON) to holders of ADMIN_DASHBOARD_TOKEN."""
    from dashboards.serve import serve_dashboard

    configure_logging_from(ctx)
    serve_dashboard(state(ctx).config, host=host, port=port)
