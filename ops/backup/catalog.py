"""`backup list` and `backup info`: the repositories are the catalog (their manifests)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.backup.errors import BackupNotFound
from ops.backup.manifest import BackupManifest, check_backup_id
from ops.findings import Finding

if TYPE_CHECKING:
    from ops.config import Config


def summary(m: BackupManifest) -> dict[str, Any]:
    """The stable one-backup shape of `backup list --json` (docs/backups.md)."""
    dump = m.artifact("dump")
    return {
        "backup_id": m.backup_id,
        "status": m.status,
        "started_at": m.started_at,
        "finished_at": m.finished_at,
        "seconds": m.seconds,
        "size": m.size,
        "compression": m.compression,
        "encrypted": bool(dump and dump.encrypted),
        "verified_at": m.verified_at,
        "database": m.database.get("name"),
        "server_version": m.database.get("server_version"),
        "pg_dump_version": m.pg_dump_version,
        "tables": len(m.tables),
        "rows": sum(m.tables.values()),
        "migration_version": m.migration_version,
        "error": m.error,
    }


@dataclass
class BackupList(F.FindingsReport):
    """Every repository's backups, oldest first, with incomplete and unreadable ones named."""

    findings: list[Finding] = field(default_factory=list)
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)

    def extra(self) -> dict[str, Any]:
        return {"repositories": self.repositories}


def read_listing(repo: Any, findings: list[Finding], entries: dict[str, dict[str, Any]]) -> Any:
    """``repo.list_manifests()``, or None after recording why it could not be listed.

    An unreachable repository becomes a BACKUP_REPO_UNREACHABLE finding and an
    ``{"url", "error"}`` entry, so one broken repository never stops the rest.
    """
    from ops.errors import OpsError

    try:
        return repo.list_manifests()
    except OpsError as exc:
        findings.append(F.error("BACKUP_REPO_UNREACHABLE", repo.name, exc.message))
        entries[repo.name] = {"url": repo.describe(), "error": exc.message}
        return None


def list_backups(config: Config, repositories: Sequence[str] = ()) -> BackupList:
    """Read every manifest of the configured repositories (or ``repositories``). Read-only.

    Findings: BACKUP_INCOMPLETE (warning) for a backup folder without a
    manifest, BACKUP_UNREADABLE (error) for a manifest that does not parse,
    BACKUP_REPO_UNREACHABLE (error) for a repository that cannot be listed.
    """
    from ops.backup.dump import configured_repositories

    out = BackupList()
    for repo in configured_repositories(config, repositories):
        listing = read_listing(repo, out.findings, out.repositories)
        if listing is None:
            continue
        out.repositories[repo.name] = {
            "url": repo.describe(),
            "backups": [summary(m) for m in listing.manifests],
            "incomplete": listing.incomplete,
            "unreadable": listing.unreadable,
        }
        if listing.manifests:
            out.findings += freshness(
                repo.name, listing.manifests, repo.drill_times(),
                stale_after=config.seconds("backup.stale_after"),
                drill_stale_after=config.seconds("backup.drill.stale_after"),
            )  # fmt: skip
        for backup_id in listing.incomplete:
            out.findings.append(
                F.warning("BACKUP_INCOMPLETE", f"{repo.name}:{backup_id}",
                          "files without a manifest: a run that did not finish (prune removes "
                          "it after a day)")
            )  # fmt: skip
        for backup_id in listing.unreadable:
            out.findings.append(
                F.error("BACKUP_UNREADABLE", f"{repo.name}:{backup_id}",
                        "its manifest does not parse: the backup cannot be trusted")
            )  # fmt: skip
    return out


def freshness(
    repo_name: str,
    manifests: Sequence[BackupManifest],
    drills: Sequence[str],
    *,
    stale_after: float,
    drill_stale_after: float,
    now: datetime | None = None,
) -> list[Finding]:
    """BACKUP_STALE / DRILL_STALE for one repository. Pure.

    ``drills`` are the drill reports' UTC times (``drill-<time>.json``).
    The newest *verified* backup counts (a verify or a passed drill sets
    ``verified_at``): an unproven backup is no reason to feel safe.
    """
    now = now or datetime.now(UTC)
    out: list[Finding] = []
    verified = [m for m in manifests if m.complete and m.verified_at]
    newest = max((datetime.fromisoformat(m.verified_at or "") for m in verified), default=None)
    if newest is None:
        out.append(F.warning("BACKUP_STALE", repo_name, "no backup here has been verified or "
                             "drilled yet: run `empire-ops drill run`"))  # fmt: skip
    elif (now - newest).total_seconds() > stale_after:
        hours = (now - newest).total_seconds() / 3600
        limit = stale_after / 3600
        out.append(F.warning("BACKUP_STALE", repo_name, f"the newest verified backup was "
                             f"verified {hours:.0f} h ago (limit {limit:.0f} h)"))  # fmt: skip
    last = max((datetime.fromisoformat(d) for d in drills), default=None)
    if last is None or (now - last).total_seconds() > drill_stale_after:
        when = "never" if last is None else f"{(now - last).days} days ago"
        out.append(F.warning("DRILL_STALE", repo_name, f"the last restore drill ran {when} "
                             f"(limit {drill_stale_after / 86400:.0f} days)"))  # fmt: skip
    return out


def find_backup(
    config: Config, which: str, repository: str | None = None
) -> tuple[Any, BackupManifest]:
    """(repository, manifest) of ``which``: a backup id, or ``latest`` (newest complete).

    Looks in ``repository`` or in each configured one in order. Raises
    BackupIdInvalid (exit 2) for a malformed id, BackupNotFound (exit 2).
    """
    from ops.backup.dump import configured_repositories

    repos = configured_repositories(config, [repository] if repository else [])
    if which != "latest":
        check_backup_id(which)
    for repo in repos:
        if which == "latest":
            complete = [m for m in repo.list_manifests().manifests if m.complete]
            if complete:
                return repo, max(complete, key=lambda m: m.started_at)
            continue
        try:
            return repo, repo.read_manifest(which)
        except BackupNotFound:
            continue
    names = ", ".join(r.name for r in repos)
    raise BackupNotFound(
        f"no {'complete backup' if which == 'latest' else 'backup ' + which} in {names}",
        hint="take one with `empire-ops backup run`; see them with `empire-ops backup list`",
    )
