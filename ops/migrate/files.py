"""Migration files: names, sections, checksums and statement splitting.

A file is ``<digits>_<name>.sql`` with ``-- migrate:up`` and ``-- migrate:down``
sections; ``-- migrate:no-transaction`` marks a file that must run outside a
transaction (``CREATE INDEX CONCURRENTLY``). A file without markers (Supabase
CLI's ``supabase/migrations`` format) is all "up", and so is up-only, as is a
file without a down section.

The Supabase CLI runs every line of a file, so a file in the folder it shares
with empire-ops keeps its down section in comments: ``-- migrate:down:commented``
and then each line prefixed ``-- `` (an empty line as ``--``). That form is an
exact, invertible transform of the plain one (:func:`comment_out_down`,
:func:`uncomment_down`), and the checksum is taken of the plain form, so the
same migration has the same checksum in either form. Nothing here touches a
database.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from ops.migrate.errors import MigrationFileError

SHIPPED_DIR = Path(__file__).resolve().parent / "migrations"
FILENAME_RE = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9_.\-]+)\.sql$")
_MARKER_RE = re.compile(
    r"^--\s*migrate:(?P<kind>up|down:commented|down|no-transaction)\b.*$", re.IGNORECASE
)
_COMMENTED_TAG = "migrate:down:commented"
_TAG_START = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_NAME_RE = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a section, and the file line it starts on."""

    sql: str
    line: int

    @property
    def summary(self) -> str:
        """The first line of the statement, shortened, for messages."""
        first = self.sql.strip().splitlines()[0] if self.sql.strip() else ""
        return first if len(first) <= 100 else first[:97] + "..."


@dataclass(frozen=True)
class Migration:
    """One migration file. ``checksum`` is the sha256 of the file's bytes."""

    version: str
    name: str
    path: Path
    up_sql: str
    down_sql: str | None
    no_transaction: bool
    checksum: str
    up_only: bool
    up_line: int = 1
    down_line: int = 1
    down_commented: bool = False

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def sort_key(self) -> tuple[int, str]:
        return version_key(self.version)

    @cached_property
    def up_statements(self) -> list[Statement]:
        return split_statements(self.up_sql, self.up_line)

    @cached_property
    def down_statements(self) -> list[Statement]:
        return split_statements(self.down_sql or "", self.down_line)


def version_key(version: str) -> tuple[int, str]:
    """Order versions numerically (Supabase's timestamps and short numbers alike)."""
    return (int(version), version) if version.isdigit() else (0, version)


