"""``BackupManifest``: the record written last, the only proof that a backup exists.

A backup is a folder ``<id>/`` in a repository holding its artifacts (the dump,
and the secrets snapshot when configured) and ``manifest.json``. The manifest
is written after every artifact is complete, so a folder without one is an
incomplete backup, in every repository. Nothing here does I/O; nothing in it
is a secret (names, sizes, checksums, counts, fingerprints of public keys).
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ops.backup.errors import BackupIdInvalid

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[a-z0-9]{6}$")
STATUS_COMPLETE = "complete"
STATUS_FAILED = "failed"


def new_backup_id(now: datetime | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ-xxxxxx``: UTC time (sorts by time) and a random suffix (no clash)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return f"{stamp}-{''.join(secrets.choice(alphabet) for _ in range(6))}"


def check_backup_id(value: str) -> str:
    """``value`` when it is a backup id; raise BackupIdInvalid (exit 2) otherwise.

    Ids become folder and object names, so anything else (``../``, ``/``, a
    NUL, an empty string) is refused before it reaches a repository.
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        shown = value if isinstance(value, str) and value.isprintable() else repr(value)
        raise BackupIdInvalid(
            f"{shown[:80]!r} is not a backup id",
            hint="ids look like 20261202T231500Z-k3x9q2, or say `latest`; "
            "see them with `empire-ops backup list`",
        )
    return value


@dataclass(frozen=True)
class Artifact:
    """One stored file of a backup: what it is, its size and sha256 as stored."""

    name: str  # e.g. "dump.pgc.zst.age"
    kind: str  # "dump" | "secrets"
    size: int
    sha256: str
    compression: str  # "zstd" | "pg_dump" | "none"
    encrypted: bool


@dataclass
class BackupManifest:
    """Everything known about one backup (see docs/backups.md for each field)."""

    backup_id: str
    status: str
    database: dict[str, Any]  # name, server_version, system_identifier (when readable)
    pg_dump_version: str
    format: str  # "custom"
    compression: str
    zstd_level: int | None
    recipients: list[str]  # fingerprints of the age recipients (public keys), never keys
    started_at: str
    finished_at: str
    seconds: float
    schemas: list[str]
    excluded_schemas: list[str]
    tables: dict[str, int]  # "schema.table" -> exact row count in the dump's snapshot
    migration_version: str | None
    empire_ops_version: str
    artifacts: list[Artifact] = field(default_factory=list)
    extensions: list[dict[str, str]] = field(default_factory=list)  # name, schema, version
    # "kind schema.name" -> {grants, columns}: ops/backup/grants.py; None: not recorded
    grants: dict[str, Any] | None = None
    # server-internal column options left out of the dump's TOC (ops/backup/archive.py)
    stripped_column_options: list[str] = field(default_factory=list)
    verified_at: str | None = None
    error: str | None = None
    manifest_version: int = MANIFEST_VERSION

    @property
    def complete(self) -> bool:
        return self.status == STATUS_COMPLETE

    @property
    def started(self) -> datetime:
        return datetime.fromisoformat(self.started_at)

    @property
    def size(self) -> int:
        return sum(a.size for a in self.artifacts)

    def artifact(self, kind: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.kind == kind), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, where: str = "manifest") -> BackupManifest:
        """Parse a manifest; raise BackupCorrupt naming ``where`` when it is not one."""
        from ops.backup.errors import BackupCorrupt

        try:
            raw = json.loads(data)
            raw["artifacts"] = [Artifact(**a) for a in raw.get("artifacts", [])]
            known = set(cls.__dataclass_fields__)
            manifest = cls(**{k: v for k, v in raw.items() if k in known})
            check_backup_id(manifest.backup_id)
        except (ValueError, TypeError, KeyError, BackupIdInvalid) as exc:
            raise BackupCorrupt(
                f"{where} is not a readable backup manifest ({type(exc).__name__})",
                hint="the backup cannot be trusted; take a new one with `empire-ops backup run`",
            ) from None
        return manifest


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the microsecond (two backups in one second still order)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
