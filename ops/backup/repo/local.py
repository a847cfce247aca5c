"""A backup repository in a local folder (``file:PATH``, relative to the project root)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Any

from ops.backup.repo.base import ArtifactWriter, Repository
from ops.fsutil import _fsync_dir, _raise_storage, atomic_write_bytes, ensure_dir

_TMP_PREFIX = ".tmp-"


class _LocalWriter(ArtifactWriter):
    """Writes ``.tmp-<random>-<name>`` beside the final name; commit fsyncs and renames."""

    def __init__(self, path: Path) -> None:
        self.path = path
        ensure_dir(path.parent, mode=0o700, purpose="the backup's folder")
        self.tmp = path.with_name(f"{_TMP_PREFIX}{secrets.token_hex(4)}-{path.name}")
        try:
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            _raise_storage(exc, "create", self.tmp)
        self.file: IO[bytes] | None = os.fdopen(fd, "wb", buffering=1 << 20)

    def write(self, chunk: bytes) -> None:
        assert self.file is not None, "write after commit or abort"
        try:
            self.file.write(chunk)
        except OSError as exc:
            self.abort()
            _raise_storage(exc, "write", self.path)

    def commit(self) -> None:
        assert self.file is not None, "commit after commit or abort"
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self.file = None
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            _raise_storage(exc, "write", self.path)
        with contextlib.suppress(OSError):
            _fsync_dir(self.path.parent)

    def abort(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


class LocalRepository(Repository):
    """Backups in a folder: ``<root>/<backup_id>/...`` (folders 0700, files 0600)."""

    kind = "file"

    def __init__(self, name: str, url: str, options: dict[str, Any]) -> None:
        super().__init__(name, url, options)
        raw = url.split(":", 1)[1]
        raw = raw[2:] if raw.startswith("//") else raw
        base = Path(options.get("base_dir") or ".")
        path = Path(raw).expanduser()
        self.root = path if path.is_absolute() else base / path

    def describe(self) -> str:
        return str(self.root)

    def _writer(self, key: str) -> ArtifactWriter:
        return _LocalWriter(self.root / key)

    def _put(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self.root / key, data, mode=0o600)

    def _get(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def _open(self, key: str) -> IO[bytes]:
        return open(self.root / key, "rb")  # the caller closes it

    def _list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        out = []
        for folder in sorted(self.root.iterdir()):
            if not folder.is_dir() or folder.is_symlink():
                continue
            for path in sorted(folder.iterdir()):
                key = f"{folder.name}/{path.name}"
                if (
                    path.is_file()
                    and not path.name.startswith(_TMP_PREFIX)
                    and key.startswith(prefix)
                ):
                    out.append(key)
        return out

    def list_temporary(self) -> list[Path]:
        """Temporary files left by a killed run (for the tests, and for prune to report)."""
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob(f"*/{_TMP_PREFIX}*"))

    def _delete(self, keys: list[str]) -> None:
        folders = set()
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                (self.root / key).unlink()
            folders.add((self.root / key).parent)
        for folder in folders:
            for tmp in folder.glob(f"{_TMP_PREFIX}*"):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()
