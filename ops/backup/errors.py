"""The backup errors: each says what failed and how to fix it."""

from __future__ import annotations

from ops.errors import EXIT_USAGE, BackupError


class BackupIdInvalid(BackupError):
    """A backup id that is not ``YYYYMMDDTHHMMSSZ-xxxxxx`` (path tricks included)."""

    exit_code = EXIT_USAGE


class BackupNotFound(BackupError):
    """No complete backup of that id (or none at all, for ``latest``) in the repository."""

    exit_code = EXIT_USAGE


class BackupCorrupt(BackupError):
    """An artifact's size or sha256 differs from its manifest, or it does not decode."""


class RepositoryError(BackupError):
    """A repository could not be read or written (after its own retries)."""


class PgDumpUnusable(BackupError):
    """No pg_dump, or one older than the server (it would refuse or dump wrongly)."""

    exit_code = EXIT_USAGE
