"""`empire-ops data …` and `empire-ops realtime …`: admin views of the data service (thin)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ops.cliutil import OpsGroup, configure_logging_from, echo, render_report, state

app = typer.Typer(cls=OpsGroup, help="The data service: vector search.", no_args_is_help=True)
realtime_app = typer.Typer(
    cls=OpsGroup, help="Supabase Realtime: the published tables.", no_args_is_help=True
)
_JSON = typer.Option(False, "--json", help="Print JSON.")


def _connect(ctx: typer.Context) -> Any:
    from ops import db
    from ops.target import resolve_target

    configure_logging_from(ctx)
    target = resolve_target(state(ctx).config)
    return db.connect(target.dsn, target.options)


@app.command("nearest")
def data_nearest(
    ctx: typer.Context,
    table: str = typer.Argument(..., help="A table with a vector column (blogs, memory_nodes)."),
    embedding_file: Path = typer.Option(
        ..., "--embedding-file", help="JSON file: a list of numbers (the query embedding)."
    ),
    k: int = typer.Option(10, "--k", help="How many neighbours (1 to 1000)."),
    field: list[str] = typer.Option([], "--field", help="A column to show (repeatable)."),
    filters: list[str] = typer.Option(
        [], "--filter", help="COLUMN=VALUE: only rows where it holds (repeatable)."
    ),
    bump: bool = typer.Option(False, "--bump", help="Add 1 to the found rows' usage_score."),
    as_admin: str = typer.Option(
        "", "--as-admin", help="Run as admin ACTOR (audited) instead of the service role."
    ),
    as_json: bool = _JSON,
) -> None:
    """The K rows nearest to an embedding by cosine distance (the HNSW index)."""
    from ops.data.service import DataService
    from ops.data.vector import nearest_report

    conn = _connect(ctx)
    try:
        service = DataService.for_config(conn, state(ctx).config)
        report = nearest_report(service, table, embedding_file, k, fields=field,
                                filters=filters, bump=bump, actor=as_admin)  # fmt: skip
    finally:
        conn.close()
    if not as_json:
        for n in report.neighbours:
            shown = " ".join(f"{name}={value}" for name, value in n.fields.items())
            echo(f"{n.id}  {n.distance:.6f}  {shown}".rstrip())
    render_report(report, as_json)


@realtime_app.command("status")
def realtime_status(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Which tables are in the supabase_realtime publication, against the schema's list."""
    from ops.data.realtime import realtime_status as status

    conn = _connect(ctx)
    try:
        report = status(conn)
    finally:
        conn.close()
    if not as_json:
        echo(f"{report.publication}: {', '.join(report.published) or '(no table)'}")
    render_report(report, as_json)


def export_command(
    ctx: typer.Context,
    tables: list[str] = typer.Argument(None, help="Tables to export (users, public.offers…)."),
    all_tables: bool = typer.Option(False, "--all", help="Every table but empire_private's."),
    since: str = typer.Option(
        None,
        "--since",
        help="Only rows with occurred_at (else created_at) at or after this "
        "ISO time (UTC when no zone is given).",
    ),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, csv or parquet (needs pyarrow)."),
    out: Path = typer.Option(
        None, "--out", help="Folder to write (default: a new exports/<UTC time>/)."
    ),
    preset: str = typer.Option(
        None, "--preset", help="rlhf (preference pairs) or conversions (the A/B view)."
    ),
    force: bool = typer.Option(False, "--force", help="Write into a folder that is not empty."),
    as_json: bool = _JSON,
) -> None:
    """Export tables (or a preset view) to files plus manifest.json, PII dropped or hashed."""
    from ops.data.export import export, pii_key

    config = state(ctx).config
    configure_logging_from(ctx)
    report = export(lambda: _connect(ctx), config, tables or [], all_tables=all_tables,
                    since=since, fmt=fmt, out=out, preset=preset, force=force,
                    key=lambda: pii_key(config))  # fmt: skip
    if not as_json:
        for t in report.tables:
            echo(f"{t.file}: {t.rows} rows, {t.bytes} bytes")
    render_report(report, as_json)
