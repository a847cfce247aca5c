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
"""

from __future__ import annotations

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
    """A database operation failed (the server answered, but with an error)."""

    exit_code = EXIT_FAILED


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
