"""What every part of the runner shares: settings, results, the lock, statement execution.

``apply``, ``revert``, ``status`` and ``verify`` build on these. Invariants
(see :mod:`ops.migrate.runner` for the whole list): a run that writes holds
the session-level advisory lock ``migrate``; SQL from files is sent without
parameters (files use ``%`` in ``format()``); a failed statement becomes a
MigrationFailed naming file, line and the server's message.
"""

from __future__ import annotations

import getpass
import re
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops import db
from ops.errors import DatabaseError
from ops.migrate import history
from ops.migrate.errors import ExtensionUnavailable, MigrationFailed
from ops.migrate.files import SHIPPED_DIR, Migration, Statement, load_migrations
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.config import Config

LOCK_NAME = "migrate"
DEFAULT_LOCK_TIMEOUT = 10.0
DEFAULT_HISTORY_SCHEMA = "ops"

_EXTENSION_RE = re.compile(
    r"create\s+extension\s+(?:if\s+not\s+exists\s+)?\"?(?P<name>[A-Za-z0-9_\-]+)\"?",
    re.IGNORECASE,
)
# Server errors that mean "this extension is not installed on the server".
_NO_EXTENSION_STATES = {"0A000", "58P01"}


def default_actor() -> str:
    """Who is running: ``user@host`` (recorded as ``applied_by``)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in a container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class RunnerSettings:
    """What the runner takes from config (defaults when there is none)."""

    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    history_schema: str = DEFAULT_HISTORY_SCHEMA
    dirs: tuple[Path, ...] = (SHIPPED_DIR,)
    # The folder shared with Supabase CLI (``[migrate] supabase_dir``, when it
    # exists). It then replaces the shipped folder: the Empire schema is applied
    # from the copies adopted into it, so both tools see one history.
    shared_dir: Path | None = None

    @classmethod
    def from_config(cls, config: Config | None) -> RunnerSettings:
        if config is None:
            return cls()
        extra = [config.resolve_path(d) for d in config.get("migrate.dirs")]
        name = config.get("migrate.supabase_dir")
        shared = config.resolve_path(name) if name else None
        if shared is not None and not shared.is_dir():
            shared = None
        if shared is None:
            dirs: tuple[Path, ...] = (SHIPPED_DIR, *extra)
        else:
            same = shared.resolve()
            dirs = (shared, *(d for d in extra if d.resolve() != same))
        return cls(
            lock_timeout=config.seconds("database.lock_timeout"),
            history_schema=config.get("migrate.history_schema"),
            dirs=dirs,
            shared_dir=shared,
        )

    @property
    def project_dirs(self) -> tuple[Path, ...]:
        """The folders of the project's own files (never the shipped one)."""
        return tuple(d for d in self.dirs if d != SHIPPED_DIR)


def migrations_for(config: Config | None) -> list[Migration]:
    """The shipped migrations plus the folders named in ``[migrate] dirs``, by version."""
    return load_migrations(list(RunnerSettings.from_config(config).dirs))


def resolve_migrations(
    config: Config | None, migrations: Sequence[Migration] | None
) -> tuple[RunnerSettings, list[Migration]]:
    """The runner settings from ``config`` and the migrations to use (given, or loaded)."""
    settings = RunnerSettings.from_config(config)
    local = list(migrations) if migrations is not None else load_migrations(list(settings.dirs))
    return settings, local


# -- results --------------------------------------------------------------------------
@dataclass
class StepOutcome:
    """One migration applied or reverted (or planned, on a dry run)."""

    version: str
    name: str
    direction: str
    statements: int
    no_transaction: bool
    duration_ms: int = 0


@dataclass
class MigrateResult:
    """What ``migrate up``/``down`` did (or would do, with ``dry_run``)."""

    target: str
    direction: str
    dry_run: bool
    steps: list[StepOutcome] = field(default_factory=list)
    rebuilt_indexes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Empire migrations written into the folder shared with Supabase CLI.
    adopted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- connection and lock --------------------------------------------------------------
@contextmanager
def locked(target: DatabaseTarget, settings: RunnerSettings) -> Iterator[db.Connection[Any]]:
    """An autocommit connection holding the ``migrate`` lock, with the history tables made.

    Raises LockBusy (exit 5) when another run holds the lock for longer than
    ``settings.lock_timeout``, DatabaseUnreachable (exit 4).
    """
    conn = db.connect(
        target.dsn, target.options, autocommit=True, session=f"the '{LOCK_NAME}' advisory lock"
    )
    try:
        with db.advisory_lock(conn, LOCK_NAME, settings.lock_timeout):
            history.ensure_history(conn, settings.history_schema)
            yield conn
    finally:
        conn.close()


