"""A port of the Supabase CLI's migration bookkeeping, to check empire-ops against it.

Ported from supabase/cli (MIT licence), ``apps/cli-go/pkg/migration``
(``history.go``, ``list.go``, ``apply.go``, ``file.go``), ``pkg/parser``
(``state.go``, ``token.go``) and ``internal/migration/up/up.go``, at the commit
named in tests/supabase/README.md. It keeps the CLI's behaviour, quirks
included, so that "the CLI would find nothing pending" can be asserted against
a real database without the CLI binary:

- :func:`list_local_migrations` / :func:`list_remote_migrations` read the
  folder and the history table as ``supabase migration list`` does;
- :func:`find_pending_migrations` is ``FindPendingMigrations`` plus ``up``'s
  ``--include-all`` handling, raising the CLI's two errors;
- :func:`cli_apply_migration` applies one file as ``supabase db push`` does:
  the history table made with the CLI's exact DDL, the file split by a port of
  the CLI's statement splitter, every statement and the history row in one
  transaction.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors

# -- pkg/migration/history.go: the statements, verbatim ----------------------------------
SET_LOCK_TIMEOUT = "SET lock_timeout = '4s'"
CREATE_VERSION_SCHEMA = "CREATE SCHEMA IF NOT EXISTS supabase_migrations"
CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations "
    "(version text NOT NULL PRIMARY KEY)"
)
ADD_STATEMENTS_COLUMN = (
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[]"
)
ADD_NAME_COLUMN = (
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text"
)
# The CLI binds $1..$3; psycopg spells the same parameters %s.
INSERT_MIGRATION_VERSION = (
    "INSERT INTO supabase_migrations.schema_migrations(version, name, statements) "
    "VALUES(%s, %s, %s)"
)
SELECT_VERSION_TABLE = (
    "SELECT version, coalesce(name, '') as name, statements "
    "FROM supabase_migrations.schema_migrations"
)
LIST_MIGRATION_VERSION = (
    "SELECT version FROM supabase_migrations.schema_migrations ORDER BY version"
)

# -- pkg/migration/apply.go: the errors --------------------------------------------------
ERR_MISSING_REMOTE = (
    "Found local migration files to be inserted before the last migration on remote database."
)
ERR_MISSING_LOCAL = "Remote migration versions not found in local migrations directory."


class MissingLocalMigrations(Exception):
    """``ErrMissingLocal``: versions in the history table with no local file."""

    def __init__(self, versions: list[str]) -> None:
        super().__init__(ERR_MISSING_LOCAL)
        self.versions = versions
        # up.go's suggestRevertHistory, without the terminal's bold
        self.suggestion = (
            "Make sure your local git repo is up-to-date. If the error persists, try repairing "
            "the migration history table:\nsupabase migration repair --status reverted "
            + " ".join(versions)
            + "\n\nAnd update local migrations to match remote database:\nsupabase db pull"
        )


class InsertBeforeRemote(Exception):
    """``ErrMissingRemote``: unapplied local files older than the newest applied version."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__(ERR_MISSING_REMOTE)
        self.paths = paths
        # up.go's suggestIgnoreFlag
        self.suggestion = (
            "Rerun the command with --include-all flag to apply these migrations:\n"
            + "\n".join(str(p) for p in paths)
        )


# Go's `^([0-9]+)_(.*)\.sql$`: Go's `$` (no multiline flag) is Python's `\Z`.
MIGRATE_FILE_PATTERN = re.compile(r"^([0-9]+)_(.*)\.sql\Z")
INIT_SCHEMA_PATTERN = re.compile(r"([0-9]{14})_init\.sql")


def _should_skip(name: str) -> bool:
    """``shouldSkip``: a legacy ``<timestamp>_init.sql`` from before 2021-12-09."""
    match = INIT_SCHEMA_PATTERN.search(name)
    return bool(match) and int(match.group(1)) < 20211209000000


def list_local_migrations(folder: Path | str, *keep: Callable[[str], bool]) -> list[Path]:
    """``ListLocalMigrations``: the folder's migration files in file-name order.

    Skips folders, a legacy ``*_init.sql`` when it is the first entry, and any
    name not matching ``<digits>_<name>.sql`` (each skip printed to stderr, as
    the CLI does), and any file a ``keep(version)`` filter refuses. A missing
    folder is an empty list. Raises OSError when the folder cannot be read.
    """
    folder = Path(folder)
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)  # fs.ReadDir sorts by name
    except FileNotFoundError:
        return []
    clean: list[Path] = []
    for i, entry in enumerate(entries):
        if entry.is_dir():
            continue
        filename = entry.name
        if i == 0 and _should_skip(filename):
            print(
                f'Skipping migration {filename}... (replace "init" with a different file name '
                "to apply this migration)",
                file=sys.stderr,
            )
            continue
        match = MIGRATE_FILE_PATTERN.match(filename)
        if not match:
            print(
                f"Skipping migration {filename}... (file name must match pattern "
                '"<timestamp>_name.sql")',
                file=sys.stderr,
            )
            continue
        if all(k(match.group(1)) for k in keep):
            clean.append(folder / filename)
    return clean


