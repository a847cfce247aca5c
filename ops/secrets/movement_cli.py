"""``empire-ops secrets`` commands that move secrets and guard against leaks.

sync, diff, export, snapshot, restore-snapshot and scan. They are registered
on the ``secrets`` typer app of :mod:`ops.secrets.cli` (which imports this
module). Each command parses its options, calls one library function and
renders names, sources and fingerprints only — never a value, except
``export --stdout``, which the user asked for explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ops.cliutil import configure_logging_from, echo, echo_json, render_report, state
from ops.errors import UsageError
from ops.secrets.cli import app

JSON_OPT = typer.Option(False, "--json", help="Print JSON.")
ALLOW_EMPTY_OPT = typer.Option(
    False,
    "--allow-empty-source",
    help="Allow a source with no secrets, and a --prune that deletes every name at the "
    "destination (refused otherwise, as a wrong path would cause them).",
)

if TYPE_CHECKING:
    from ops.secrets.sync import SyncResult


def _render_sync(verb: str, result: SyncResult, *, dry_run: bool, as_json: bool) -> None:
    """The names-only plan of a sync or restore, as text or JSON."""
    if as_json:
        echo_json({**result.to_dict(), "dry_run": dry_run})
        return
    echo(f"{verb} {result.source} -> {result.destination}{' (dry run)' if dry_run else ''}")
    echo(result.plan.render())
    echo("applied" if result.applied else "nothing applied")


@app.command("sync")
def sync(
    ctx: typer.Context,
    src: str = typer.Option(
        ...,
        "--from",
        help="Source: a configured name, dotenv:PATH, vault:MOUNT/PATH, awssm:ID, https://…",
    ),
    dst: str = typer.Option(
        ..., "--to", help="Destination: dotenv:PATH, vault:MOUNT/PATH or awssm:SECRET_ID."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    prune: bool = typer.Option(
        False, "--prune", help="Delete names that only the destination has."
    ),
    allow_empty: bool = ALLOW_EMPTY_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Copy every secret from one store to another; print the names-only plan, then apply it."""
    from ops.secrets.sync import sync_sources

    configure_logging_from(ctx)
    result = sync_sources(
        state(ctx).config, src, dst, prune=prune, dry_run=dry_run, allow_empty_source=allow_empty
    )
    _render_sync("sync", result, dry_run=dry_run, as_json=as_json)


@app.command("diff")
def diff(
    ctx: typer.Context,
    a: str = typer.Argument(..., help="First source (a configured name or a source URL)."),
    b: str = typer.Argument(..., help="Second source."),
    as_json: bool = JSON_OPT,
) -> None:
    """Names missing on either side or differing (by fingerprint); exit 1 when they differ."""
    from ops.secrets.sync import diff_sources

    configure_logging_from(ctx)
    result = diff_sources(state(ctx).config, a, b)
    code = 1 if result.differs else 0
    echo_json(result.to_dict(), exit_code=code) if as_json else echo(result.render())
    raise typer.Exit(code)


@app.command("export")
def export(
    ctx: typer.Context,
    fmt: str = typer.Option("dotenv", "--format", help="dotenv or json."),
    out: Path = typer.Option(None, "--out", help="File to write (mode 0600, atomically)."),
    to_stdout: bool = typer.Option(False, "--stdout", help="Print the values to stdout instead."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it already exists."),
) -> None:
    """Write every resolved secret to a file (0600, atomic); stdout only with --stdout."""
    from ops.secrets.export import export_secrets, render, resolved_secrets

    configure_logging_from(ctx)
    if (out is None) == (not to_stdout):
        raise UsageError(
            "give exactly one of --out FILE or --stdout",
            hint="export refuses to print secret values unless --stdout says so",
        )
    config = state(ctx).config
    if to_stdout:
        # The one place a value is printed: the user asked for it, so no redaction.
        typer.echo(render(resolved_secrets(config), fmt), nl=False)
        return
    count = export_secrets(config, fmt, out, force=force)
    echo(f"wrote {count} secrets to {out} ({fmt}, mode 0600)")


@app.command("snapshot")
def snapshot(
    ctx: typer.Context,
    to: Path = typer.Option(None, "--to", help="Folder (default: \\[secrets.snapshot] location)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Write every resolved secret to an encrypted snapshot, with a names-only manifest."""
    from ops.secrets.snapshot import snapshot_secrets

    configure_logging_from(ctx)
    info = snapshot_secrets(state(ctx).config, folder=to)
    if as_json:
        echo_json(info.to_dict())
        return
    echo(f"snapshot {info.path} ({len(info.names)} secrets, AES-256-GCM)")
    echo(f"manifest {info.manifest}")
    for old in info.removed:
        echo(f"removed  {old} (beyond keep)")
    for old in info.held:
        echo(f"held     {old} (beyond keep, but it holds more secrets than any newer snapshot)")


@app.command("restore-snapshot")
def restore_snapshot(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The .snap file to restore."),
    dst: str = typer.Option(
        ..., "--to", help="Destination: dotenv:PATH, vault:MOUNT/PATH or awssm:SECRET_ID."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    prune: bool = typer.Option(False, "--prune", help="Delete names the snapshot does not have."),
    allow_empty: bool = ALLOW_EMPTY_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Decrypt a snapshot and load it into a destination through the sync plan."""
    from ops.secrets.snapshot import restore_snapshot as restore

    configure_logging_from(ctx)
    result = restore(
        state(ctx).config, file, dst, dry_run=dry_run, prune=prune, allow_empty_source=allow_empty
    )
    _render_sync("restore", result, dry_run=dry_run, as_json=as_json)


@app.command("scan")
def scan(
    ctx: typer.Context,
    history: bool = typer.Option(False, "--history", help="Also search every commit on every ref."),
    repo: Path = typer.Option(Path("."), "--repo", help="A folder inside the git repository."),
    as_json: bool = JSON_OPT,
) -> None:
    """Search tracked files (and history) for secret values; check .env files. Exit 1 on a hit."""
    from ops.secrets.scan import scan_loaded

    configure_logging_from(ctx)
    report = scan_loaded(state(ctx).config, repo, history=history)
    if not as_json:
        commits = f" and {report.commits_scanned} commits" if history else ""
        n = report.values_searched
        echo(
            f"scanned {report.files_scanned} tracked files{commits} in {report.repo} for {n} values"
        )
    render_report(report, as_json)
