"""Encrypted snapshots of every resolved secret, so secrets are never lost.

A snapshot is ``secrets-<UTC timestamp>.snap``: a JSON document of every
resolved ``name -> value`` encrypted with :func:`ops.secrets.crypto.encrypt_blob`
(AES-256-GCM, scrypt) under the passphrase secret (``[secrets.snapshot]
passphrase_secret``, default ``EMPIRE_SNAPSHOT_PASSPHRASE``). Beside it,
``secrets-<timestamp>.manifest.json`` lists names, fingerprints, the count and
the time: no values. Both are created exclusively (a complete file appears
under a name no other snapshot holds, or nothing does) with mode 0600 in
``[secrets.snapshot] location`` (default ``<state_dir>/snapshots``).

Nothing good is lost: an empty snapshot is refused (a run from the wrong
folder resolves nothing), and rotation (:func:`plan_rotation`) removes a
snapshot beyond ``keep`` only when a newer one that stays is good and holds at
least as many secrets.

:func:`restore_snapshot` decrypts one and loads it into a writable source
through the sync plan (:mod:`ops.secrets.sync`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.errors import ConfigError
from ops.fsutil import create_exclusive, ensure_dir
from ops.logs import register_secret_values
from ops.secrets.errors import SecretMissing, SecretsCryptoError
from ops.secrets.model import fingerprint

if TYPE_CHECKING:
    from ops.config import Config
    from ops.secrets.sync import SyncResult

log = logging.getLogger(__name__)

FORMAT = "empire-ops-secrets-snapshot"
VERSION = 1
SUFFIX = ".snap"
MANIFEST_SUFFIX = ".manifest.json"
DEFAULT_PASSPHRASE_SECRET = "EMPIRE_SNAPSHOT_PASSPHRASE"
FILE_MODE = 0o600


@dataclass(frozen=True)
class SnapshotSettings:
    """``[secrets.snapshot]``: the passphrase secret's name, the folder, how many to keep."""

    passphrase_secret: str
    location: Path
    keep: int

    def __post_init__(self) -> None:
        # Config validation refuses it too; a negative count must never reach rotation.
        if self.keep < 0:
            raise ConfigError(
                f"secrets.snapshot.keep: {self.keep} is negative",
                hint="use 0 to keep every snapshot, or how many of the newest to keep",
            )

    @classmethod
    def from_config(cls, config: Config) -> SnapshotSettings:
        table: Mapping[str, Any] = config.get("secrets.snapshot")
        location = table["location"]
        return cls(
            passphrase_secret=table["passphrase_secret"] or DEFAULT_PASSPHRASE_SECRET,
            location=config.resolve_path(location) if location else config.state_dir / "snapshots",
            keep=int(table["keep"]),
        )


@dataclass(frozen=True)
class SnapshotInfo:
    """A written snapshot: where, when, and which names (never values)."""

    path: Path
    manifest: Path
    created_at: str
    names: tuple[str, ...]
    removed: tuple[Path, ...] = ()
    held: tuple[Path, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "manifest": str(self.manifest),
            "created_at": self.created_at,
            "count": len(self.names),
            "names": list(self.names),
            "removed": [str(p) for p in self.removed],
            "held": [str(p) for p in self.held],
        }


def resolve_passphrase(settings: SnapshotSettings, secrets: Mapping[str, str]) -> str:
    """The snapshot passphrase: the resolved secret, else the process environment.

    Raises SecretMissing (exit 3) when it is set nowhere or empty.
    """
    name = settings.passphrase_secret
    value = secrets.get(name) or os.environ.get(name)
    if not value:
        raise SecretMissing(
            f"the snapshot passphrase secret {name} is not set",
            hint=f"set {name} (a long random value, kept apart from the snapshots) in a source "
            "or the environment; [secrets.snapshot] passphrase_secret names another secret",
        )
    return value


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _create_snapshot(folder: Path, stamp: str, blob: bytes) -> Path:
    """Create ``secrets-<stamp>[-N].snap`` holding ``blob``: the first name no one holds.

    The name is taken by an exclusive create, so two snapshots in the same
    second (two processes, or a cron job and a person) get two files.
    """
    n = 0
    while True:
        path = folder / f"secrets-{stamp}{f'-{n}' if n else ''}{SUFFIX}"
        try:
            create_exclusive(path, blob, mode=FILE_MODE)
            return path
        except FileExistsError:
            n += 1


def manifest_path(snapshot: Path) -> Path:
    """The names-only manifest that sits beside ``snapshot``."""
    return snapshot.with_name(snapshot.name.removesuffix(SUFFIX) + MANIFEST_SUFFIX)


