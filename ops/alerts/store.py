"""The state store: open findings, the alert spool and history, job history, heartbeats.

One SQLite file in the state folder (``<state_dir>/state.sqlite3``), in WAL
mode with a busy timeout, so that the scheduler, a cron job and an admin's
``alerts flush`` can use it at once. Every read-modify-write runs in a
``BEGIN IMMEDIATE`` transaction (:meth:`StateStore.locked`): the write
lock is taken before the first read, so two processes never both decide to
send the same alert. Rows hold only rendered, redacted text: recipients and
the webhook URL are read from the secrets when a message is sent.

Times are wall-clock seconds (``time.time()``): they are shown to people and
compared across processes. Where a clock that jumped back could make an
interval negative, the callers treat a negative interval as "not yet"
(never as "long ago"), so a jump back delays at most, and never repeats.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ops.errors import DiskFull, LockBusy, OpsError, PathNotUsable, storage_error

STATE_FILE = "state.sqlite3"
_BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
create table if not exists open_findings (
  code text not null,
  subject text not null,
  source text not null,  -- every source that reported it, comma-separated
  severity text not null,
  message text not null,
  runbook text,
  first_seen real not null,
  last_seen real not null,
  times_seen integer not null,
  alerted_at real,
  alerted_severity text,
  primary key (code, subject)
);
create table if not exists messages (
  message_id text primary key,
  channel text not null,
  kind text not null,
  severity text not null,
  title text not null,
  body_text text not null,
  body_html text not null,
  payload text not null,
  extra_to text not null default '[]',
  items text not null default '[]',
  state text not null,
  attempts integer not null default 0,
  created_at real not null,
  next_attempt_at real not null,
  lease_until real,
  claim_token text,
  sent_at real,
  last_error text
);
create index if not exists messages_due on messages (state, next_attempt_at);
create table if not exists job_history (
  id integer primary key autoincrement,
  job text not null,
  host text not null,
  pid integer not null,
  started_at real not null,
  ended_at real,
  outcome text not null,
  exit_code integer,
  findings text not null default '[]'
);
create index if not exists job_history_job on job_history (job, started_at);
create table if not exists heartbeats (
  scheduler_id text primary key,
  host text not null,
  pid integer not null,
  started_at real not null,
  last_seen real not null,
  state text not null,
  jobs text not null default '{}'
);
"""


@dataclass(frozen=True)
class OpenFinding:
    """A finding that is open (seen, not yet cleared), with its alerting history."""

    code: str
    subject: str
    source: str
    severity: str
    message: str
    runbook: str | None
    first_seen: float
    last_seen: float
    times_seen: int
    alerted_at: float | None
    alerted_severity: str | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.code, self.subject)

    @property
    def sources(self) -> list[str]:
        return [s for s in self.source.split(",") if s]


class FindingsBook(Protocol):
    """Where open findings are kept: this host's :class:`StateStore`, or the database's
    :class:`~ops.alerts.ledger.DatabaseLedger` shared by every host (one alert per finding,
    whichever host saw it). The alerter works on either."""

    def locked(self) -> contextlib.AbstractContextManager[Any]:
        """A transaction holding the book's write lock."""
        ...

    def open_findings(self, source: str | None = None) -> list[OpenFinding]: ...

    def get_open(self, code: str, subject: str) -> OpenFinding | None: ...

    def put_open(self, f: OpenFinding) -> None: ...

    def close_open(self, code: str, subject: str) -> None: ...


def store_path(config: Any) -> Path:
    """Where the state store of ``config``'s project lives."""
    return Path(config.state_dir) / STATE_FILE