def parse_migration(path: Path, data: bytes | None = None) -> Migration:
    """Read one migration file; raise MigrationFileError naming it when it is malformed."""
    match = FILENAME_RE.match(path.name)
    if not match:
        raise MigrationFileError(
            f"{path.name}: migration files are named <YYYYMMDDHHMMSS>_<name>.sql",
            hint=f"rename {path} (e.g. 20260101120000_add_orders.sql)",
        )
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise MigrationFileError(f"{path}: cannot read: {exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MigrationFileError(f"{path.name}: not UTF-8 ({exc})") from None
    checksum = hashlib.sha256(data).hexdigest()
    down_commented = _commented_marker_index(text.split("\n")) is not None
    if down_commented:
        # Parse, and checksum, the plain form: the same migration, either way written.
        text = uncomment_down(text, path.name)
        bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
        checksum = hashlib.sha256(bom + text.encode()).hexdigest()
    sections: dict[str, list[str]] = {}
    starts: dict[str, int] = {}
    seen: list[str] = []
    current: str | None = None
    no_transaction = False
    for lineno, line in enumerate(text.splitlines(), start=1):
        marker = _MARKER_RE.match(line.strip())
        if marker:
            kind = marker.group("kind").lower()
            if kind == "no-transaction":
                no_transaction = True
                continue
            if kind in sections:
                raise MigrationFileError(
                    f"{path.name}:{lineno}: a second '-- migrate:{kind}' section",
                    hint="keep one up and one down section per file",
                )
            current = kind
            seen.append(kind)
            sections[kind] = []
            starts[kind] = lineno + 1
            continue
        if current is not None:
            sections[current].append(line)
    if not seen:
        # Supabase CLI's format: the whole file is the up section.
        up_sql, up_line, down_sql = text, 1, None
    else:
        if "up" not in sections:
            raise MigrationFileError(
                f"{path.name}: has '-- migrate:down' but no '-- migrate:up' section",
                hint="add '-- migrate:up' above the statements that apply the change",
            )
        if seen[0] != "up":
            raise MigrationFileError(
                f"{path.name}: the '-- migrate:up' section must come before '-- migrate:down'"
            )
        up_sql, up_line = "\n".join(sections["up"]), starts["up"]
        down_sql = "\n".join(sections["down"]) if "down" in sections else None
    return Migration(
        version=match.group("version"),
        name=match.group("name"),
        path=path,
        up_sql=up_sql,
        down_sql=down_sql,
        no_transaction=no_transaction,
        checksum=checksum,
        up_only=down_sql is None,
        up_line=up_line,
        down_line=starts.get("down", 1),
        down_commented=down_commented,
    )


def _marker_kind(line: str) -> str | None:
    marker = _MARKER_RE.match(line.strip())
    return marker.group("kind").lower() if marker else None


def _commented_marker_index(lines: Sequence[str]) -> int | None:
    return next((i for i, ln in enumerate(lines) if _marker_kind(ln) == "down:commented"), None)


def comment_out_down(text: str) -> str:
    """``text`` with its down section commented out, for a folder the Supabase CLI runs.

    The ``-- migrate:down`` marker becomes ``-- migrate:down:commented`` and
    each later line gets ``-- `` in front (an empty line becomes ``--``).
    Exactly undone by :func:`uncomment_down`. A file without a plain down
    section is returned unchanged.
    """
    lines = text.split("\n")
    at = next((i for i, ln in enumerate(lines) if _marker_kind(ln) == "down"), None)
    if at is None:
        return text
    lines[at] = re.sub(r"(migrate:down)", r"\1:commented", lines[at], count=1, flags=re.I)
    last = len(lines) - 1
    for i in range(at + 1, len(lines)):
        if i == last and lines[i] == "":
            break  # the file's final newline
        lines[i] = f"-- {lines[i]}" if lines[i] else "--"
    return "\n".join(lines)


def uncomment_down(text: str, filename: str = "migration") -> str:
    """The plain form of a file whose down section is commented out (see :func:`comment_out_down`).

    Raises MigrationFileError naming the line when a line after the marker is
    not commented out: the Supabase CLI would run it when it applies the file.
    """
    lines = text.split("\n")
    at = _commented_marker_index(lines)
    if at is None:
        return text
    lines[at] = re.sub(r"(migrate:down):commented", r"\1", lines[at], count=1, flags=re.I)
    last = len(lines) - 1
    for i in range(at + 1, len(lines)):
        line = lines[i]
        if i == last and line == "":
            break
        if line.rstrip("\r") == "--":
            lines[i] = line[2:]
        elif line.startswith("-- "):
            lines[i] = line[3:]
        else:
            raise MigrationFileError(
                f"{filename}:{i + 1}: this line of the commented-out down section is not a "
                "comment, so the Supabase CLI would run it with the up section",
                hint="start every line after '-- migrate:down:commented' with '-- '",
            )
    return "\n".join(lines)


def load_migrations(dirs: Sequence[Path] | None = None) -> list[Migration]:
    """Every migration in ``dirs`` (default: the shipped Empire schema), ordered by version.

    Files that do not end in ``.sql`` are ignored. Raises MigrationFileError for
    a misnamed ``.sql`` file, a missing folder, or a version present twice.
    """
    folders = list(dirs) if dirs is not None else [SHIPPED_DIR]
    found: dict[str, Migration] = {}
    for folder in folders:
        if not folder.is_dir():
            raise MigrationFileError(
                f"migration folder {folder} does not exist",
                hint="create it, or remove it from [migrate] dirs in empire-ops.toml",
            )
        for path in sorted(folder.glob("*.sql")):
            migration = parse_migration(path)
            other = found.get(migration.version)
            if other is not None:
                raise MigrationFileError(
                    f"version {migration.version} is used twice: {other.path} and {path}",
                    hint="give one of them a new timestamp (`empire-ops migrate new NAME`)",
                )
            found[migration.version] = migration
    return sorted(found.values(), key=lambda m: m.sort_key)


def split_statements(sql: str, first_line: int = 1) -> list[Statement]:
    """Split ``sql`` into statements at top-level semicolons.

    Understands line and (nested) block comments, single-quoted and E'' strings,
    quoted identifiers and dollar quoting, so ``do $$ ... ; ... $$`` is one
    statement. Comment-only fragments are dropped. ``line`` is absolute when
    ``first_line`` is the section's first line in the file.
    """
    out: list[Statement] = []
    i, n = 0, len(sql)
    start = 0
    has_code = False
    code_start = 0
    while i < n:
        ch = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = sql.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch == "/" and nxt == "*":
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            continue
        if ch == ";":
            if has_code:
                out.append(_statement(sql, start, i, code_start, first_line))
            i += 1
            start, has_code = i, False
            continue
        if not ch.isspace() and not has_code:
            has_code, code_start = True, i
        if ch == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not sql[i - 2].isalnum())
            i = _skip_quoted(sql, i, "'", backslash=escapes)
            continue
        if ch == '"':
            i = _skip_quoted(sql, i, '"', backslash=False)
            continue
        if ch == "$":
            tag = _TAG_START.match(sql, i)
            if tag and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                close = sql.find(tag.group(0), tag.end())
                i = n if close < 0 else close + len(tag.group(0))
                continue
        i += 1
    if has_code:
        out.append(_statement(sql, start, n, code_start, first_line))
    return out


