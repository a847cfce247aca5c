"""`empire-ops backup ...`: take, list and describe backups (thin: one library call each)."""

from __future__ import annotations

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
    cls=OpsGroup, help="Take, list and describe streamed pg_dump backups.", no_args_is_help=True
)
_JSON = typer.Option(False, "--json", help="Print JSON.")


@app.command("run")
def run(
    ctx: typer.Context,
    repo: list[str] = typer.Option([], "--repo", help="Only this repository (repeatable)."),
    as_json: bool = _JSON,
) -> None:
    """pg_dump into every repository: streamed, compressed, encrypted, manifest last."""
    from ops.backup.dump import run_backup
    from ops.migrate.cli import describe_target
    from ops.target import resolve_target

    configure_logging_from(ctx)
    target = resolve_target(state(ctx).config)
    echo(f"target: {describe_target(target)}", err=as_json)
    render_report(run_backup(target, state(ctx).config, repositories=repo), as_json)


@app.command("list")
def list_(
    ctx: typer.Context,
    repo: list[str] = typer.Option([], "--repo", help="Only this repository (repeatable)."),
    as_json: bool = _JSON,
) -> None:
    """Every backup in the repositories, oldest first (the manifests are the catalog)."""
    from ops.backup.catalog import list_backups

    configure_logging_from(ctx)
    report = list_backups(state(ctx).config, repo)
    if not as_json:
        for name, entry in report.repositories.items():
            echo(f"{name}: {entry['url']}")
            for b in entry.get("backups", []):
                lock = " encrypted" if b["encrypted"] else ""
                echo(f"  {b['backup_id']}  {b['status']:<8}  {b['size']:>12} bytes  "
                     f"{b['tables']} tables, {b['rows']} rows{lock}")  # fmt: skip
    render_report(report, as_json)


@app.command("info")
def info(
    ctx: typer.Context,
    which: str = typer.Argument(..., help="A backup id, or latest."),
    repo: str = typer.Option(None, "--repo", help="Look only in this repository."),
    as_json: bool = _JSON,
) -> None:
    """One backup's manifest: artifacts, checksums, row counts, versions."""
    from ops.backup.catalog import find_backup

    configure_logging_from(ctx)
    repository, manifest = find_backup(state(ctx).config, which, repo)
    if as_json:
        echo_json({"repository": repository.name, **manifest.to_dict()})
        return
    echo(f"{manifest.backup_id} in {repository.name} ({repository.describe()}): {manifest.status}")
    for a in manifest.artifacts:
        echo(f"  {a.name}: {a.size} bytes, sha256 {a.sha256}")
    server = manifest.database.get("server_version")
    rows = sum(manifest.tables.values())
    echo(f"  {len(manifest.tables)} tables, {rows} rows; PostgreSQL {server}, "
         f"pg_dump {manifest.pg_dump_version}")  # fmt: skip


@app.command("verify")
def verify(
    ctx: typer.Context,
    which: str = typer.Argument(None, help="A backup id, or latest (or use --all)."),
    every: bool = typer.Option(False, "--all", help="Every complete backup."),
    repo: str = typer.Option(None, "--repo", help="Only this repository."),
    as_json: bool = _JSON,
) -> None:
    """Re-read backups: size, sha256, decrypt, decompress, pg_restore --list; record verified_at."""
    from ops.backup.verify import verify_backups

    configure_logging_from(ctx)
    render_report(verify_backups(state(ctx).config, which, every=every, repository=repo), as_json)


@app.command("prune")
def prune(
    ctx: typer.Context,
    apply: bool = typer.Option(False, "--apply", help="Delete (default: a dry run)."),
    repo: list[str] = typer.Option([], "--repo", help="Only this repository (repeatable)."),
    as_json: bool = _JSON,
) -> None:
    """Apply the retention policy: what it keeps and deletes, and why; --apply deletes."""
    from ops.backup.prune import prune_configured

    configure_logging_from(ctx)
    render_report(prune_configured(state(ctx).config, repo, apply=apply), as_json)


def restore(
    ctx: typer.Context,
    which: str = typer.Argument(..., help="A backup id, or latest."),
    target_db: str = typer.Option(None, "--target-db", help="A database on the same server."),
    target_dsn: str = typer.Option(None, "--target-dsn", help="Any database, by DSN."),
    create: bool = typer.Option(False, "--create", help="Create --target-db when missing."),
    jobs: int = typer.Option(1, "-j", "--jobs", help="Parallel restore jobs."),
    table: list[str] = typer.Option([], "--table", help="Only SCHEMA.TABLE (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Restore into a non-empty database."),
    force_production: bool = typer.Option(
        False, "--force-production", help="Restore over the configured database itself."
    ),
    repo: str = typer.Option(None, "--repo", help="Take the backup from this repository."),
    grants: bool = typer.Option(
        None,
        "--grants/--no-grants",
        help="Give restored objects the backup's recorded grants (default: config, on).",
    ),
    as_json: bool = _JSON,
) -> None:
    """Restore a backup into another database; refuses a non-empty or production target."""
    from ops.backup.restore import restore_backup

    configure_logging_from(ctx)
    report = restore_backup(
        state(ctx).config, which, target_db=target_db, target_dsn=target_dsn, create=create,
        jobs=jobs, tables=table, force=force, force_production=force_production, repository=repo,
        grants=grants,
    )  # fmt: skip
    if not as_json:
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in report.stages.items())
        echo(f"restored {report.backup_id} from {report.repository} into {report.target}: {stages}")
    render_report(report, as_json)


drill_app = typer.Typer(
    cls=OpsGroup, help="Prove that backups restore, and how long it takes.", no_args_is_help=True
)


@drill_app.command("run")
def drill_run(
    ctx: typer.Context,
    which: str = typer.Argument("latest", help="A backup id, or latest."),
    repo: str = typer.Option(None, "--repo", help="Take the backup from this repository."),
    as_json: bool = _JSON,
) -> None:
    """Restore a backup into a scratch database on the drill server, verify it, time it."""
    from ops.backup.drill import run_drill

    configure_logging_from(ctx)
    report = run_drill(state(ctx).config, which, repository=repo)
    if not as_json and report.stages:
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in report.stages.items())
        echo(f"drill of {report.backup_id}: {stages}; RTO {report.rto_seconds:.2f} s")
    render_report(report, as_json)
