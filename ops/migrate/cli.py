"""`empire-ops migrate ...`: print the target (masked), call one function, render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ops.cliutil import (
    OpsGroup,
    configure_logging_from,
    echo,
    echo_json,
    render_report,
    state,
)

app = typer.Typer(
    cls=OpsGroup,
    help="Apply, revert, inspect and prove the schema migrations.",
    no_args_is_help=True,
)


_YES_HELP = "to a non-embedded database without --env or $EMPIRE_ENV (confirm the target)."


def _target(ctx: typer.Context, *, as_json: bool = False) -> Any:
    """Resolve the database and say which one it is before anything acts on it."""
    from ops.target import resolve_target

    configure_logging_from(ctx)
    target = resolve_target(state(ctx).config)
    echo(f"target: {describe_target(target)}", err=as_json)
    return target


def describe_target(target: Any) -> str:
    """Which database, in words. Not the DSN itself: that may be a redacted secret value."""
    from ops import db

    info = db.parse_dsn(target.dsn)
    return (
        f"database {info.dbname!r} on {info.host}:{info.port} as {info.user or '(default user)'} "
        f"(from {target.source})"
    )


def _render_steps(result: Any) -> None:
    verb, past = {"up": ("apply", "applied"), "down": ("revert", "reverted")}[result.direction]
    for name in getattr(result, "adopted", []):
        verb_adopt = "would adopt" if result.dry_run else "adopted"
        echo(f"{verb_adopt} {name} into the folder shared with Supabase CLI")
    for warning in getattr(result, "warnings", []):
        echo(f"warning: {warning}")
    if not result.steps and not result.rebuilt_indexes:
        echo("nothing to do")
    for index in result.rebuilt_indexes:
        echo(f"rebuilt INVALID index {index}")
    for step in result.steps:
        mode = " (no transaction)" if step.no_transaction else ""
        took = "" if result.dry_run else f" in {step.duration_ms} ms"
        prefix = f"would {verb}" if result.dry_run else past
        echo(f"{prefix} {step.version}_{step.name}{mode}: {step.statements} statement(s){took}")


@app.command("status")
def status(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Show applied, pending, out-of-order, missing-locally and edited (checksum) migrations."""
    from ops.migrate.status import migration_status

    target = _target(ctx, as_json=as_json)
    report = migration_status(target, state(ctx).config)
    if not as_json:
        for e in report.entries:
            by = "  (Supabase CLI)" if e.recorded_by == "supabase-cli" else ""
            echo(f"{e.version}  {e.state:<17}  {e.name}{'  (up-only)' if e.up_only else ''}{by}")
    render_report(report, as_json)


