"""`backup verify ID|latest|--all`: re-read each artifact, check it, prove pg_restore reads it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.backup.errors import BackupCorrupt
from ops.backup.manifest import BackupManifest, utc_now
from ops.backup.repo.base import Repository
from ops.errors import EXIT_SECRETS, OpsError, SecretsError
from ops.findings import Finding

if TYPE_CHECKING:
    from ops.config import Config


@dataclass
class VerifyReport(F.FindingsReport):
    """One finding per backup verified, and what was seen."""

    findings: list[Finding] = field(default_factory=list)
    verified: list[dict[str, Any]] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        return {"backups": self.verified}


def _scope(
    config: Config, which: str | None, every: bool, repository: str | None
) -> list[tuple[Repository, BackupManifest]]:
    from ops.backup.catalog import find_backup
    from ops.backup.dump import configured_repositories
    from ops.errors import UsageError

    if every == (which is not None):
        raise UsageError(
            "say which backup to verify: an id, latest, or --all (not both)",
            hint="e.g. `empire-ops backup verify latest`",
        )
    if which is not None:
        return [find_backup(config, which, repository)]
    out = []
    for repo in configured_repositories(config, [repository] if repository else []):
        out += [(repo, m) for m in repo.list_manifests().manifests if m.complete]
    return out


def record_verified(repo: Repository, manifest: BackupManifest) -> str | None:
    """Rewrite the manifest with ``verified_at`` = now (atomic); the error's message, or None."""
    try:
        repo.write_manifest(replace(manifest, verified_at=utc_now()))
    except OpsError as exc:
        return exc.message
    return None


def verify_one(
    repo: Repository, manifest: BackupManifest, *, identity: Any = None, record: bool = True
) -> Finding:
    """Check one backup: sizes, sha256, decryption, decompression, ``pg_restore --list``.

    On success the manifest gets ``verified_at`` (rewritten atomically) unless
    ``record`` is false. Never raises for the backup's own faults: they are the
    finding (BACKUP_VERIFIED ok, BACKUP_CORRUPT error, BACKUP_UNVERIFIABLE
    error with exit 3 for a missing or wrong identity).
    """
    from ops.backup.stream import ProcessSink, read_artifact
    from ops.backup.tools import pg_restore_for
    from ops.progress import ByteProgress

    subject = f"{repo.name}:{manifest.backup_id}"
    dump = manifest.artifact("dump")
    if dump is None:
        return F.error("BACKUP_CORRUPT", subject, "the manifest lists no dump artifact")
    tool = pg_restore_for(manifest.pg_dump_version)
    proc = subprocess.Popen(
        [str(tool.path), "--list"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    sink = ProcessSink(proc)
    try:
        with ByteProgress(f"verify {manifest.backup_id}", dump.size) as progress:
            result = read_artifact(
                repo, manifest, dump, sink, identity=identity, progress=progress.advance
            )
    except BackupCorrupt as exc:
        return F.error("BACKUP_CORRUPT", subject, exc.message)
    except SecretsError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        return F.error("BACKUP_UNVERIFIABLE", subject, exc.message + hint, exit_code=EXIT_SECRETS)
    finally:
        sink.close()
        rc = proc.wait(timeout=600)
        stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if rc != 0:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "(no message)"
        return F.error("BACKUP_CORRUPT", subject, f"pg_restore --list refused it: {last}")
    problem = record_verified(repo, manifest) if record else None
    if problem:
        return F.warning(
            "BACKUP_VERIFY_NOT_RECORDED", subject,
            f"the backup is sound, but verified_at could not be recorded: {problem}",
        )  # fmt: skip
    return F.ok(
        "BACKUP_VERIFIED", subject,
        f"{result.stored_size} bytes match sha256; {result.decoded_size} bytes of archive "
        "that pg_restore reads",
    )  # fmt: skip


def verify_backups(
    config: Config, which: str | None = None, *, every: bool = False, repository: str | None = None
) -> VerifyReport:
    """`backup verify`: each backup in scope through :func:`verify_one`.

    The age identity is loaded once, only when an encrypted backup is in
    scope. Raises UsageError (exit 2) for neither or both of ``which`` and
    ``every``, BackupIdInvalid/BackupNotFound (exit 2).
    """
    from ops.backup.stream import load_identity

    report = VerifyReport()
    scope = _scope(config, which, every, repository)
    identity = None
    if any(a.encrypted for _, m in scope for a in m.artifacts):
        try:
            identity = load_identity(config)
        except SecretsError as exc:
            report.findings.append(
                F.error("BACKUP_UNVERIFIABLE", "identity", exc.message, exit_code=EXIT_SECRETS)
            )
            return report
    for repo, manifest in scope:
        finding = verify_one(repo, manifest, identity=identity)
        report.findings.append(finding)
        report.verified.append(
            {"repository": repo.name, "backup_id": manifest.backup_id, "code": finding.code}
        )
    if not scope:
        report.findings.append(F.warning("BACKUP_NONE", "backups", "no complete backup to verify"))
    return report