def list_remote_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """``ListRemoteMigrations``: applied versions in order; [] when there is no history table."""
    try:
        with conn.transaction():
            rows = conn.execute(LIST_MIGRATION_VERSION).fetchall()
    except pg_errors.UndefinedTable:
        return []
    return [str(r[0]) for r in rows]


def read_migration_table(conn: psycopg.Connection[Any]) -> list[tuple[str, str, list[str] | None]]:
    """``ReadMigrationTable``: (version, name, statements) of every history row."""
    with conn.transaction():
        rows = conn.execute(SELECT_VERSION_TABLE).fetchall()
    return [(str(v), str(n), s) for v, n, s in rows]


def _version_of(path: Path | str) -> str:
    match = MIGRATE_FILE_PATTERN.match(Path(path).name)
    assert match, f"{path} is not a migration file name (list_local_migrations filters these)"
    return match.group(1)


def find_pending_migrations(
    local: Sequence[Path | str], remote: Sequence[str], include_all: bool = False
) -> list[Path | str]:
    """``FindPendingMigrations`` (with ``up --include-all``): the local files to apply.

    ``local`` are sorted file paths (as :func:`list_local_migrations` gives),
    ``remote`` the applied versions in order. Raises MissingLocalMigrations
    (``.versions``) when an applied version has no file, else
    InsertBeforeRemote (``.paths``) when an unapplied file is older than the
    newest applied version, unless ``include_all``, which then returns those
    files followed by the newer ones.
    """
    unapplied: list[Path | str] = []
    missing: list[str] = []
    i = j = 0
    while i < len(remote) and j < len(local):
        version = _version_of(local[j])
        if remote[i] == version:
            i += 1
            j += 1
        elif remote[i] < version:
            missing.append(remote[i])
            i += 1
        else:
            unapplied.append(local[j])  # out-of-order local migration
            j += 1
    if j == len(local):
        missing.extend(remote[i:])
    if missing:
        raise MissingLocalMigrations(missing)
    if unapplied:
        if include_all:
            return [*unapplied, *local[len(remote) + len(unapplied) :]]
        raise InsertBeforeRemote([Path(p) for p in unapplied])
    return list(local[len(remote) :])


# -- pkg/parser: the statement splitter ---------------------------------------------------
# Each state's ``next(r, data)`` sees the rune ``r`` and the current token up to
# and including it (``data``); None emits the token. Go works on UTF-8 bytes;
# every window compared here is ASCII or starts with an ASCII '$', so comparing
# characters gives the same answers.
BEGIN_ATOMIC = "ATOMIC"
END_ATOMIC = "END"
# Go's unicode.IsSpace, which strings.TrimSpace uses (Python's isspace() also
# takes U+001C..U+001F).
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _is_letter(r: str) -> bool:
    return r.isalpha()


def _is_digit(r: str) -> bool:
    return r.isdecimal()  # Go's unicode.IsDigit is category Nd


def _is_identifier_rune(r: str) -> bool:
    return _is_letter(r) or _is_digit(r) or r in "_$"


def _is_begin_atomic(data: str) -> bool:
    offset = len(data) - len(BEGIN_ATOMIC)
    if offset < 0 or data[offset:].casefold() != BEGIN_ATOMIC.casefold():
        return False
    if offset > 0 and _is_identifier_rune(data[offset - 1]):
        return False
    prefix = data[:offset].rstrip(_GO_SPACE)
    offset = len(prefix) - len("BEGIN")
    if offset < 0 or prefix[offset:].casefold() != "begin":
        return False
    if offset == 0:
        return True
    return not _is_identifier_rune(prefix[offset - 1])


class _State:
    def next(self, r: str, data: str) -> _State | None:
        raise NotImplementedError


class _Ready(_State):
    def next(self, r: str, data: str) -> _State | None:
        if r == "$":
            return _Tag(len(data) - 1)
        if r in "'\"":
            return _Quote(r)
        if r == "-":
            return _Comment()
        if r == "/":
            return _Block()
        if r == "\\":
            return _Escape()
        if r == ";":
            return None
        if r == "(":
            return _Atomic(self, ")")
        if r in "cC" and _is_begin_atomic(data):
            return _Atomic(self, END_ATOMIC)
        return self


class _Comment(_State):
    def next(self, r: str, data: str) -> _State | None:
        if r == "-":
            return _Dollar("\n")  # nothing is escaped in a line comment
        return _Ready().next(r, data)


