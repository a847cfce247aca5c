"""Small file-system helpers: atomic writes with safe modes, folders, file locks.

Every helper turns a fault of the machine (read-only file system, permission
denied, a file where a folder must be, a full disk) into the
:class:`~ops.errors.StorageError` that says which path and how to fix it, so
no ordinary fault reaches the CLI as an internal error.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from ops.errors import LockBusy, storage_error


def _raise_storage(exc: OSError, action: str, path: Path) -> NoReturn:
    """Re-raise ``exc`` as its StorageError when it is one; else let it propagate."""
    mapped = storage_error(exc, action, path)
    if mapped is not None:
        raise mapped from exc
    raise exc


def ensure_dir(path: Path, *, mode: int = 0o777, purpose: str = "folder") -> Path:
    """Create ``path`` (and its parents) if needed; return it.

    ``mode`` applies to the folders created here (umask still applies).
    Raises PathNotUsable (exit 2) or DiskFull (exit 1) naming ``purpose``,
    e.g. "the state folder".
    """
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
    except FileExistsError as exc:  # a file stands where the folder should be
        _raise_storage(OSError(errno.ENOTDIR, str(exc), str(path)), f"create {purpose}", path)
    except OSError as exc:
        _raise_storage(exc, f"create {purpose}", path)
    return path


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half.

    The data goes to a temporary file in the same folder, is fsynced, given
    ``mode`` and renamed over ``path``. On any error the temporary file is
    removed and ``path`` is left as it was. Raises PathNotUsable (exit 2) for a
    path that cannot be written, DiskFull (exit 1) for a full disk; both are
    OSErrors too.
    """
    # A private file (no group/other bits) gets a private folder when we create it.
    ensure_dir(path.parent, mode=0o700 if not mode & 0o077 else 0o777)
    try:
        _write_replacing(path, data, mode)
    except OSError as exc:
        _raise_storage(exc, "write", path)
    with contextlib.suppress(OSError):
        _fsync_dir(path.parent)


def _write_temp(path: Path, data: bytes, mode: int) -> str:
    """Write ``data`` to a new temporary file beside ``path`` (fsynced); return its name.

    The caller renames or links it into place and removes it on failure.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _write_replacing(path: Path, data: bytes, mode: int) -> None:
    tmp = _write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def create_exclusive(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Create ``path`` holding ``data``; raise FileExistsError if it already exists.

    Atomic and exclusive at once: the complete file is written under a
    temporary name and then hard-linked to ``path`` (``link`` fails when the
    name exists, like ``O_EXCL``), so no reader ever sees it half-written and
    two writers cannot both win. Other faults as :func:`atomic_write_bytes`.
    """
    ensure_dir(path.parent, mode=0o700 if not mode & 0o077 else 0o777)
    tmp = ""
    try:
        tmp = _write_temp(path, data, mode)
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        _raise_storage(exc, "write", path)
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    with contextlib.suppress(OSError):
        _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the block (created if missing).

    Waits up to ``timeout`` seconds for another process to release it, then
    raises LockBusy (exit 5) naming ``what``. The kernel drops the lock when
    the holder dies, so a killed run never leaves it stuck. Raises
    PathNotUsable or DiskFull when the lock file cannot be created.
    """
    ensure_dir(path.parent, purpose=f"the folder of {path.name}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        _raise_storage(exc, "create the lock file", path)
    try:
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.05
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(
                        f"another empire-ops run is busy with {what} (waited {timeout:g}s "
                        f"for {path})",
                        hint="wait for it to finish and rerun; raise database.lock_timeout "
                        "to wait longer",
                    ) from None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 0.5)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
