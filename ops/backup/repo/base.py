"""The repository base: public methods keep the layout and the rules; subclasses do only I/O.

Layout, the same in every kind: ``<backup_id>/<artifact>`` for each artifact
and ``<backup_id>/manifest.json`` written last. An artifact is written through
:meth:`Repository.artifact_writer`: streamed in, invisible under its final name
until :meth:`ArtifactWriter.commit`, removed on :meth:`ArtifactWriter.abort`
(a local temporary file renamed into place; an S3 multipart upload completed
or aborted). The repository is the catalog: :meth:`list_manifests` reads the
manifests, so `backup list` needs nothing else.

A subclass implements the small ``_``-methods; they raise OSError-like or SDK
errors, which the public methods turn into RepositoryError naming the
repository, never a credential.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, ClassVar

from ops.backup.errors import BackupNotFound, RepositoryError
from ops.backup.manifest import MANIFEST_NAME, BackupManifest, check_backup_id


@dataclass
class Listing:
    """What a repository holds: complete and failed backups (manifests) and incomplete ones."""

    manifests: list[BackupManifest] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  # ids with files but no manifest
    unreadable: list[str] = field(default_factory=list)  # ids whose manifest does not parse


class ArtifactWriter(abc.ABC):
    """A stream into one artifact; nothing is visible under its name until ``commit``."""

    @abc.abstractmethod
    def write(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def abort(self) -> None: ...


class Repository(abc.ABC):
    """A place that holds backups. ``name`` is the config's; ``url`` says where."""

    kind: ClassVar[str]

    def __init__(self, name: str, url: str, options: dict[str, Any]) -> None:
        self.name = name
        self.url = url
        self.options = options

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.describe()!r})"

    # -- public: the rules -------------------------------------------------------------
    def describe(self) -> str:
        """Where it is, for messages (no credential: URLs here never hold one)."""
        return self.url

    def artifact_writer(self, backup_id: str, name: str) -> ArtifactWriter:
        """A writer for ``<backup_id>/<name>``; commit it when complete, abort it otherwise."""
        check_backup_id(backup_id)
        return self._guard("start writing", lambda: self._writer(f"{backup_id}/{name}"))

    def write_manifest(self, manifest: BackupManifest) -> None:
        """Write (or atomically replace) the manifest: the backup exists from here on."""
        key = f"{check_backup_id(manifest.backup_id)}/{MANIFEST_NAME}"
        self._guard("write the manifest of", lambda: self._put(key, manifest.to_json()))

    def read_manifest(self, backup_id: str) -> BackupManifest:
        """The manifest of ``backup_id``. Raises BackupNotFound, BackupCorrupt, RepositoryError."""
        key = f"{check_backup_id(backup_id)}/{MANIFEST_NAME}"
        data = self._guard("read the manifest of", lambda: self._get(key))
        if data is None:
            raise BackupNotFound(
                f"repository {self.name!r} has no backup {backup_id}",
                hint="see the backups with `empire-ops backup list`",
            )
        return BackupManifest.from_json(data, where=f"{self.name}:{key}")

    def list_manifests(self) -> Listing:
        """Every backup in the repository, oldest first by the manifest's start time (ties by
        id); incomplete and unreadable ones by id."""
        from ops.backup.errors import BackupCorrupt

        listing = Listing()
        keys = self._guard("list", lambda: self._list(""))
        by_id: dict[str, set[str]] = {}
        for key in keys:
            backup_id, _, name = key.partition("/")
            by_id.setdefault(backup_id, set()).add(name)
        for backup_id in sorted(by_id):
            try:
                check_backup_id(backup_id)
            except Exception:
                continue  # not ours (a stray file or folder): never listed, never pruned
            if MANIFEST_NAME not in by_id[backup_id]:
                listing.incomplete.append(backup_id)
                continue
            try:
                listing.manifests.append(self.read_manifest(backup_id))
            except BackupCorrupt:
                listing.unreadable.append(backup_id)
        # Ids carry whole seconds: two backups in one second still order by time.
        listing.manifests.sort(key=lambda m: (m.started_at, m.backup_id))
        return listing

    def write_file(self, backup_id: str, name: str, data: bytes) -> None:
        """Write a small file beside a backup (a drill report), atomically; never the manifest."""
        import re

        if name == MANIFEST_NAME or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}", name):
            raise ValueError(f"{name!r} is not a file name a repository takes")
        key = f"{check_backup_id(backup_id)}/{name}"
        self._guard("write a file of", lambda: self._put(key, data))

    def drill_times(self) -> list[str]:
        """The UTC times (ISO 8601) of the drill reports beside the backups."""
        return [at for at, _, _ in self._drill_keys()]

    def drill_reports(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` drill reports (their ``--json`` envelopes), newest first.

        Each carries ``backup_id`` and ``at`` (the drill's UTC time); one that
        does not parse is returned as ``{"backup_id", "at", "unreadable": True}``.
        """
        import json

        out: list[dict[str, Any]] = []
        for at, backup_id, key in sorted(self._drill_keys(), reverse=True)[:limit]:
            data = self._guard("read a drill report of", lambda k=key: self._get(k))
            try:
                report = json.loads(data or b"")
                if not isinstance(report, dict):
                    raise ValueError("not an object")
            except ValueError:
                report = {"unreadable": True}
            out.append({**report, "backup_id": backup_id, "at": at})
        return out

    def _drill_keys(self) -> list[tuple[str, str, str]]:
        """(UTC time, backup id, key) of every ``<id>/drill-<time>Z.json``."""
        import re

        out = []
        for key in self._guard("list", lambda: self._list("")):
            # drill-<UTC time>Z.json, the time to the second (older reports) or microsecond
            m = re.fullmatch(r"([^/]+)/drill-(\d{4}-\d\d-\d\dT\d{6})(\.\d{1,6})?Z\.json", key)
            if m:
                t, fraction = m.group(2), m.group(3) or ""
                out.append((f"{t[:13]}:{t[13:15]}:{t[15:17]}{fraction}+00:00", m.group(1), key))
        return out

    def open_artifact(self, backup_id: str, name: str) -> IO[bytes]:
        """A binary stream of ``<backup_id>/<name>`` (close it after)."""
        key = f"{check_backup_id(backup_id)}/{name}"
        return self._guard("read", lambda: self._open(key))

    def delete_backup(self, backup_id: str) -> None:
        """Remove every file of ``backup_id``, the manifest first (half-deleted = incomplete)."""
        prefix = f"{check_backup_id(backup_id)}/"
        keys = self._guard("list", lambda: self._list(prefix))
        ordered = sorted(keys, key=lambda k: not k.endswith("/" + MANIFEST_NAME))
        self._guard("delete", lambda: self._delete(ordered))

    def locked_until(self, backup_id: str) -> datetime | None:
        """When the store's own retention lock (S3 Object Lock) on ``backup_id`` ends, if any.

        Prune reports a locked backup as locked and leaves it. The base has no lock.
        """
        return None

    # -- for subclasses: I/O only ------------------------------------------------------
    @abc.abstractmethod
    def _writer(self, key: str) -> ArtifactWriter: ...

    @abc.abstractmethod
    def _put(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` atomically (readers see the old or the new whole)."""

    @abc.abstractmethod
    def _get(self, key: str) -> bytes | None:
        """The bytes under ``key``, or None when there is none."""

    @abc.abstractmethod
    def _open(self, key: str) -> IO[bytes]: ...

    @abc.abstractmethod
    def _list(self, prefix: str) -> list[str]:
        """Keys (relative to the repository root) under ``prefix``, finished files only."""

    @abc.abstractmethod
    def _delete(self, keys: list[str]) -> None: ...

    def _guard(self, what: str, action: Any) -> Any:
        from ops.errors import OpsError

        try:
            return action()
        except OpsError:
            raise  # already says what and where (BackupNotFound, DiskFull, PathNotUsable...)
        except Exception as exc:  # OSError, botocore errors: say which repository
            mapped = self._map_error(exc)
            raise RepositoryError(
                f"backup repository {self.name!r} ({self.describe()}): could not {what} it: "
                f"{mapped}",
                hint=self._hint(exc),
            ) from None

    def _map_error(self, exc: Exception) -> str:
        return f"{type(exc).__name__}: {exc}"

    def _hint(self, exc: Exception) -> str | None:
        return None


def iter_chunks(stream: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """Read ``stream`` in chunks of ``size`` until it ends."""
    while chunk := stream.read(size):
        yield chunk