@app.command("init")
def init(
    ctx: typer.Context,
    directory: Path = typer.Option(
        None, "--dir", help="The Supabase CLI folder (default: \\[migrate] supabase_dir)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be written."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Adopt the Empire schema into supabase/migrations, newer than the newest applied version."""
    from ops.migrate.adopt import adopt_schema

    target = _target(ctx, as_json=as_json)
    plan = adopt_schema(target, state(ctx).config, folder=directory, dry_run=dry_run)
    if as_json:
        echo_json({**plan.to_dict(), "dry_run": dry_run})
        return
    verb = "would write" if dry_run else "wrote"
    for item in plan.files:
        echo(f"{verb} {item.path} (from {item.shipped}; {item.reason} version)")
    echo(
        f"{len(plan.present)} already in {plan.folder}, {len(plan.files)} {verb.split()[-1]}"
        + ("; commit them, then `empire-ops migrate up`" if plan.files and not dry_run else "")
    )


@app.command("up")
def up(
    ctx: typer.Context,
    to: str = typer.Option(None, "--to", help="Apply up to and including this version."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would run; change nothing."),
    include_all: bool = typer.Option(
        False, "--include-all", help="Also apply pending files older than the newest applied."
    ),
    yes: bool = typer.Option(False, "--yes", help="Write " + _YES_HELP),
) -> None:
    """Apply pending migrations, each file with its history rows (exit 5 when locked)."""
    from ops.migrate.apply import migrate_up

    target = _target(ctx)
    result = migrate_up(
        target, state(ctx).config, to=to, dry_run=dry_run, include_all=include_all, confirmed=yes
    )
    _render_steps(result)


@app.command("down")
def down(
    ctx: typer.Context,
    to: str = typer.Option(..., "--to", help="Revert every migration newer than this (0: all)."),
    yes: bool = typer.Option(
        False, "--yes", help="Confirm outside \\[migrate] allow_down_in, or without --env."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would run; change nothing."),
) -> None:
    """Revert migrations newer than --to, newest first; refuses up-only files."""
    from ops.migrate.revert import migrate_down

    target = _target(ctx)
    result = migrate_down(target, state(ctx).config, to=to, confirmed=yes, dry_run=dry_run)
    _render_steps(result)


@app.command("new")
def new(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="What the migration does, e.g. add_orders."),
    directory: Path = typer.Option(
        None, "--dir", help="Folder to create it in (default: the first of \\[migrate] dirs)."
    ),
) -> None:
    """Create an empty migration file <timestamp>_<name>.sql with up and down sections."""
    from ops.migrate.common import new_migration

    echo(f"created {new_migration(state(ctx).config, name, directory)}")


@app.command("verify")
def verify(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Lint the migration files; check applied checksums and concurrently built indexes."""
    from ops.migrate.verify import verify_migrations

    target = _target(ctx, as_json=as_json)
    render_report(verify_migrations(target, state(ctx).config), as_json)


@app.command("test")
def test(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    keep: bool = typer.Option(False, "--keep", help="Keep the scratch database afterwards."),
) -> None:
    """On a scratch database: up/down/up every migration, down to zero, up, compare schemas."""
    from ops.migrate.scratch import run_migration_test

    target = _target(ctx, as_json=as_json)
    report = run_migration_test(target, state(ctx).config, keep=keep)
    if not as_json:
        kept = " (kept)" if keep else " (dropped)"
        echo(f"scratch database {report.scratch_database}{kept}, {report.seconds:.1f}s")
    render_report(report, as_json)


@app.command("snapshot")
def snapshot(
    ctx: typer.Context,
    output: Path = typer.Option(
        None, "--output", "-o", help="Write here (default: ops/migrate/expected_schema.json)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Apply every migration to a scratch database on the target server; write the manifest."""
    from ops.migrate.manifest import write_snapshot

    target = _target(ctx, as_json=as_json)
    result = write_snapshot(target.dsn, output, options=target.options)
    if as_json:
        echo_json({"path": str(result.path), "tables": result.tables, "changes": result.changes})
        return
    echo(f"wrote {result.path}: {result.tables} tables, {len(result.changes)} change(s)")
    for line in result.changes[:100]:
        echo(f"  {line}")


@app.command("check")
def check(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Compare the live schema with the manifest (a fixed number of queries), plus lints."""
    from ops.migrate.drift import check_target

    target = _target(ctx, as_json=as_json)
    result = check_target(target, state(ctx).config)
    if not as_json:
        echo(f"{result.tables} tables, {result.queries} catalog queries, {result.seconds:.3f}s")
    render_report(result, as_json)


@app.command("heal")
def heal(
    ctx: typer.Context,
    apply: bool = typer.Option(False, "--apply", help="Do it (default: show the SQL only)."),
    yes: bool = typer.Option(False, "--yes", help="Also apply pending migrations " + _YES_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Repair safe drift from the manifest: indexes, triggers, policies, RLS, realtime."""
    from ops.migrate.heal import heal as run_heal
    from ops.migrate.heal import render_plan

    target = _target(ctx, as_json=as_json)
    report = run_heal(target, state(ctx).config, apply=apply, confirmed=yes)
    if not as_json:
        echo(render_plan(report))
    render_report(report, as_json)