def write_snapshot(
    settings: SnapshotSettings,
    secrets: Mapping[str, str],
    *,
    env: str,
    folder: Path | None = None,
    now: datetime | None = None,
) -> SnapshotInfo:
    """Encrypt ``secrets`` (except the passphrase itself) into a new snapshot in ``folder``.

    ``folder`` defaults to ``settings.location``. Then rotation removes what
    :func:`plan_rotation` allows beyond ``settings.keep`` (0 keeps all), with
    the manifests. Raises SecretMissing without a passphrase or when there is
    no secret to keep (an empty snapshot would rotate out the real ones),
    PathNotUsable (exit 2) when the folder cannot be written or is a file, and
    DiskFull (exit 1); nothing half-written is left.
    """
    from ops.secrets.crypto import encrypt_blob

    passphrase = resolve_passphrase(settings, secrets)
    # The passphrase cannot decrypt anything without being known already:
    # storing it inside would add nothing but one more copy.
    values = {n: secrets[n] for n in sorted(secrets) if n != settings.passphrase_secret}
    if not values:
        raise SecretMissing(
            "no secrets resolved: refusing to write an empty snapshot",
            hint="run from the project (the folder of empire-ops.toml, or with --config), and "
            "check `empire-ops secrets status`; an empty snapshot would replace the real ones",
        )
    created = (now or datetime.now(UTC)).astimezone(UTC)
    created_at = created.isoformat(timespec="seconds").replace("+00:00", "Z")
    target = ensure_dir(folder or settings.location, mode=0o700, purpose="the snapshot folder")
    payload = {"format": FORMAT, "version": VERSION, "created_at": created_at, "env": env}
    blob = encrypt_blob(
        json.dumps({**payload, "secrets": values}, ensure_ascii=False).encode("utf-8"), passphrase
    )
    path = _create_snapshot(target, _stamp(created), blob)
    manifest = {
        **payload,
        "file": path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "cipher": "AES-256-GCM, scrypt-derived key",
        "passphrase_secret": settings.passphrase_secret,
        "count": len(values),
        "secrets": [{"name": n, "fingerprint": fingerprint(v)} for n, v in values.items()],
    }
    mpath = manifest_path(path)
    try:
        create_exclusive(mpath, (json.dumps(manifest, indent=2) + "\n").encode(), mode=FILE_MODE)
    except BaseException:
        path.unlink(missing_ok=True)  # a snapshot without its manifest is not kept half-done
        raise
    removed, held = prune_snapshots(target, settings.keep)
    log.info("secrets snapshot written: %s (%d names)", path.name, len(values))
    return SnapshotInfo(path, mpath, created_at, tuple(values), tuple(removed), tuple(held))


@dataclass(frozen=True)
class SnapshotEntry:
    """A snapshot on disk as rotation sees it: ``good`` when its manifest is there, is
    valid and matches the file's sha256; ``count`` is the manifest's number of secrets."""

    path: Path
    good: bool
    count: int


def plan_rotation(
    entries: Sequence[SnapshotEntry], keep: int
) -> tuple[list[SnapshotEntry], list[SnapshotEntry]]:
    """Which snapshots to remove, and which to hold beyond ``keep``; ``entries`` oldest first.

    The newest ``keep`` stay (0 keeps all; a negative count is refused as
    ConfigError). An older one is removed only when a newer snapshot that stays
    is good and holds at least as many secrets; otherwise it is held: a run of
    smaller or failed snapshots never rotates out the last good, fuller one.
    Pure: no I/O.
    """
    if keep < 0:
        raise ConfigError(f"secrets.snapshot.keep: {keep} is negative", hint="use 0 or more")
    if keep == 0 or len(entries) <= keep:
        return [], []
    best = max((e.count for e in entries[-keep:] if e.good), default=0)
    remove: list[SnapshotEntry] = []
    held: list[SnapshotEntry] = []
    for entry in reversed(entries[:-keep]):  # newest first
        if entry.good and entry.count > best:
            held.append(entry)
            best = entry.count
        else:
            remove.append(entry)
    return remove[::-1], held[::-1]