def read_applied(target: DatabaseTarget, settings: RunnerSettings) -> dict[str, history.AppliedRow]:
    """The applied versions of ``target``, read without the lock (dry runs). Read-only."""
    with db.connect(target.dsn, target.options, autocommit=True) as conn:
        return history.read_applied(conn, settings.history_schema)


# -- running statements ---------------------------------------------------------------
def server_error(exc: BaseException) -> tuple[str, str | None]:
    """(one-line server message, SQLSTATE) of a driver error or a mapped DatabaseError."""
    if isinstance(exc, DatabaseError) and exc.server_message:
        return exc.server_message, exc.sqlstate
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) or str(exc).strip().splitlines()[0]
    detail = getattr(diag, "message_detail", None)
    text = f"{primary} ({detail})" if detail else primary
    return text, getattr(exc, "sqlstate", None)


def failure(
    mig_file: str, stmt: Statement, index: int, total: int, exc: BaseException, rolled_back: bool
) -> MigrationFailed:
    """The MigrationFailed (or ExtensionUnavailable) for statement ``index`` of a file."""
    message, sqlstate = server_error(exc)
    where = f"{mig_file}:{stmt.line} (statement {index}/{total}: {stmt.summary})"
    ext = _EXTENSION_RE.search(stmt.sql)
    if ext and sqlstate in _NO_EXTENSION_STATES:
        name = ext.group("name")
        return ExtensionUnavailable(
            f"{mig_file}: the PostgreSQL extension `{name}` is not available on this server "
            f"(server said: {message})",
            extension=name,
            hint=f"install the `{name}` extension on the server (for pgvector: the "
            "postgresql-<major>-pgvector package), or use the embedded PostgreSQL 18, "
            "which ships it",
        )
    state = f" [{sqlstate}]" if sqlstate else ""
    outcome = (
        "rolled back; schema and history are unchanged"
        if rolled_back
        else "earlier statements of this no-transaction file stay applied"
    )
    hint = "fix the statement and rerun `empire-ops migrate up`"
    if sqlstate == "42501":  # a missing privilege: name it and the GRANT that gives it
        hint = getattr(exc, "hint", None) or db.map_error(exc).hint or hint
    if sqlstate == "25001":
        hint = "mark the file with a '-- migrate:no-transaction' line (CONCURRENTLY cannot run " \
            "in a transaction)"  # fmt: skip
    return MigrationFailed(f"{where} failed: {message}{state}; {outcome}", hint=hint)


def run_statements(
    conn: db.Connection[Any], filename: str, statements: list[Statement], *, rolled_back: bool
) -> None:
    """Run a file's statements in order; raise MigrationFailed for the first that fails."""
    for i, stmt in enumerate(statements, start=1):
        try:
            db.run_query(conn, stmt.sql)
        except DatabaseError as exc:
            raise failure(filename, stmt, i, len(statements), exc, rolled_back) from None


def strip_comments(sql: str) -> str:
    """``sql`` without its whole-line ``--`` comments."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return "\n".join(lines)


def ms_since(started: float) -> int:
    """Milliseconds since the ``time.monotonic()`` value ``started``."""
    return int((time.monotonic() - started) * 1000)


def new_migration(config: Config | None, name: str, directory: Path | None = None) -> Path:
    """`migrate new`: create an empty migration in ``directory`` or the project's folder.

    Without ``directory`` it is the first of ``[migrate] dirs`` (your project's
    folder, e.g. ``supabase/migrations``); never the shipped folder inside the
    package. Raises UsageError (exit 2) when no folder is configured or the
    folder is inside an installed package, MigrationFileError for a bad name.
    """
    from ops.errors import UsageError
    from ops.migrate.files import create_migration

    settings = RunnerSettings.from_config(config)
    if directory is None:
        extra = settings.project_dirs
        if not extra:
            raise UsageError(
                "no migration folder to create it in: [migrate] dirs is empty",
                hint="pass --dir DIR, or list your folder in empire-ops.toml: [migrate] dirs = "
                '["supabase/migrations"] (so `migrate up` applies what you create there)',
            )
        directory = extra[0]
    shared = settings.shared_dir
    for_cli = shared is not None and directory.resolve() == shared.resolve()
    return create_migration(name, directory, for_cli=for_cli)