class StateStore:
    """The state store of one project (see the module docstring).

    Open it with :func:`open_store`; it is a context manager that closes the
    connection. Methods that change rows expect to run inside
    :meth:`locked` when they are part of a decision (read, then write).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute(f"pragma busy_timeout = {_BUSY_TIMEOUT_MS}")
            self.conn.execute("pragma journal_mode = wal")
            self.conn.execute("pragma synchronous = normal")
            self.conn.executescript(_SCHEMA)
        except OSError as exc:
            self._close_quietly()
            raise _store_error(exc, path) from None
        except sqlite3.Error as exc:
            self._close_quietly()
            raise _sqlite_error(exc, path) from None

    def _close_quietly(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction: the write lock first, committed at the end.

        Raises PathNotUsable / DiskFull when the file cannot be written.
        """
        try:
            self.conn.execute("begin immediate")
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, self.path) from None
        try:
            yield self.conn
        except BaseException:
            # SQLite may have rolled back itself (a full disk): then there is none to undo.
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("rollback")
            raise
        try:
            self.conn.execute("commit")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("rollback")
            raise _sqlite_error(exc, self.path) from None

    def query(self, statement: str, params: Any = ()) -> list[sqlite3.Row]:
        """Run one statement and return its rows; write errors become storage errors."""
        try:
            return list(self.conn.execute(statement, params).fetchall())
        except sqlite3.Error as exc:
            raise _sqlite_error(exc, self.path) from None

    # -- open findings --------------------------------------------------------------
    def open_findings(self, source: str | None = None) -> list[OpenFinding]:
        """Every open finding (that ``source`` reported, when given)."""
        rows = (
            self.query(
                # instr, not like: a source's _ is a character, not a wildcard
                "select * from open_findings where instr(',' || source || ',', ?) > 0",
                (f",{source},",),
            )
            if source is not None
            else self.query("select * from open_findings")
        )
        return [OpenFinding(**dict(r)) for r in rows]

    def get_open(self, code: str, subject: str) -> OpenFinding | None:
        rows = self.query(
            "select * from open_findings where code = ? and subject = ?", (code, subject)
        )
        return OpenFinding(**dict(rows[0])) if rows else None

    def put_open(self, f: OpenFinding) -> None:
        self.query(
            "insert or replace into open_findings values (?,?,?,?,?,?,?,?,?,?,?)",
            (
                f.code, f.subject, f.source, f.severity, f.message, f.runbook, f.first_seen,
                f.last_seen, f.times_seen, f.alerted_at, f.alerted_severity,
            ),
        )  # fmt: skip

    def close_open(self, code: str, subject: str) -> None:
        self.query("delete from open_findings where code = ? and subject = ?", (code, subject))

    # -- messages (the spool and what was sent) ---------------------------------------
    def enqueue(self, row: dict[str, Any]) -> None:
        """Add a message to the spool (state ``pending``); its id must be new."""
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.query(f"insert into messages ({cols}) values ({marks})", tuple(row.values()))

    def messages(self, *, states: tuple[str, ...] = (), limit: int = 100) -> list[dict[str, Any]]:
        """Messages, newest first (of these ``states`` when given)."""
        where = f"where state in ({', '.join('?' for _ in states)})" if states else ""
        rows = self.query(
            f"select * from messages {where} order by created_at desc limit ?", (*states, limit)
        )
        return [dict(r) for r in rows]

    # -- job history ------------------------------------------------------------------
    def job_started(self, job: str, host: str, pid: int, started_at: float) -> int:
        with self.locked():
            self.query(
                "insert into job_history (job, host, pid, started_at, outcome) "
                "values (?, ?, ?, ?, 'running')",
                (job, host, pid, started_at),
            )
            rows = self.query("select last_insert_rowid() as id")
        return int(rows[0]["id"])

    def job_ended(
        self,
        run_id: int,
        *,
        ended_at: float,
        outcome: str,
        exit_code: int,
        findings: list[dict[str, Any]],
    ) -> None:
        from ops.logs import redact_data

        with self.locked():
            self.query(
                "update job_history set ended_at = ?, outcome = ?, exit_code = ?, findings = ? "
                "where id = ?",
                (ended_at, outcome, exit_code, json.dumps(redact_data(findings)), run_id),
            )

    def job_runs(self, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Recorded runs, newest first (of ``job`` when given)."""
        if job is None:
            rows = self.query("select * from job_history order by id desc limit ?", (limit,))
        else:
            rows = self.query(
                "select * from job_history where job = ? order by id desc limit ?", (job, limit)
            )
        return [dict(r) for r in rows]

    def prune(self, before: float) -> dict[str, int]:
        """Delete what is older than ``before``: finished runs, delivered or dropped
        messages, stopped schedulers' heartbeats. Open findings and the spool stay."""
        counts = {}
        with self.locked():
            for table, where in (
                ("job_history", "ended_at is not null and ended_at < ?"),
                ("messages", "state in ('sent', 'dropped', 'unrouted') and created_at < ?"),
                ("heartbeats", "state in ('stopped', 'gone') and last_seen < ?"),
            ):
                self.query(f"delete from {table} where {where}", (before,))
                counts[table] = int(self.query("select changes() as n")[0]["n"])
        return counts

    # -- heartbeats -------------------------------------------------------------------
    def beat(self, row: dict[str, Any]) -> None:
        with self.locked():
            self.query(
                "insert or replace into heartbeats "
                "(scheduler_id, host, pid, started_at, last_seen, state, jobs) "
                "values (:scheduler_id, :host, :pid, :started_at, :last_seen, :state, :jobs)",
                row,
            )

    def set_heartbeat_state(self, scheduler_ids: list[str], state: str) -> None:
        with self.locked():
            for sid in scheduler_ids:
                self.query("update heartbeats set state = ? where scheduler_id = ?", (state, sid))

    def forget_host(self, host: str) -> int:
        with self.locked():
            self.query("delete from heartbeats where host = ?", (host,))
            return int(self.query("select changes() as n")[0]["n"])

    def heartbeats(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.query("select * from heartbeats order by host, pid")]


def open_store(config: Any) -> StateStore:
    """The state store of ``config``'s project, created on first use.

    Raises PathNotUsable (exit 2) when the state folder cannot be written
    (read-only, no permission), DiskFull (exit 1) when its disk is full.
    """
    return StateStore(store_path(config))


def _store_error(exc: OSError, path: Path) -> PathNotUsable | DiskFull:
    mapped = storage_error(exc, "open the state store", path)
    if isinstance(mapped, PathNotUsable | DiskFull):
        return mapped
    return PathNotUsable(
        f"cannot open the state store {path}: {exc.strerror or exc}",
        hint="make the state folder (project.state_dir) writable, or choose another",
    )


def _no_space(folder: Path) -> bool:
    """True when the disk holding ``folder`` has no block left (SQLite says "disk I/O
    error" when it cannot grow its write-ahead log there)."""
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def _sqlite_error(exc: sqlite3.Error, path: Path) -> OpsError:
    """The storage error for a SQLite error on the store (read-only, full, unopenable)."""
    text = str(exc).lower()
    if "full" in text or ("disk i/o error" in text and _no_space(path.parent)):
        return DiskFull(
            f"cannot write the state store {path}: the disk is full",
            hint="free some space on that disk and rerun; nothing was half-written",
        )
    if "locked" in text or "busy" in text:
        return LockBusy(
            f"the state store {path} stayed locked by another process for "
            f"{_BUSY_TIMEOUT_MS // 1000}s",
            hint="another empire-ops holds it; wait, or look for a hung empire-ops process",
        )
    return PathNotUsable(
        f"cannot use the state store {path}: {exc}",
        hint="the state folder (project.state_dir) must be writable by this user: "
        "make it writable, or choose another folder",
    )