def _entry(path: Path) -> SnapshotEntry:
    try:
        manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
        count = int(manifest["count"])
        good = (
            manifest.get("file") == path.name
            and manifest.get("sha256") == hashlib.sha256(path.read_bytes()).hexdigest()
            and count > 0
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return SnapshotEntry(path, False, 0)
    return SnapshotEntry(path, good, count if good else 0)


def prune_snapshots(folder: Path, keep: int) -> tuple[list[Path], list[Path]]:
    """Apply :func:`plan_rotation` to ``folder``: (removed, held beyond ``keep``) snapshots."""
    snaps = sorted(folder.glob(f"secrets-*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))
    remove, held = plan_rotation([_entry(p) for p in snaps], keep)
    for entry in remove:
        for path in (entry.path, manifest_path(entry.path)):
            path.unlink(missing_ok=True)
    for entry in held:
        log.warning(
            "secrets snapshot %s kept beyond keep: it holds %d secrets, more than any newer "
            "snapshot (delete it by hand if those secrets were removed on purpose)",
            entry.path.name,
            entry.count,
        )
    return [e.path for e in remove], [e.path for e in held]


def read_snapshot(path: Path, passphrase: str) -> dict[str, str]:
    """Decrypt the snapshot at ``path``: its ``name -> value`` map.

    Raises SecretsCryptoError (exit 3) for a wrong passphrase or a modified,
    truncated or foreign file; SecretMissing when the file does not exist.
    """
    from ops.secrets.crypto import decrypt_blob

    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise SecretMissing(
            f"snapshot {path} does not exist",
            hint="list them with `ls <state_dir>/snapshots` (or [secrets.snapshot] location)",
        ) from None
    except OSError as exc:
        raise SecretMissing(f"cannot read snapshot {path}: {type(exc).__name__}") from None
    _check_manifest(path, blob)
    plain = decrypt_blob(blob, passphrase)
    try:
        doc = json.loads(plain.decode("utf-8"))
        if doc.get("format") != FORMAT or not isinstance(doc.get("secrets"), dict):
            raise ValueError("not a snapshot document")
        values = {str(k): str(v) for k, v in doc["secrets"].items()}
        register_secret_values(values.values())
    except (UnicodeDecodeError, ValueError, AttributeError):
        raise SecretsCryptoError(
            f"{path.name} decrypts, but is not an empire-ops secrets snapshot",
            hint="restore-snapshot reads files written by `empire-ops secrets snapshot`",
        ) from None
    return values


def _check_manifest(path: Path, blob: bytes) -> None:
    """When the manifest is there, the file must be the one it describes."""
    mpath = manifest_path(path)
    try:
        expected = json.loads(mpath.read_text(encoding="utf-8")).get("sha256")
    except (OSError, ValueError, AttributeError):
        return  # no (readable) manifest: the AEAD tag still guards the content
    if expected and hashlib.sha256(blob).hexdigest() != expected:
        raise SecretsCryptoError(
            f"{path.name} does not match its manifest's sha256: the file is corrupted",
            hint="restore from another snapshot, or from the backup repository's copy",
        )


def snapshot_secrets(config: Config, *, folder: Path | None = None) -> SnapshotInfo:
    """Load every secret through the configured chain and write a snapshot of them.

    Raises what :func:`write_snapshot` and the loader raise.
    """
    from ops.secrets.export import resolved_secrets

    secrets = resolved_secrets(config)
    return write_snapshot(
        SnapshotSettings.from_config(config), secrets, env=config.env, folder=folder
    )


def restore_snapshot(
    config: Config,
    path: Path,
    dst_url: str,
    *,
    dry_run: bool = False,
    prune: bool = False,
    allow_empty_source: bool = False,
) -> SyncResult:
    """Decrypt ``path`` and load its secrets into ``dst_url`` through the sync plan.

    Nothing is written when decryption fails, with ``dry_run``, or when the
    destination is read-only (UsageError). Raises SecretsCryptoError (exit 3)
    for a wrong passphrase or a corrupted file, and refuses an empty snapshot
    or a prune of every name at the destination as ``sync`` does.
    """
    from ops.secrets.sync import open_source, require_writable, sync_values

    settings = SnapshotSettings.from_config(config)
    dst = open_source(dst_url, config)
    require_writable(dst)
    values = read_snapshot(path, _passphrase_for_restore(config, settings))
    return sync_values(
        values,
        f"snapshot {path.name}",
        dst,
        prune=prune,
        dry_run=dry_run,
        allow_empty_source=allow_empty_source,
    )


def _passphrase_for_restore(config: Config, settings: SnapshotSettings) -> str:
    # In a disaster the chain's remote sources may be the thing being restored:
    # the environment alone is enough, and loading the chain is the fallback.
    if os.environ.get(settings.passphrase_secret):
        return os.environ[settings.passphrase_secret]
    from ops.secrets import load_secrets

    return resolve_passphrase(settings, load_secrets(config).secrets)