class _Block(_State):
    def __init__(self) -> None:
        self.depth = 0

    def next(self, r: str, data: str) -> _State | None:
        window = data[-2:]
        if window == "/*":
            self.depth += 1
            return self
        if self.depth == 0:
            return _Ready().next(r, data)
        if window == "*/":
            self.depth -= 1
            if self.depth == 0:
                return _Ready()
        return self


class _Quote(_State):
    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter
        self.escape = False

    def next(self, r: str, data: str) -> _State | None:
        if self.escape:
            if r == self.delimiter:  # a doubled quote stays inside
                self.escape = False
                return self
            return _Ready().next(r, data)
        if r == self.delimiter:
            self.escape = True
        return self


class _Dollar(_State):
    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter

    def next(self, r: str, data: str) -> _State | None:
        if data[len(data) - len(self.delimiter) :] == self.delimiter:
            return _Ready()
        return self


class _Tag(_State):
    def __init__(self, offset: int) -> None:
        self.offset = offset

    def next(self, r: str, data: str) -> _State | None:
        if r == "$":
            return _Dollar(data[self.offset :])
        if _is_letter(r) or _is_digit(r) or r == "_":
            return self
        return _Ready().next(r, data)


class _Escape(_State):
    def next(self, r: str, data: str) -> _State | None:
        return _Ready()


class _Atomic(_State):
    def __init__(self, prev: _State, delimiter: str) -> None:
        self.prev = prev
        self.delimiter = delimiter

    def next(self, r: str, data: str) -> _State | None:
        curr = self.prev.next(r, data)
        if curr is not None:
            self.prev = curr
        if isinstance(self.prev, _Ready):
            window = data[len(data) - len(self.delimiter) :]
            if window.casefold() == self.delimiter.casefold():
                return _Ready()
        return self


def split(sql: str, *transforms: Callable[[str], str]) -> list[str]:
    """``parser.Split``: the statements of ``sql``, each kept as written (with its ``;``).

    A token is emitted at each ``;`` outside quotes, comments, dollar quotes,
    parentheses and ``BEGIN ATOMIC … END``; the rest at the end is the last
    one. ``transforms`` are applied to each token; empty results are dropped.
    (The CLI's scanner-capacity limit is not ported.)
    """
    stats: list[str] = []
    state: _State = _Ready()
    start = 0
    tokens: list[str] = []
    for pos, r in enumerate(sql):
        nxt = state.next(r, sql[start : pos + 1])
        if nxt is None:
            tokens.append(sql[start : pos + 1])
            start = pos + 1
            state = _Ready()
        else:
            state = nxt
    if start < len(sql):
        tokens.append(sql[start:])
    for token in tokens:
        for apply in transforms:
            token = apply(token)
        if token:
            stats.append(token)
    return stats


def split_and_trim(sql: str) -> list[str]:
    """``parser.SplitAndTrim``: statements without their trailing ``;`` and outer spaces."""
    return split(sql, lambda t: t.rstrip(";"), lambda t: t.strip(_GO_SPACE))


# -- applying a file as `supabase db push` does ---------------------------------------------
def create_migration_table(conn: psycopg.Connection[Any]) -> None:
    """``CreateMigrationTable``: the CLI's history schema and table, in one transaction."""
    with conn.transaction(), conn.pipeline():
        for statement in (
            SET_LOCK_TIMEOUT,
            CREATE_VERSION_SCHEMA,
            CREATE_VERSION_TABLE,
            ADD_STATEMENTS_COLUMN,
            ADD_NAME_COLUMN,
        ):
            conn.execute(statement, prepare=False)


def migration_from_file(path: Path | str) -> tuple[str, str, list[str]]:
    """``NewMigrationFromFile``: (version, name, statements) of a migration file."""
    path = Path(path)
    statements = split_and_trim(path.read_text(encoding="utf-8"))
    match = MIGRATE_FILE_PATTERN.match(path.name)
    version, name = (match.group(1), match.group(2)) if match else ("", "")
    return version, name, statements


def cli_apply_migration(conn: psycopg.Connection[Any], path: Path | str) -> list[str]:
    """Apply one migration file as ``supabase db push`` does; its statements.

    ``conn`` must not be in autocommit mode. The history table is created
    (``CreateMigrationTable``), the session reset (``RESET ALL``), then every
    statement and the history row (version, name, statements) run in one
    transaction, each statement on its own through the extended protocol as the
    CLI's batch sends it. A failing statement rolls everything back and
    raises the server's error.
    """
    assert not conn.autocommit, "the CLI applies each file in one transaction"
    create_migration_table(conn)
    with conn.transaction():
        conn.execute("RESET ALL")
    version, name, statements = migration_from_file(path)
    with conn.transaction(), conn.pipeline():
        for statement in statements:
            conn.execute(statement, prepare=False)
        if version:
            conn.execute(INSERT_MIGRATION_VERSION, (version, name, statements), prepare=False)
    return statements
