"""`backup prune`: carry out the retention plan in each repository (a dry run unless ``apply``).

The plan is :func:`ops.backup.retention.plan_retention`'s, per repository (each
holds its own catalog). Deleting goes through :meth:`Repository.delete_backup`,
the manifest first, so a delete cut short leaves an incomplete backup, never
a complete-looking one. A backup the store itself locks (S3 Object Lock,
:meth:`Repository.locked_until`) is reported as locked and left: the lock is
doing its job, and a later prune removes it once the lock ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.backup.retention import (
    INCOMPLETE,
    RetentionDecision,
    RetentionPolicy,
    backup_id_time,
    plan_retention,
)
from ops.findings import Finding

if TYPE_CHECKING:
    from ops.backup.repo.base import Repository
    from ops.config import Config


@dataclass
class PruneReport(F.FindingsReport):
    """Every decision in every repository, and what was done about it.

    ``repositories[name]`` holds ``url``, ``held`` and ``decisions`` (each a
    :meth:`RetentionDecision.to_dict` plus ``outcome``: ``kept``, ``planned``,
    ``deleted``, ``locked`` or ``failed``, and ``locked_until`` for a locked one).
    """

    apply: bool = False
    policy: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)

    def extra(self) -> dict[str, Any]:
        return {"apply": self.apply, "policy": self.policy, "repositories": self.repositories}


def _start(backup_id: str, now: datetime) -> datetime:
    # list_manifests only lists ids that pass check_backup_id, so this always parses;
    # "now" keeps a surprise young (kept) rather than crashing the run.
    try:
        return backup_id_time(backup_id)
    except ValueError:
        return now


def prune(
    repositories: Sequence[Repository],
    policy: RetentionPolicy,
    *,
    apply: bool = False,
    now: datetime | None = None,
) -> PruneReport:
    """Plan retention in each repository and, with ``apply``, delete what the plan deletes.

    Never raises for a repository's fault: a repository that cannot be listed
    is BACKUP_REPO_UNREACHABLE (error) and the others go on; a delete that
    fails is BACKUP_PRUNE_FAILED (error) and the run goes on. Findings per
    backup: BACKUP_PRUNE_PLANNED (info, dry run), BACKUP_PRUNED (ok),
    BACKUP_INCOMPLETE_REMOVED (info), BACKUP_LOCKED (info: the store's lock
    keeps it, not a failure); per repository: BACKUP_PRUNE_HELD (warning,
    nothing deleted because the newest backup is not complete) or
    BACKUP_PRUNE_NOTHING (ok).
    """
    from ops.backup.catalog import read_listing

    now = (now or datetime.now(UTC)).astimezone(UTC)
    report = PruneReport(apply=apply, policy=policy.to_dict())
    for repo in repositories:
        listing = read_listing(repo, report.findings, report.repositories)
        if listing is None:
            continue
        decisions = plan_retention(
            listing.manifests,
            [(i, _start(i, now)) for i in listing.incomplete],
            policy,
            now,
            unreadable=[(i, _start(i, now)) for i in listing.unreadable],
        )
        held = any(d.held for d in decisions)
        rows = []
        for d in decisions:
            row = d.to_dict() | {"outcome": "kept"}
            if not d.keep:
                row |= _carry_out(repo, d, apply=apply, now=now, findings=report.findings)
            rows.append(row)
        report.repositories[repo.name] = {"url": repo.describe(), "held": held, "decisions": rows}
        if held:
            newest = decisions[-1]  # oldest first: the hold is the newest's doing
            waiting = sum("otherwise: delete" in d.reason for d in decisions)
            report.findings.append(
                F.warning("BACKUP_PRUNE_HELD", repo.name,
                          f"the newest backup {newest.backup_id} is {newest.status}: nothing "
                          f"deleted ({waiting} would be) until a newer backup completes")
            )  # fmt: skip
        elif all(d.keep for d in decisions):
            report.findings.append(
                F.ok("BACKUP_PRUNE_NOTHING", repo.name,
                     f"the policy keeps all {len(decisions)} backups: nothing to delete")
            )  # fmt: skip
    return report


def _carry_out(
    repo: Repository,
    d: RetentionDecision,
    *,
    apply: bool,
    now: datetime,
    findings: list[Finding],
) -> dict[str, Any]:
    """Delete one backup the plan deletes (or say it would); the row's outcome."""
    from ops.errors import OpsError

    subject = f"{repo.name}:{d.backup_id}"
    try:
        until = repo.locked_until(d.backup_id)
    except OpsError as exc:
        message = f"could not read its lock, so it was left: {exc.message}"
        findings.append(F.error("BACKUP_PRUNE_FAILED", subject, message))
        return {"outcome": "failed"}
    if until is not None:
        until = until.replace(tzinfo=UTC) if until.tzinfo is None else until.astimezone(UTC)
        if until > now:
            findings.append(
                F.info("BACKUP_LOCKED", subject,
                       f"{d.reason}; but the store locks it until {until.isoformat()}, so it stays "
                       "(a later prune removes it)", details={"locked_until": until.isoformat()})
            )  # fmt: skip
            return {"outcome": "locked", "locked_until": until.isoformat()}
    if not apply:
        findings.append(F.info("BACKUP_PRUNE_PLANNED", subject,
                               f"would delete (dry run; --apply deletes): {d.reason}"))  # fmt: skip
        return {"outcome": "planned"}
    try:
        repo.delete_backup(d.backup_id)
    except OpsError as exc:
        findings.append(F.error("BACKUP_PRUNE_FAILED", subject, exc.message))
        return {"outcome": "failed"}
    if d.status == INCOMPLETE:
        findings.append(F.info("BACKUP_INCOMPLETE_REMOVED", subject, f"deleted: {d.reason}"))
    else:
        findings.append(F.ok("BACKUP_PRUNED", subject, f"deleted: {d.reason}"))
    return {"outcome": "deleted"}


def prune_configured(
    config: Config, repositories: Sequence[str] = (), *, apply: bool = False
) -> PruneReport:
    """:func:`prune` of the configured repositories with ``[backup.retention]``.

    Raises ConfigError (exit 2) for a retention setting the policy refuses,
    UsageError (exit 2) for a repository name that is not configured.
    """
    from ops.backup.dump import configured_repositories
    from ops.errors import ConfigError

    try:
        policy = RetentionPolicy.from_settings(config.get("backup.retention"))
    except ValueError as exc:
        raise ConfigError(
            f"[backup.retention]: {exc}",
            hint="fix it in empire-ops.toml; `empire-ops config validate` checks the file",
        ) from None
    return prune(configured_repositories(config, repositories), policy, apply=apply)