def _skip_quoted(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    i += 1
    n = len(sql)
    while i < n:
        ch = sql[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _statement(sql: str, start: int, end: int, code_start: int, first_line: int) -> Statement:
    text = sql[start:end].strip()
    return Statement(sql=text, line=first_line + sql.count("\n", 0, code_start))


def sql_code(sql: str) -> str:
    """``sql`` without comments, its whitespace outside literals collapsed to one space.

    Two texts with equal ``sql_code`` run the same statements: used to compare a
    file with the statements the Supabase CLI stored when it applied it.
    """
    pieces: list[tuple[str, bool]] = []  # (text, is_code)
    i, n, start = 0, len(sql), 0

    def code_until(end: int, replacement: str = "") -> None:
        pieces.append((sql[start:end] + replacement, True))

    while i < n:
        ch, nxt = sql[i], sql[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            code_until(i, " ")
            end = sql.find("\n", i)
            i = start = n if end < 0 else end
            continue
        if ch == "/" and nxt == "*":
            code_until(i, " ")
            depth, i = 1, i + 2
            while i < n and depth:
                step = 2 if sql.startswith(("/*", "*/"), i) else 1
                depth += 1 if sql.startswith("/*", i) else -1 if sql.startswith("*/", i) else 0
                i += step
            start = i
            continue
        end = -1
        if ch in "'\"":
            escapes = ch == "'" and i > 0 and sql[i - 1] in "eE"
            end = _skip_quoted(sql, i, ch, backslash=escapes)
        elif ch == "$":
            tag = _TAG_START.match(sql, i)
            if tag and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
                close = sql.find(tag.group(0), tag.end())
                end = n if close < 0 else close + len(tag.group(0))
        if end > i:
            code_until(i)
            pieces.append((sql[i:end], False))
            i = start = end
            continue
        i += 1
    code_until(n)
    out, run = [], []  # collapse whitespace across adjacent code pieces, never in literals
    for text, code in pieces:
        if code:
            run.append(text)
            continue
        out += [re.sub(r"\s+", " ", "".join(run)), text]
        run = []
    out.append(re.sub(r"\s+", " ", "".join(run)))
    return "".join(out).strip()


def statements_code(statements: Iterable[str]) -> str:
    """The statements as one comparable text: :func:`sql_code` of each, ``;``-separated.

    Each text is split again first, so how a tool split a file does not matter.
    """
    out = []
    for text in statements:
        for stmt in split_statements(text):
            code = sql_code(stmt.sql).rstrip(";").strip()
            if code:
                out.append(code)
    return ";\n".join(out)


MAX_NAME_LENGTH = 100


def check_migration_name(name: str) -> str:
    """``name`` when it is a usable migration name: ``[a-z0-9_]``, 1 to 100 characters.

    The name becomes part of a file name (``<version>_<name>.sql``), which
    every file system and tool must take as is. Raises UsageError (exit 2)
    with a name that would do.
    """
    from ops.errors import UsageError

    slug = _NAME_RE.sub("_", name.lower()).strip("_")
    fix = (
        f"use e.g. {slug[:MAX_NAME_LENGTH].rstrip('_')!r}" if slug else "use words, e.g. add_orders"
    )
    if len(name) > MAX_NAME_LENGTH:
        raise UsageError(
            f"the migration name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}",
            hint=f"say it in fewer words: {fix}",
        )
    if not re.fullmatch(r"[a-z0-9_]*[a-z0-9][a-z0-9_]*", name):
        raise UsageError(
            f"{name!r} is not a usable migration name: use lower-case letters, digits "
            "and underscores only",
            hint=fix,
        )
    return name


def new_migration_path(folder: Path, name: str, existing: Iterable[Migration] = ()) -> Path:
    """The path of a new migration named ``name`` in ``folder``, versioned now (UTC).

    The version is bumped past any existing one so the new file sorts last.
    Raises UsageError for a name :func:`check_migration_name` refuses.
    """
    slug = check_migration_name(name)
    stamp = int(datetime.now(UTC).strftime("%Y%m%d%H%M%S"))
    newest = max((int(m.version) for m in existing if m.version.isdigit()), default=0)
    taken = {p.name.split("_", 1)[0] for p in folder.glob("*.sql")} if folder.is_dir() else set()
    version = max(stamp, newest + 1)
    while str(version) in taken:
        version += 1
    return folder / f"{version}_{slug}.sql"


NEW_TEMPLATE = """\
-- {name}: say what this migration changes and why.
-- Add `-- migrate:no-transaction` on its own line for CREATE INDEX CONCURRENTLY.

-- migrate:up


-- migrate:down

"""


def inside_installed_package(folder: Path) -> bool:
    """True when ``folder`` lies in an installed Python package, never a place to author files.

    That is anything under ``site-packages``/``dist-packages``, and the
    empire-ops package itself unless it runs from a source checkout (a
    ``pyproject.toml`` beside it), where the shipped migrations are authored.
    """
    resolved = folder.expanduser().resolve()
    if {"site-packages", "dist-packages"} & set(resolved.parts):
        return True
    package = Path(__file__).resolve().parents[1]  # the ``ops`` package
    if not resolved.is_relative_to(package):
        return False
    return not (package.parent / "pyproject.toml").is_file()


def create_migration(name: str, folder: Path, *, for_cli: bool = False) -> Path:
    """Write an empty migration ``<version>_<name>.sql`` (up and down sections) and return it.

    ``for_cli``: the folder is shared with Supabase CLI, so the down section is
    written commented out (``-- migrate:down:commented``).

    Raises MigrationFileError for an unusable name, UsageError (exit 2) for a
    ``folder`` inside an installed package (an upgrade would delete the file,
    and nobody else would see it).
    """
    from ops.errors import UsageError
    from ops.fsutil import atomic_write_text

    if inside_installed_package(folder):
        raise UsageError(
            f"{folder} is inside an installed package: a migration written there is lost on "
            "the next upgrade",
            hint="create it in your project's migration folder, e.g. --dir supabase/migrations, "
            'and list that folder in empire-ops.toml: [migrate] dirs = ["supabase/migrations"]',
        )
    existing = load_migrations([folder]) if folder.is_dir() else []
    path = new_migration_path(folder, name, existing)
    text = NEW_TEMPLATE.format(name=path.stem.split("_", 1)[1])
    if for_cli:
        text = comment_out_down(text).replace(
            "-- migrate:down:commented\n",
            "-- migrate:down:commented (Supabase CLI runs every line: keep each line "
            "below commented out with '-- ')\n",
        )
    atomic_write_text(path, text)
    return path
