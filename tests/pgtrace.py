"""Count what really reaches the server: libpq's own protocol trace on real connections.

Nothing is mocked: every connection :func:`ops.db.connect` opens inside
:func:`traced` is a real one, with libpq's ``PQtrace`` switched on (psycopg's
``pgconn.trace``). The trace lists each protocol message the client sent, so
a statement is counted when it is sent, whatever code path sent it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from psycopg import pq

# One frontend message: "F <length> <type> <payload>", the payload possibly
# spanning lines (a query's own newlines are written as they are).
_MESSAGE = re.compile(
    r"^F\t\d+\t(?P<type>\w+)\t? ?(?P<payload>.*?)(?=^[FB]\t\d+\t|\Z)", re.M | re.S
)
_TX_CONTROL = re.compile(r'^"(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b', re.I)


@dataclass
class Trace:
    """The statements sent by the traced connections, in order, per connection."""

    files: list[Path] = field(default_factory=list)

    def messages(self) -> list[tuple[str, str]]:
        """(message type, payload) of every frontend message, connection by connection."""
        out: list[tuple[str, str]] = []
        for path in self.files:
            text = path.read_text(errors="replace")
            out.extend((m["type"], m["payload"].strip()) for m in _MESSAGE.finditer(text))
        return out

    def statements(self) -> list[str]:
        """Each statement executed, transaction control (BEGIN, SAVEPOINT…) left out.

        A simple-protocol ``Query`` is one statement; an extended-protocol one
        is one ``Bind`` (its text is in the ``Parse`` before it, absent when
        psycopg reuses a prepared statement).
        """
        out: list[str] = []
        last_parse = ""
        for kind, payload in self.messages():
            if kind == "Parse":
                last_parse = payload
            elif kind == "Bind":
                out.append(last_parse)
            elif kind == "Query" and not _TX_CONTROL.match(payload):
                out.append(payload)
        return out

    def count_containing(self, text: str) -> int:
        """How many statements sent contain ``text`` (e.g. a marker of one catalog query)."""
        return sum(1 for s in self.statements() if text in s)


def catalog_markers() -> list[str]:
    """How a catalog read shows in what was sent: each catalog query's first line, and the
    search-path pin that comes before them (see :func:`ops.migrate.catalog.read_catalog`)."""
    from ops.migrate.catalog import QUERIES

    return [q.strip().splitlines()[0] for q in QUERIES] + ["set_config('search_path'"]


@contextmanager
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[Trace]:
    """Trace every connection that ``ops.db.connect`` opens inside the block."""
    from ops import db

    trace = Trace()
    folder = Path(tempfile.mkdtemp(prefix="empire-pgtrace-"))
    real_connect = db.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        conn = real_connect(*args, **kwargs)
        path = folder / f"conn{len(trace.files)}.trace"
        trace.files.append(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        # libpq owns this descriptor from now on (it fdopen()s it and flushes
        # after every message), so the trace survives the connection's close.
        conn.pgconn.trace(fd)
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        return conn

    with monkeypatch.context() as m:
        m.setattr(db, "connect", connect)
        yield trace
