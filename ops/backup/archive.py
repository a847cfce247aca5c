"""pg_dump's custom-format archive: its header and table of contents, read and rewritten
in the stream.

Why: a newer pg_dump copies every column option it reads, and a PostgreSQL
minor release may keep an internal one that only its own pg_dump knows to
leave out. PostgreSQL 15.20 keeps ``pg_attver=N`` on every column; pg_dump
18.6 writes ``ALTER TABLE ONLY t ALTER COLUMN c SET (pg_attver=N);`` into
each TABLE entry, and PostgreSQL 18 refuses it ("unrecognized parameter"),
which fails the whole entry: the table is never created. So when the server
has such options (:func:`internal_column_options`), the dump's TOC is
rewritten as it streams past, without them, as the server's own pg_dump
would have written it; everything after the TOC (the data) passes through
untouched. The archive stays a plain pg_dump archive (``pg_restore`` by hand
still reads it).

The layout is PostgreSQL's ``pg_backup_archiver.c`` (WriteHead, WriteToc,
the custom format's WriteExtraToc): integers are a sign byte and
``intSize`` little-endian bytes, strings an integer length (-1: NULL) and
the bytes. Offsets in the TOC are those of a dump written to a pipe: "not
set", so a TOC of another length does not move anything pg_restore seeks.
An archive this module cannot read is passed through unchanged (logged).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

log = logging.getLogger(__name__)

MAGIC = b"PGDMP"
FORMAT_CUSTOM = 1
_OFFSET_SET = 2  # K_OFFSET_POS_SET: a seekable archive, whose offsets a new TOC would move
# Column options a server keeps for itself, which no other PostgreSQL accepts.
INTERNAL_COLUMN_OPTIONS = ("pg_attver",)
_MAX_TOC = 256 << 20  # a TOC larger than this is not one we rewrite in memory


def internal_column_options(conn: Any) -> list[str]:
    """Which of :data:`INTERNAL_COLUMN_OPTIONS` the server keeps on some user column."""
    from ops import db

    found = []
    for option in INTERNAL_COLUMN_OPTIONS:
        rows = db.run_query(
            conn,
            "select exists (select 1 from pg_attribute a join pg_class c on c.oid = a.attrelid "
            "where c.relnamespace <> 'pg_catalog'::regnamespace and a.attoptions is not null "
            "and exists (select 1 from unnest(a.attoptions) o where o like %s)) as found",
            (option + "=%",),
        )
        if rows[0]["found"]:
            found.append(option)
    return found


def strip_column_options(defn: str, options: tuple[str, ...] | list[str]) -> str:
    """``defn`` without ``options`` in its ``ALTER COLUMN … SET (…)`` statements (a statement
    left with no option is dropped)."""
    names = "|".join(re.escape(o) for o in options)
    option = re.compile(rf"\s*(?:{names})=[^,)]*,?")

    def fix(m: re.Match[str]) -> str:
        inner = option.sub("", m.group(2)).strip().rstrip(",").strip()
        return f"{m.group(1)}({inner});" if inner else ""

    stmt = re.compile(r"(ALTER TABLE ONLY \S+ ALTER COLUMN \S+ SET )\(([^)]*)\);\n?")
    return stmt.sub(fix, defn)


class _Reader:
    """Exact reads of the archive's primitives, keeping every byte read (for a fallback)."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.raw = bytearray()
        self.int_size = 4

    def take(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.source.read(n - len(out))
            if not chunk:
                self.raw += out  # what was read still passes through
                raise EOFError("the archive ended inside its table of contents")
            out += chunk
        self.raw += out
        if len(self.raw) > _MAX_TOC:
            raise ValueError("table of contents too large to rewrite")
        return bytes(out)

    def byte(self) -> int:
        return self.take(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if sign else value

    def str(self) -> bytes | None:
        n = self.int()
        return None if n < 0 else self.take(n)


class _Writer:
    def __init__(self, int_size: int) -> None:
        self.out = bytearray()
        self.int_size = int_size

    def int(self, value: int) -> None:
        self.out.append(1 if value < 0 else 0)
        self.out += abs(value).to_bytes(self.int_size, "little")

    def str(self, value: bytes | None) -> None:
        if value is None:
            self.int(-1)
        else:
            self.int(len(value))
            self.out += value


@dataclass
class _Entry:
    fields: list[tuple[str, Any]]  # (kind, value) in archive order: "int", "str", "raw"

    def get(self, index: int) -> Any:
        return self.fields[index][1]


def _version(major: int, minor: int, rev: int) -> int:
    return (major << 16) | (minor << 8) | rev


def _read_toc(r: _Reader) -> tuple[bytes, list[_Entry], int]:
    """(the header's bytes, the TOC entries, the offset size); raises ValueError/EOFError."""
    if r.take(5) != MAGIC:
        raise ValueError("not a pg_dump archive")
    major, minor, rev = r.take(3)
    version = _version(major, minor, rev)
    r.int_size = r.byte()
    off_size = r.byte()
    if r.byte() != FORMAT_CUSTOM:
        raise ValueError("not a custom-format archive")
    if not _version(1, 14, 0) <= version <= _version(1, 16, 255):
        raise ValueError(f"archive version {major}.{minor}.{rev} is not one this module knows")
    if version >= _version(1, 15, 0):
        r.byte()  # compression algorithm
    else:
        r.int()  # compression level
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        r.int()
    for _ in range(3):  # database name, server version, pg_dump version
        r.str()
    header = bytes(r.raw)
    entries = []
    for _ in range(r.int()):
        fields: list[tuple[str, Any]] = [("int", r.int()), ("int", r.int())]
        fields += [("str", r.str()) for _ in range(4)]  # tableoid, oid, tag, desc
        fields.append(("int", r.int()))  # section
        fields += [("str", r.str()) for _ in range(6)]  # defn, drop, copy, ns, tblspc, am
        if version >= _version(1, 16, 0):
            fields.append(("int", r.int()))  # relkind
        fields += [("str", r.str()), ("str", r.str())]  # owner, "false" (with oids)
        while (dep := r.str()) is not None:
            fields.append(("str", dep))
        fields.append(("str", None))  # the dependency list's terminator
        flag = r.byte()
        if flag == _OFFSET_SET:
            raise ValueError("the archive records data offsets (not written to a pipe)")
        fields.append(("raw", bytes([flag]) + r.take(off_size)))
        entries.append(_Entry(fields))
    return header, entries, off_size


def _write_toc(header: bytes, entries: list[_Entry], int_size: int) -> bytes:
    w = _Writer(int_size)
    w.out += header
    w.int(len(entries))
    for entry in entries:
        for kind, value in entry.fields:
            if kind == "int":
                w.int(value)
            elif kind == "str":
                w.str(value)
            else:
                w.out += value
    return bytes(w.out)


_DEFN = 7  # index of the definition among an entry's fields


class TocRewriter(io.RawIOBase):
    """A readable stream: ``source`` (a custom-format archive) with each TOC entry's
    definition passed through ``rewrite``; the rest unchanged.

    ``changed`` counts the entries rewritten once the TOC has been read. When
    the archive cannot be parsed, its bytes pass through unchanged and
    ``problem`` says why.
    """

    def __init__(self, source: IO[bytes], rewrite: Callable[[str], str]) -> None:
        self.source = source
        self.rewrite = rewrite
        self.pending = b""
        self.started = False
        self.changed = 0
        self.problem: str | None = None

    def readable(self) -> bool:
        return True

    def _start(self) -> None:
        self.started = True
        reader = _Reader(self.source)
        try:
            header, entries, _ = _read_toc(reader)
        except (ValueError, EOFError) as exc:
            self.problem = str(exc)
            log.warning("the dump's table of contents was not rewritten: %s", exc)
            self.pending = bytes(reader.raw)
            return
        for entry in entries:
            defn = entry.get(_DEFN)
            if defn:
                text = defn.decode("utf-8")
                new = self.rewrite(text)
                if new != text:
                    entry.fields[_DEFN] = ("str", new.encode("utf-8"))
                    self.changed += 1
        self.pending = _write_toc(header, entries, reader.int_size)

    def readinto(self, buffer: Any) -> int:
        if not self.started:
            self._start()
        if self.pending:
            n = min(len(buffer), len(self.pending))
            buffer[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            return n
        data = self.source.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n
