"""The one error tree of empire-ops.

Every error a user can cause or meet is an :class:`OpsError`. Each domain has a
base class that carries the process exit code; the CLI maps them to an exit in
one place (``ops.cli``). Exit codes never change meaning:

====  =====================================================================
code  meaning
====  =====================================================================
0     ok (warnings allowed)
1     a check found errors, or an operation failed
2     usage or configuration error
3     a required secret is missing or invalid
4     a dependency is unreachable (database, Vault, AWS, S3, SMTP)
5     busy: another run holds the lock
10    internal error (a bug: please report it with ``--debug`` output)
====  =====================================================================

Faults of the machine rather than of empire-ops have their code too, never 10:
a path that cannot be written or read (read-only file system, permission
denied, a file where a folder must be, a folder where a file must be, a name
too long) is 2, because the user fixes it by choosing or repairing the path; a
full disk or exhausted quota is 1, an operation that failed; an environment
too large to start a program with is 2. The sites that write files raise
:class:`PathNotUsable` or :class:`DiskFull` themselves (see
:func:`storage_error`); the CLI handler maps any OSError of these kinds that
still escapes the same way, as a safety net.
"""

from __future__ import annotations

import errno as _errno
import os
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SECRETS = 3
EXIT_UNREACHABLE = 4
EXIT_BUSY = 5
EXIT_INTERNAL = 10


class OpsError(Exception):
    """Base of every expected error. ``hint`` tells the user how to fix it."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    @property
    def message_with_hint(self) -> str:
        """``message (hint: hint)``: for a finding, where the hint has no line of its own."""
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ConfigError(OpsError):
    """The configuration (file, flags or environment) is invalid."""

    exit_code = EXIT_USAGE

    def __init__(
        self, message: str, *, hint: str | None = None, problems: list[str] | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []


class UsageError(OpsError):
    """A command was called with arguments that cannot work together."""

    exit_code = EXIT_USAGE


class DependencyUnreachable(OpsError):
    """A service empire-ops needs (database, Vault, AWS, S3, SMTP) did not answer."""

    exit_code = EXIT_UNREACHABLE


class LockBusy(OpsError):
    """Another run holds the lock for this operation."""

    exit_code = EXIT_BUSY


class DatabaseError(OpsError):
    """A database operation failed (the server answered, but with an error).

    ``sqlstate`` is the server's error code when there is one (``42501`` for
    a missing privilege), so callers can tell cases apart without the driver;
    ``server_message`` is the server's own one-line text (with its detail),
    for callers that put it in a message of their own.
    """

    exit_code = EXIT_FAILED

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        sqlstate: str | None = None,
        server_message: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.sqlstate = sqlstate
        self.server_message = server_message


class DatabaseUnreachable(DependencyUnreachable):
    """The database did not accept a connection within the connect timeout."""


class EmbeddedPostgresError(OpsError):
    """The embedded PostgreSQL could not be initialised, started or stopped."""

    exit_code = EXIT_FAILED


class SecretsError(OpsError):
    """A required secret is missing or invalid."""

    exit_code = EXIT_SECRETS


class MigrationError(OpsError):
    """A migration could not be applied, reverted or verified."""

    exit_code = EXIT_FAILED


class BackupError(OpsError):
    """A backup, restore or drill failed."""

    exit_code = EXIT_FAILED


class AlertError(OpsError):
    """An alert could not be rendered or delivered."""

    exit_code = EXIT_FAILED


class StorageError(OpsError, OSError):
    """A file or folder empire-ops needs could not be written or read.

    It is also an OSError (with ``errno`` and ``filename``), so code that
    treats a failed write as best-effort (``except OSError``) keeps working.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        errno: int | None = None,
        filename: str | None = None,
    ) -> None:
        OpsError.__init__(self, message, hint=hint)
        self.errno = errno
        self.filename = filename


class PathNotUsable(StorageError):
    """A path is read-only, not permitted, not a folder, a folder, or too long."""

    exit_code = EXIT_USAGE


class DiskFull(StorageError):
    """The disk (or the quota) holding a path is full."""

    exit_code = EXIT_FAILED


class EnvironmentTooLarge(UsageError):
    """The environment and arguments are too large to start a program with (E2BIG)."""


_NOT_USABLE = {
    _errno.EROFS: "the file system is read-only",
    _errno.EACCES: "permission denied",
    _errno.EPERM: "the operation is not permitted",
    _errno.ENOTDIR: "a part of the path is a file, not a folder",
    _errno.EISDIR: "it is a folder, not a file",
    _errno.ENAMETOOLONG: "the name is too long for the file system",
    _errno.ENOENT: "it, or a folder on the way, does not exist",
    _errno.ELOOP: "the path has a symbolic-link loop",
}
_FULL = {_errno.ENOSPC: "the disk is full", _errno.EDQUOT: "the disk quota is exhausted"}


def storage_error(
    exc: OSError, action: str, path: os.PathLike[str] | str | None = None
) -> OpsError | None:
    """The OpsError for ``exc`` (an OSError met while doing ``action`` on ``path``), or None.

    ``action`` is a verb phrase such as "write" or "create the state folder".
    Returns None for an errno that is not a fault of the machine's paths or
    space (then the caller lets it propagate as the bug it is).
    """
    where = path if path is not None else exc.filename
    target = f" {where}" if where else ""
    folder = _nearest_existing(Path(where)) if where else None
    if exc.errno in _NOT_USABLE:
        reason = _NOT_USABLE[exc.errno]
        hint = "choose a writable path"
        if exc.errno in (_errno.EACCES, _errno.EPERM) and folder:
            hint = f"make {folder} writable for this user, or choose another path"
        elif exc.errno == _errno.EROFS:
            hint = (
                "choose a path on a writable file system (for the state folder: project.state_dir)"
            )
        elif exc.errno == _errno.ENOTDIR:
            hint = "a file stands where a folder is expected; move it, or choose another path"
        elif exc.errno == _errno.EISDIR:
            hint = "give a file name, not a folder"
        elif exc.errno == _errno.ENAMETOOLONG:
            hint = "choose a shorter name or path"
        elif exc.errno == _errno.ENOENT:
            hint = "create the folder, or choose an existing path"
        return PathNotUsable(
            f"cannot {action}{target}: {reason}",
            hint=hint,
            errno=exc.errno,
            filename=str(where) if where else None,
        )
    if exc.errno in _FULL:
        return DiskFull(
            f"cannot {action}{target}: {_FULL[exc.errno]}",
            hint="free some space on that disk and rerun; nothing was half-written",
            errno=exc.errno,
            filename=str(where) if where else None,
        )
    if exc.errno == _errno.E2BIG:
        return EnvironmentTooLarge(
            f"cannot {action}{target}: the environment and arguments are too large "
            "for the operating system",
            hint="pass fewer or smaller values (for `run`: --only NAMES), or unset large variables",
        )
    return None


def _nearest_existing(path: Path) -> Path | None:
    for candidate in [path, *path.parents]:
        try:
            if candidate.is_dir():
                return candidate
        except OSError:
            return None
    return None
