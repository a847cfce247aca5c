"""The migration errors: each one names the file (and statement) and says how to fix it."""

from __future__ import annotations

from ops.errors import EXIT_USAGE, MigrationError


class MigrationFileError(MigrationError):
    """A migration file is misnamed, unreadable, duplicated or badly structured."""


class MigrationFailed(MigrationError):
    """A statement of a migration failed on the server; the transaction was rolled back."""


class ExtensionUnavailable(MigrationFailed):
    """A migration needs a PostgreSQL extension the server does not ship."""

    def __init__(self, message: str, *, extension: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.extension = extension


class OutOfOrder(MigrationError):
    """Local migrations older than the newest applied one are not applied yet."""


class DownRefused(MigrationError):
    """A down migration was refused: up-only files, or no --yes outside dev."""


class HistoryError(MigrationError):
    """The history tables are missing something the runner needs, or disagree."""


class NotConfirmed(MigrationError):
    """A write to a non-embedded database in an environment nobody chose: needs --yes or --env."""

    exit_code = EXIT_USAGE
