"""`prune` against a real LocalRepository: backups written through the repository API.

The Object Lock case uses a LocalRepository subclass that overrides only
``locked_until``: that method is the store's lock hook (S3 Object Lock
implements it in the S3 repository), so the test exercises prune's real
handling of a lock; the S3 lock itself is tested with the S3 repository.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ops.backup.manifest import MANIFEST_NAME, STATUS_FAILED
from ops.backup.prune import prune, prune_configured
from ops.backup.repo.local import LocalRepository
from ops.backup.retention import RetentionPolicy
from ops.errors import EXIT_FAILED, EXIT_OK
from tests.backup.test_retention import NOW, daily_at, manifest
from tests.helpers import tmpfs

KEEP_2 = RetentionPolicy(keep_last=2, keep_daily=0, keep_weekly=0, keep_monthly=0)


def _repo(root: Path, name: str = "local") -> LocalRepository:
    return LocalRepository(name, f"file:{root}", {})


def _backup(repo: LocalRepository, started: datetime, **kw: object) -> str:
    """A backup as `backup run` leaves it: the artifact committed, then the manifest."""
    m = manifest(started, **kw)  # type: ignore[arg-type]
    w = repo.artifact_writer(m.backup_id, "dump.pgc")
    w.write(b"PGDMP" + m.backup_id.encode())
    w.commit()
    repo.write_manifest(m)
    return m.backup_id


def _incomplete(repo: LocalRepository, started: datetime, suffix: str = "inc000") -> str:
    """A run killed before its manifest: the artifact is there, the manifest is not."""
    backup_id = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{suffix}"
    w = repo.artifact_writer(backup_id, "dump.pgc")
    w.write(b"PGDMP partial")
    w.commit()
    return backup_id


def _ids(repo: LocalRepository) -> set[str]:
    listing = repo.list_manifests()
    return {m.backup_id for m in listing.manifests} | set(listing.incomplete)


def _codes(report: object) -> list[str]:
    return [f.code for f in report.findings]  # type: ignore[attr-defined]


def test_a_dry_run_plans_every_deletion_and_deletes_nothing(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "b")
    ids = [_backup(repo, daily_at(d)) for d in range(4)]
    report = prune([repo], KEEP_2, now=NOW)
    assert _ids(repo) == set(ids)  # nothing gone
    assert report.exit_code == EXIT_OK and report.apply is False
    assert sorted(_codes(report)) == ["BACKUP_PRUNE_PLANNED"] * 2
    rows = report.repositories["local"]["decisions"]
    assert [r["backup_id"] for r in rows] == ids[::-1]  # oldest first, by start time
    assert [r["outcome"] for r in rows] == ["planned", "planned", "kept", "kept"]
    assert all(r["reason"] for r in rows)
    envelope = json.loads(report.to_json())
    assert envelope["data"]["apply"] is False and envelope["data"]["policy"]["keep_last"] == 2


def test_apply_deletes_what_the_plan_deletes_and_removes_stale_incomplete_ones(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path / "b")
    ids = [_backup(repo, daily_at(d)) for d in range(4)]
    stale = _incomplete(repo, NOW - timedelta(days=3))
    young = _incomplete(repo, daily_at(0) - timedelta(hours=1), "inc111")  # 22.5 h old
    report = prune([repo], KEEP_2, apply=True, now=NOW)
    assert _ids(repo) == {ids[0], ids[1], young}
    assert not (repo.root / ids[3]).exists() and not (repo.root / stale).exists()
    codes = _codes(report)
    assert sorted(codes) == ["BACKUP_INCOMPLETE_REMOVED", "BACKUP_PRUNED", "BACKUP_PRUNED"]
    assert report.exit_code == EXIT_OK
    outcome = {r["backup_id"]: r["outcome"] for r in report.repositories["local"]["decisions"]}
    assert outcome[stale] == "deleted" and outcome[young] == "kept"
    # a second prune finds nothing more to delete
    again = prune([repo], KEEP_2, apply=True, now=NOW)
    assert _codes(again) == ["BACKUP_PRUNE_NOTHING"]


def test_nothing_is_deleted_while_the_newest_backup_failed(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "b")
    ids = [_backup(repo, daily_at(d)) for d in range(1, 6)]
    failed = _backup(repo, daily_at(0), status=STATUS_FAILED)
    stale = _incomplete(repo, NOW - timedelta(days=9))
    report = prune([repo], KEEP_2, apply=True, now=NOW)
    assert _ids(repo) == {*ids, failed, stale}
    [held] = report.findings
    assert held.code == "BACKUP_PRUNE_HELD" and held.severity.label == "warning"
    # 3 complete beyond keep_last, the stale incomplete one, and the failed one itself
    # (keep_last keeps no failed backup, and no tier is set)
    assert failed in held.message and "5 would be" in held.message
    assert held.runbook == "runbooks/BACKUP_PRUNE_HELD.md"
    assert report.repositories["local"]["held"] is True
    assert report.exit_code == EXIT_OK  # a warning: the failed backup is reported elsewhere


def test_nothing_is_deleted_while_the_newest_backup_is_incomplete(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "b")
    ids = [_backup(repo, daily_at(d)) for d in range(1, 6)]
    running = _incomplete(repo, NOW - timedelta(minutes=5))
    report = prune([repo], KEEP_2, apply=True, now=NOW)
    assert _ids(repo) == {*ids, running}
    assert _codes(report) == ["BACKUP_PRUNE_HELD"]


def test_an_unreadable_manifest_is_never_deleted(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "b")
    ids = [_backup(repo, daily_at(d)) for d in range(4)]
    bad = ids[3]
    (repo.root / bad / MANIFEST_NAME).write_text("{not json")
    prune([repo], KEEP_2, apply=True, now=NOW)
    assert (repo.root / bad / MANIFEST_NAME).exists()
    assert repo.list_manifests().unreadable == [bad]


class LockedRepository(LocalRepository):
    """A LocalRepository whose store locks some backups: only the lock hook is overridden."""

    locks: dict[str, datetime]

    def locked_until(self, backup_id: str) -> datetime | None:
        return self.locks.get(backup_id)


def test_an_object_locked_backup_is_reported_as_locked_and_the_run_does_not_fail(
    tmp_path: Path,
) -> None:
    repo = LockedRepository("s3ish", f"file:{tmp_path / 'b'}", {})
    ids = [_backup(repo, daily_at(d)) for d in range(5)]
    repo.locks = {ids[4]: NOW + timedelta(days=20), ids[3]: NOW - timedelta(days=1)}
    dry = prune([repo], KEEP_2, now=NOW)
    assert sorted(_codes(dry)) == ["BACKUP_LOCKED", "BACKUP_PRUNE_PLANNED", "BACKUP_PRUNE_PLANNED"]
    report = prune([repo], KEEP_2, apply=True, now=NOW)
    assert report.exit_code == EXIT_OK
    assert _ids(repo) == {ids[0], ids[1], ids[4]}  # the lock that ended does not keep ids[3]
    [locked] = [f for f in report.findings if f.code == "BACKUP_LOCKED"]
    assert locked.subject == f"s3ish:{ids[4]}" and locked.severity.label == "info"
    assert "locks it until" in locked.message
    row = next(r for r in report.repositories["s3ish"]["decisions"] if r["backup_id"] == ids[4])
    assert row["outcome"] == "locked" and row["locked_until"].startswith("2026-12-22")


def test_a_failed_delete_is_a_finding_and_the_other_repositories_go_on(tmp_path: Path) -> None:
    with tmpfs("size=4m") as disk:
        frozen = _repo(disk / "b", "frozen")
        frozen_ids = [_backup(frozen, daily_at(d)) for d in range(3)]
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        fine = _repo(tmp_path / "b", "fine")
        fine_ids = [_backup(fine, daily_at(d)) for d in range(3)]
        report = prune([frozen, fine], KEEP_2, apply=True, now=NOW)
        assert _ids(frozen) == set(frozen_ids)  # read-only: nothing could go
        assert _ids(fine) == set(fine_ids[:2])  # the next repository was still pruned
    [failed] = [f for f in report.findings if f.code == "BACKUP_PRUNE_FAILED"]
    assert failed.subject == f"frozen:{frozen_ids[2]}" and "frozen" in failed.message
    assert failed.runbook == "runbooks/BACKUP_PRUNE_FAILED.md"
    assert "BACKUP_PRUNED" in _codes(report)
    assert report.exit_code == EXIT_FAILED


def test_prune_configured_reads_backup_retention(tmp_path: Path) -> None:
    from ops.config import load_config
    from ops.errors import ConfigError

    root = tmp_path / "b"
    ids = [_backup(_repo(root), datetime.now(UTC) - timedelta(days=d)) for d in range(4)]
    (tmp_path / "empire-ops.toml").write_text(
        f'[backup.repos.local]\nurl = "file:{root}"\n'
        "[backup.retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n"
    )
    report = prune_configured(load_config(tmp_path / "empire-ops.toml"))
    assert sorted(_codes(report)) == ["BACKUP_PRUNE_PLANNED"] * 3
    assert {r["backup_id"] for r in report.repositories["local"]["decisions"]} == set(ids)
    (tmp_path / "empire-ops.toml").write_text(
        "[backup.retention]\nkeep_last = 0\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n"
    )
    try:
        prune_configured(load_config(tmp_path / "empire-ops.toml"))
    except ConfigError as exc:
        assert "keeps nothing" in exc.message and exc.exit_code == 2
    else:
        raise AssertionError("a policy that keeps nothing was accepted")


def test_the_command_is_a_dry_run_unless_apply(tmp_path: Path, cli: Any) -> None:
    root = tmp_path / "b"
    ids = [_backup(_repo(root), datetime.now(UTC) - timedelta(days=d)) for d in range(3)]
    (tmp_path / "empire-ops.toml").write_text(
        f'[backup.repos.local]\nurl = "file:{root}"\n'
        "[backup.retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n"
    )
    dry = cli("backup", "prune", "--json")
    assert dry.exit_code == 0, dry.output
    payload = json.loads(dry.stdout)
    assert payload["data"]["apply"] is False and _ids(_repo(root)) == set(ids)
    applied = cli("backup", "prune", "--apply")
    assert applied.exit_code == 0, applied.output
    assert "BACKUP_PRUNED" in applied.stdout and _ids(_repo(root)) == {ids[0]}
