"""The one place that imports psycopg: connections, DSNs, advisory locks.

A DSN is shown masked (no password) everywhere. Connections carry a connect
timeout, a statement timeout and ``application_name``. Advisory locks are
session-level and tried with a timeout, so a second run answers "busy"
instead of hanging.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import psycopg
from psycopg import conninfo, sql
from psycopg.rows import dict_row

from ops.errors import ConfigError, DatabaseError, DatabaseUnreachable, LockBusy, OpsError
from ops.logs import is_redactable, redact

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)

Connection = psycopg.Connection
SQL = sql.SQL
Identifier = sql.Identifier
Literal = sql.Literal
Placeholder = sql.Placeholder
Composable = sql.Composable
Buffer = bytes | bytearray | memoryview  # one raw COPY message, as psycopg hands it out

_URL_SCHEMES = ("postgresql://", "postgres://")
# A raw one of these in a URL's user:password part ends that part for some
# readers (libpq stops at the first @ or /, URL parsers at ?, # and /), so the
# DSN may be read with part of the password as its host, port or database.
_URL_DELIMITERS = "@/?#"
# Connection parameters that hold a secret and are shown as ****.
_SECRET_PARAMS = ("password", "sslpassword")
UNREADABLE_DSN = "(a DSN that cannot be read)"
_PERCENT_ENCODE_HINT = (
    "percent-encode reserved characters in the password (@ as %40, / as %2F, ? as %3F, "
    "# as %23, : as %3A), e.g. postgresql://user:p%40ss@host:5432/dbname"
)


def _check_url_delimiters(dsn: str) -> None:
    """Refuse a URL DSN whose text before the host holds a raw ``@ / ? #``.

    Whoever reads it (libpq, the app it is exported to) may split it elsewhere
    than the user meant. The message names the characters, never the text.
    """
    if not dsn.startswith(_URL_SCHEMES):
        return
    rest = dsn.split("://", 1)[1]
    at = rest.rfind("@")
    if at < 0:
        return
    found = sorted({c for c in rest[:at] if c in _URL_DELIMITERS})
    if found:
        chars = " ".join(found)
        raise ConfigError(
            f"the database DSN has a raw {chars} before its host, so it can be read with part "
            "of the password as the host, port or database; it was not used",
            hint=_PERCENT_ENCODE_HINT,
        )


def _parse_error(exc: psycopg.Error) -> str:
    """libpq's reason with every quoted fragment of the DSN dropped (it may be the password)."""
    keywords = {d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults()}
    text = re.sub(
        r'"([^"]*)"',
        lambda m: m.group(0) if m.group(1) == "=" or m.group(1) in keywords else '"…"',
        str(exc),
    )
    return " ".join(text.split())


def _params(dsn: str) -> dict[str, Any]:
    """``dsn`` read by libpq (``conninfo_to_dict``), the one DSN parser of empire-ops.

    Raises ConfigError, never quoting the DSN, when it does not parse or
    would be read differently than meant (see :func:`_check_url_delimiters`).
    """
    _check_url_delimiters(dsn)
    try:
        return dict(conninfo.conninfo_to_dict(dsn))
    except psycopg.ProgrammingError as exc:
        raise ConfigError(
            f"the database DSN does not parse: {_parse_error(exc)}",
            hint="use postgresql://user:password@host:5432/dbname; " + _PERCENT_ENCODE_HINT,
        ) from None


def _display(params: dict[str, Any]) -> str:
    """A URL naming what ``params`` connect to, every secret parameter shown as ``****``."""
    user = str(params.get("user") or "")
    auth = quote(user, safe="")
    if params.get("password"):
        auth += ":****"
    hosts = [h for h in str(params.get("host") or "").split(",") if h]
    ports = [p for p in str(params.get("port") or "").split(",") if p]
    query: dict[str, str] = {}
    netloc = ""
    if hosts and not any(h.startswith("/") for h in hosts) and len(ports) in (0, 1, len(hosts)):
        pairs = []
        for i, host in enumerate(hosts):
            port = ports[i] if len(ports) == len(hosts) else (ports[0] if ports else "")
            name = f"[{host}]" if ":" in host else host
            pairs.append(f"{name}:{port}" if port else name)
        netloc = ",".join(pairs)
    else:
        query.update({k: str(params[k]) for k in ("host", "port") if params.get(k)})
    skip = {"user", "password", "host", "port", "dbname"}
    for key, value in params.items():
        if key not in skip and value not in (None, ""):
            query[key] = "****" if key in _SECRET_PARAMS else str(value)
    text = f"postgresql://{auth + '@' if auth else ''}{netloc}"
    if params.get("dbname"):
        text += "/" + quote(str(params["dbname"]), safe="")
    if query:
        text += "?" + "&".join(f"{k}={quote(v, safe='/,:*')}" for k, v in query.items())
    return text


def mask_dsn(dsn: str) -> str:
    """What ``dsn`` connects to, as a URL with its password replaced by ``****``.

    Built from libpq's reading of the DSN (URL or key=value form), so nothing of
    the password is shown whatever characters it holds. Never raises: a DSN
    that cannot be read is shown as :data:`UNREADABLE_DSN`.
    """
    if not dsn:
        return dsn
    try:
        return _display(_params(dsn))
    except ConfigError:
        return UNREADABLE_DSN


def dsn_password(dsn: str) -> str | None:
    """The password in ``dsn`` as libpq reads it (None without one, or when unreadable)."""
    try:
        value = _params(dsn).get("password")
    except ConfigError:
        return None
    return str(value) if value else None


def dsn_secret_parts(dsn: str) -> list[str]:
    """What of ``dsn`` must be redacted: the DSN and its password (raw and percent-encoded).

    A DSN without a password holds no secret (``[]``); one that cannot be
    read is a secret whole (``[dsn]``).
    """
    try:
        params = _params(dsn)
    except ConfigError:
        return [dsn]
    secrets = [str(params[k]) for k in _SECRET_PARAMS if params.get(k)]
    if not secrets:
        return []
    return [dsn, *secrets, *(quote(s, safe="") for s in secrets)]


@dataclass(frozen=True)
class DsnInfo:
    """What can safely be shown about a DSN.

    ``host`` and ``port`` are as written (comma lists for several hosts);
    ``endpoints`` pairs each host with its port, as libpq tries them;
    ``sslmode`` is the DSN's own (empty when it sets none).
    """

    host: str
    port: int
    user: str
    dbname: str
    masked: str
    endpoints: tuple[tuple[str, int], ...] = ()
    sslmode: str = ""


def parse_dsn(dsn: str) -> DsnInfo:
    """Read ``dsn`` with libpq; raise ConfigError (quoting no part of the DSN) when it cannot.

    That is: it does not parse, it holds a raw ``@ / ? #`` before the host of
    a URL (percent-encode the password), or its port is not a number.
    """
    params = _params(dsn)
    port = str(params.get("port") or "5432")
    ports = port.split(",")
    if not all(p.strip().isdigit() for p in ports):
        raise ConfigError(
            "the database DSN's port is not a number", hint="use host:5432; " + _PERCENT_ENCODE_HINT
        )
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    hosts = host.split(",")
    # libpq: one port for every host, or one port per host.
    each = [int(p) for p in ports] if len(ports) == len(hosts) else [int(ports[0])] * len(hosts)
    return DsnInfo(
        host=host,
        port=each[0],
        user=str(params.get("user") or ""),
        dbname=str(params.get("dbname") or params.get("user") or ""),
        masked=_display(params),
        endpoints=tuple(zip((h.strip() for h in hosts), each, strict=True)),
        sslmode=str(params.get("sslmode") or ""),
    )


# -- what a DSN connects through ------------------------------------------------------
# Supabase's hosts as they appear in a parsed DSN. The project's own host
# serves the database on 5432 and, on paid plans, the dedicated pooler
# (PgBouncer) on 6543; the shared pooler (Supavisor) serves session mode on
# 5432 and transaction mode on 6543.
SUPABASE_DIRECT_HOST = re.compile(r"^db\.([a-z0-9]{20})\.supabase\.(co|in)$")
SUPABASE_POOLER_HOST = re.compile(r"^[a-z0-9-]+\.pooler\.supabase\.com$")
TRANSACTION_POOLER_PORT = 6543
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# sslmodes under which libpq refuses to talk without TLS.
_TLS_REQUIRED = ("require", "verify-ca", "verify-full")
POOLER_RUNBOOK = "runbooks/DB_TRANSACTION_POOLER.md"


def transaction_pooler(host: str, port: int) -> str | None:
    """Which Supabase transaction-mode pooler ``host:port`` is, in words, or None.

    Both Supabase poolers run transaction mode on 6543: the shared one
    (``*.pooler.supabase.com``) and the dedicated one on the project's own
    host (``db.<ref>.supabase.co``). Such a pooler hands each transaction to
    whichever server session is free, so nothing that lives in a session
    (advisory locks, SET, prepared statements) survives from one to the next.
    """
    if port != TRANSACTION_POOLER_PORT:
        return None
    name = host.lower().rstrip(".")
    if SUPABASE_POOLER_HOST.match(name):
        return "Supabase's shared pooler (Supavisor) in transaction mode"
    if SUPABASE_DIRECT_HOST.match(name):
        return "Supabase's dedicated pooler (PgBouncer) in transaction mode"
    return None


def _pooler_of(info: DsnInfo) -> str | None:
    return next((kind for h, p in info.endpoints if (kind := transaction_pooler(h, p))), None)


def _is_local(host: str) -> bool:
    return host.startswith(("/", "@")) or host.lower() in _LOCAL_HOSTS


def dsn_warnings(dsn: str | DsnInfo) -> list[str]:
    """What is risky about connecting with ``dsn``, in words (never quoting it); [] when nothing.

    A Supabase transaction-mode pooler (commands that need a session refuse
    it, see :func:`require_session`), and a remote host that does not require
    TLS: no ``sslmode`` of require / verify-ca / verify-full (libpq's default,
    ``prefer``, silently falls back to clear text), or ``sslmode=disable``.
    ``$PGSSLMODE`` counts when the DSN sets no sslmode, as libpq reads it.
    Raises ConfigError for a DSN that cannot be read.
    """
    import os

    info = dsn if isinstance(dsn, DsnInfo) else parse_dsn(dsn)
    found: list[str] = []
    pooler = _pooler_of(info)
    if pooler:
        found.append(
            f"uses {pooler} (port {TRANSACTION_POOLER_PORT}): fine for the app, but migrations, "
            "heal, demo data and backups need a session of their own (advisory locks, pg_dump) "
            "and refuse it; give those the session pooler (port 5432) or the direct host"
        )
    remote = sorted({h for h, _ in info.endpoints if not _is_local(h)})
    if remote:
        where = ", ".join(remote)
        mode = info.sslmode or os.environ.get("PGSSLMODE", "")
        if mode == "disable":
            found.append(
                f"sets sslmode=disable for the remote host {where}: the password and every row "
                "cross the network in clear text; use sslmode=verify-full (or at least require)"
            )
        elif mode not in _TLS_REQUIRED:
            said = f"sslmode={mode}" if mode else "no sslmode"
            found.append(
                f"has {said} for the remote host {where}, so libpq may fall back to clear text; "
                "add sslmode=verify-full (with sslrootcert) or at least sslmode=require"
            )
    return found


def require_session(dsn: str | DsnInfo, why: str) -> None:
    """Refuse, before any connection, a DSN whose server sessions are not the client's own.

    ``why`` names what needs a session (an advisory lock, pg_dump). Raises
    ConfigError (exit 2) when ``dsn`` points at a Supabase transaction-mode
    pooler (see :func:`transaction_pooler`), naming the fix; the message shows
    the DSN masked. Every command that takes a session-level lock goes
    through this, by ``connect(..., session=why)`` and in :func:`advisory_lock`.
    """
    info = dsn if isinstance(dsn, DsnInfo) else parse_dsn(dsn)
    pooler = _pooler_of(info)
    if pooler:
        _refuse_pooler(pooler, info.masked, why)


def _refuse_pooler(pooler: str, masked: str, why: str) -> None:
    raise ConfigError(
        f"{why} needs a database session of its own, but {masked} is {pooler} (port "
        f"{TRANSACTION_POOLER_PORT}), which hands each transaction to whichever server session "
        "is free; nothing was done",
        hint="for this command use the session pooler (the same pooler host on port 5432) or "
        "the direct host (db.<project-ref>.supabase.co:5432), e.g. DATABASE_URL=... for this run "
        f"only; the app may keep port {TRANSACTION_POOLER_PORT}. See {POOLER_RUNBOOK}",
    )


def make_dsn(host: str, port: int, user: str, dbname: str, password: str | None = None) -> str:
    """A URL-form DSN; user, password and database are percent-encoded."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return f"postgresql://{auth}@{host}:{port}/{quote(dbname, safe='')}"


def tool_conninfo(dsn: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, extra environment) to run pg_dump/pg_restore on ``dsn``.

    The password goes into ``PGPASSWORD`` for the child, never onto its
    command line, where every local user could read it in ``ps``.
    """
    params = {k: str(v) for k, v in _params(dsn).items() if v is not None}
    password = params.pop("password", None)
    env = {"PGPASSWORD": password} if password else {}
    return conninfo.make_conninfo("", **params), env


def with_dbname(dsn: str, dbname: str) -> str:
    """The same DSN pointing at another database."""
    return conninfo.make_conninfo(dsn, dbname=dbname)


@dataclass(frozen=True)
class ConnectOptions:
    """Timeouts and labels applied to every connection."""

    connect_timeout: float = 5.0
    statement_timeout: float = 60.0
    application_name: str = "empire-ops"

    @classmethod
    def from_config(cls, config: Config) -> ConnectOptions:
        return cls(
            connect_timeout=config.seconds("database.connect_timeout"),
            statement_timeout=config.seconds("database.statement_timeout"),
            application_name=config.get("database.application_name"),
        )


def connect(
    dsn: str,
    options: ConnectOptions | None = None,
    *,
    autocommit: bool = False,
    session: str | None = None,
) -> psycopg.Connection[dict[str, Any]]:
    """Open a connection (rows as dicts).

    ``session`` says what needs a server session of its own (``"the 'migrate'
    advisory lock"``): then a transaction-mode pooler is refused before any
    connection is tried (:func:`require_session`). Through such a pooler,
    a connection never prepares statements (the pooler cannot keep them).
    Raises ConfigError for a DSN that does not parse or is refused,
    DatabaseUnreachable (exit 4) when the server does not accept the
    connection within the connect timeout. Messages show the DSN masked.
    """
    options = options or ConnectOptions()
    info = parse_dsn(dsn)
    if session is not None:
        require_session(info, session)
    timeout = max(1, round(options.connect_timeout))
    started = time.monotonic()
    try:
        conn = psycopg.connect(
            dsn,
            connect_timeout=timeout,
            application_name=options.application_name,
            options=f"-c statement_timeout={int(options.statement_timeout * 1000)}",
            autocommit=autocommit,
            row_factory=dict_row,
            prepare_threshold=None if _pooler_of(info) else 5,
            # A peer that vanished (a partition, a failover) is noticed in about a
            # minute, not the kernel's two hours: a held advisory lock's watchdog
            # must learn that the lock is gone (libpq ignores these on a socket file).
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
    except psycopg.OperationalError as exc:
        elapsed = time.monotonic() - started
        reason = _clean_reason(str(exc), dsn)
        raise DatabaseUnreachable(
            f"cannot reach the database at {info.masked} after {elapsed:.1f}s: {reason}",
            hint="check the host, port and credentials of the DSN, and that the server is up "
            "(`empire-ops db start` for the embedded one)",
        ) from None
    return conn


def _clean_reason(text: str, dsn: str) -> str:
    """A driver message about ``dsn`` with the DSN masked and its secrets (any form) removed."""
    text = text.replace(dsn, mask_dsn(dsn))
    # A weak password is left alone: blanking a common word would reveal it,
    # and libpq's messages never quote the password.
    parts = [p for p in dsn_secret_parts(dsn) if is_redactable(p)]
    for part in sorted(parts, key=len, reverse=True):
        text = text.replace(part, "****")
    return " ".join(redact(text).split())


def server_version(conn: psycopg.Connection[Any]) -> tuple[int, str]:
    """(major version number, full version string) of the connected server."""
    num = conn.info.server_version
    rows = run_query(conn, "select version() as v")
    return num // 10000, str(rows[0]["v"]) if rows else ""


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (same in every process)."""
    digest = hashlib.sha256(f"empire-ops:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_advisory_lock(conn: psycopg.Connection[Any], name: str, timeout: float) -> bool:
    """Try to take the session-level lock ``name`` for up to ``timeout`` seconds.

    Returns True when held, False when another session still holds it. Never
    blocks in the server: it polls ``pg_try_advisory_lock``, so it cannot hang
    behind a transaction-level lock. Raises DatabaseError / DatabaseUnreachable.
    """
    key = lock_key(name)
    deadline = time.monotonic() + max(0.0, timeout)
    delay = 0.05
    while True:
        rows = run_query(conn, "select pg_try_advisory_lock(%s) as got", (key,))
        if not conn.autocommit:
            commit(conn)
        if rows and rows[0]["got"]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.5)


def cancel(conn: psycopg.Connection[Any]) -> None:
    """Ask the server to cancel the statement ``conn`` is running, from another thread (the
    one running it then gets the server's "canceling statement" error). Never raises: a
    statement already done, or a connection gone, leaves nothing to cancel."""
    with contextlib.suppress(psycopg.Error):
        if hasattr(conn, "cancel_safe"):  # psycopg 3.2+: bounded, and without libpq's old call
            conn.cancel_safe(timeout=5)
        else:
            conn.cancel()


def advisory_unlock(conn: psycopg.Connection[Any], name: str) -> None:
    """Release the session-level lock ``name`` (no error if it was not held)."""
    if conn.closed:
        return
    run_query(conn, "select pg_advisory_unlock(%s)", (lock_key(name),))
    if not conn.autocommit:
        commit(conn)


@contextlib.contextmanager
def advisory_lock(conn: psycopg.Connection[Any], name: str, timeout: float) -> Iterator[None]:
    """Hold the session-level lock ``name`` for the block; raise LockBusy (exit 5) if busy.

    Open ``conn`` with ``connect(..., session=...)`` so that a transaction-mode
    pooler is refused before connecting; a connection that still reached one
    is refused here (ConfigError, exit 2), before the lock is tried: the lock
    would be held by a server session the next transaction may not get.
    """
    pooler = transaction_pooler(conn.info.host, conn.info.port)
    if pooler:
        _refuse_pooler(pooler, mask_dsn(conn.info.dsn), f"the '{name}' advisory lock")
    if not try_advisory_lock(conn, name, timeout):
        raise LockBusy(
            f"another empire-ops run holds the '{name}' lock (waited {timeout:g}s)",
            hint="wait for it to finish, or look for it in pg_stat_activity "
            "(application_name = empire-ops)",
        )
    try:
        yield
    finally:
        with contextlib.suppress(DatabaseError, DatabaseUnreachable):
            advisory_unlock(conn, name)


@contextlib.contextmanager
def scratch_database(
    dsn: str,
    options: ConnectOptions | None = None,
    *,
    prefix: str,
    purpose: str,
    keep: bool = False,
) -> Iterator[str]:
    """A new, empty database on ``dsn``'s server, created from ``template0``; yields its DSN.

    It is dropped when the block ends, even on failure, unless ``keep``.
    Raises DatabaseError with a hint when it cannot be created (``purpose``
    names what needed it; the role needs CREATEDB), DatabaseUnreachable when
    the server does not answer.
    """
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = connect(dsn, options, autocommit=True)
    try:
        try:
            run_query(admin, SQL("create database {} template template0").format(Identifier(name)))
        except DatabaseError as exc:
            raise DatabaseError(
                f"cannot create the scratch database {name} for {purpose}: {exc.message}",
                hint=f"{purpose} needs CREATEDB on the target server; unset DATABASE_URL to "
                "use the embedded PostgreSQL instead",
                sqlstate=exc.sqlstate,
            ) from None
        try:
            yield with_dbname(dsn, name)
        finally:
            if not keep:
                _drop_database(admin, name)
    finally:
        admin.close()


def drop_database(dsn: str, name: str, options: ConnectOptions | None = None) -> None:
    """Drop the database ``name`` on ``dsn``'s server (``dsn`` names another database to
    connect to), its sessions ended; no error when it is gone. Raises DatabaseError,
    DatabaseUnreachable."""
    with connect(dsn, options, autocommit=True) as conn:
        _drop_database(conn, name)


def _drop_database(conn: psycopg.Connection[Any], name: str) -> None:
    run_query(conn, SQL("drop database if exists {} with (force)").format(Identifier(name)))


def ensure_database(dsn: str, name: str, options: ConnectOptions | None = None) -> bool:
    """Create the database ``name`` on ``dsn``'s server unless it exists; True when created.

    ``dsn`` names a database to connect to first (``postgres``). The name is
    quoted as an identifier, so any valid name works. Raises DatabaseError
    (with a hint when the role lacks CREATEDB), DatabaseUnreachable.
    """
    with connect(dsn, options, autocommit=True) as conn:
        if run_query(conn, "select 1 as found from pg_database where datname = %s", (name,)):
            return False
        try:
            run_query(conn, SQL("create database {}").format(Identifier(name)))
        except DatabaseError as exc:
            if exc.sqlstate == "42P04":  # created meanwhile by someone else: fine
                return False
            raise
        log.info("created database %s", name)
        return True


Query = str | sql.SQL | sql.Composed


def run_query(
    conn: psycopg.Connection[Any], query: Query, params: Any = None
) -> list[dict[str, Any]]:
    """Run one statement and return its rows (``[]`` when it returns none).

    ``query`` is a string or a :mod:`psycopg.sql` composition. Raises
    DatabaseUnreachable (exit 4) when the connection is lost, DatabaseError
    (exit 1) with the server's message otherwise; a missing privilege gets a
    hint naming it (see :func:`map_error`).
    """
    try:
        cur = conn.execute(query, params)
        return list(cur.fetchall()) if cur.description else []
    except psycopg.Error as exc:
        raise map_error(exc, conn) from None


def commit(conn: psycopg.Connection[Any]) -> None:
    """Commit ``conn``'s transaction; errors mapped as :func:`run_query`."""
    try:
        conn.commit()
    except psycopg.Error as exc:
        raise map_error(exc, conn) from None


@contextlib.contextmanager
def transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Run the block in a transaction (a savepoint inside one); commit or roll back.

    Errors of BEGIN, COMMIT (a deferred constraint, a lost connection) are
    mapped as :func:`run_query`; an exception of the block rolls back and
    propagates unchanged.
    """
    try:
        with conn.transaction():
            yield
    except psycopg.Error as exc:
        raise map_error(exc, conn) from None


def copy_rows(
    conn: psycopg.Connection[Any], statement: sql.Composed, rows: Iterable[Sequence[Any]]
) -> int:
    """Stream ``rows`` through ``COPY ... FROM STDIN`` (``statement``); return how many.

    Errors mapped as :func:`run_query`; in the caller's transaction, a failure
    leaves nothing written.
    """
    count = 0
    try:
        with conn.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
    except psycopg.Error as exc:
        raise map_error(exc, conn) from None
    return count


def copy_out_rows(
    conn: psycopg.Connection[Any], statement: sql.Composed
) -> Generator[tuple[str | None, ...], None, None]:
    """Stream the rows of ``COPY (...) TO STDOUT`` (``statement``, text format) as they
    arrive: each a tuple of PostgreSQL's text forms (None for NULL), in constant memory.

    Errors mapped as :func:`run_query`.
    """
    try:
        with conn.cursor() as cur, cur.copy(statement) as copy:
            yield from copy.rows()
    except psycopg.Error as exc:
        raise map_error(exc, conn) from None


def copy_out_batches(
    conn: psycopg.Connection[Any], statement: sql.Composed, *, chunk: int = 1 << 18
) -> Generator[list[Buffer], None, None]:
    """Stream ``COPY (...) TO STDOUT`` (``statement``, any format) as it arrives, in lists
    of raw messages of about ``chunk`` bytes. PostgreSQL sends one message per row (for CSV
    with ``header``, the header first), so each message is one whole row in the
    COPY's format, embedded newlines included. Constant memory. Read it to
    the end or close it (``contextlib.closing``) before using ``conn`` again:
    a COPY left half-read keeps the connection busy.

    Errors mapped as :func:`run_query`, also an error the server raises midway.
    """
    try:
        with conn.cursor() as cur, cur.copy(statement) as copy:
            yield from _copy_messages(conn, copy, chunk)
    except psycopg.Error as exc:
        raise map_error(exc, conn) from None


def _copy_messages(
    conn: psycopg.Connection[Any], copy: psycopg.Copy, chunk: int
) -> Iterator[list[Buffer]]:
    # psycopg's Copy.read() costs about 1 µs a message through its generator
    # machinery, as much as the server spends making a CSV row: an export would
    # be bound by it. So the messages libpq already holds are taken straight
    # from the PGconn (non-blocking); only when none is buffered does
    # Copy.read() wait for the socket, interruptibly. libpq leaves COPY mode
    # when it hands out the end (-1): the command's result is then collected
    # here, as psycopg would, and the Copy marked done (its own flag) so that
    # its exit reads no further. tests/test_db.py checks the COPY ends cleanly.
    # Lists of about 256 KiB: the caller's buffers then stay under glibc's trim
    # threshold, so the heap is not handed back and faulted in again at every
    # list (with 1 MiB lists, a 160 MB export spent twice the system time).
    get = conn.pgconn.get_copy_data
    read = copy.read
    batch: list[Buffer] = []
    append = batch.append
    size = 0
    data: Buffer
    while True:
        nbytes, data = get(1)
        if nbytes == 0:  # nothing buffered: wait for the server, through psycopg
            if not (data := read()):
                break
            nbytes = len(data)
        elif nbytes < 0:
            _end_copy_out(conn, copy)
            break
        append(data)
        size += nbytes
        if size >= chunk:
            yield batch
            batch, size = [], 0
            append = batch.append
    if batch:
        yield batch


def _end_copy_out(conn: psycopg.Connection[Any], copy: psycopg.Copy) -> None:
    """The COPY's result after libpq handed out its end: raise the server's error, if any."""
    from psycopg import generators

    results = conn.wait(generators.fetch_many(conn.pgconn))
    copy._finished = True  # see _copy_messages
    for result in results:
        if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


# SQLSTATE classes and codes that mean "the server or the connection is gone".
_GONE_CLASSES = ("08",)
_GONE_CODES = ("57P01", "57P02", "57P03")


def map_error(exc: BaseException, conn: psycopg.Connection[Any] | None = None) -> OpsError:
    """The OpsError for a driver error: the one translation of psycopg into the error tree.

    A lost connection is DatabaseUnreachable (exit 4); everything else is
    DatabaseError (exit 1) carrying the server's message and SQLSTATE. A
    missing privilege (42501) gets a hint naming the privilege and the GRANT
    that gives it; a cancelled statement names statement_timeout. Secret
    values are redacted from the server's text.
    """
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None) or None
    text = " ".join(redact(str(exc)).split())
    primary = redact(diag.message_primary) if diag and diag.message_primary else text
    detail = redact(diag.message_detail) if diag and diag.message_detail else None
    server = f"{primary} ({detail})" if detail else primary
    lost = (conn is not None and conn.closed) or (
        isinstance(exc, psycopg.OperationalError)
        and (sqlstate is None or sqlstate.startswith(_GONE_CLASSES) or sqlstate in _GONE_CODES)
    )
    if lost:
        return DatabaseUnreachable(
            f"lost the database connection: {text}",
            hint="check that the server is up and reachable, then rerun",
        )
    if sqlstate == "42501":
        message = (
            primary if primary.startswith("permission denied") else f"not permitted: {primary}"
        )
        return DatabaseError(
            message,
            hint=_privilege_hint(primary, conn),
            sqlstate=sqlstate,
            server_message=server,
        )
    if sqlstate == "57014":
        return DatabaseError(
            f"the statement was cancelled: {primary}",
            hint="it ran longer than database.statement_timeout; raise it, or run this when the "
            "database is less busy",
            sqlstate=sqlstate,
            server_message=server,
        )
    state = f" [{sqlstate}]" if sqlstate else ""
    return DatabaseError(f"query failed: {text}{state}", sqlstate=sqlstate, server_message=server)


_DENIED_ON = re.compile(
    r"permission denied for (?P<kind>database|schema|table|relation|sequence|function|view|"
    r"materialized view|type|language|tablespace) (?P<obj>\S+)"
)
# kind -> (what the role lacks, the GRANT that gives it)
_GRANTS = {
    "database": ("CREATE (to create schemas)", "CREATE"),
    "schema": ("USAGE (and CREATE to add objects)", "USAGE, CREATE"),
    "table": ("a privilege on it", "SELECT, INSERT, UPDATE, DELETE"),
    "relation": ("a privilege on it", "SELECT, INSERT, UPDATE, DELETE"),
    "view": ("SELECT", "SELECT"),
    "materialized view": ("SELECT", "SELECT"),
    "sequence": ("USAGE", "USAGE"),
    "function": ("EXECUTE", "EXECUTE"),
    "type": ("USAGE", "USAGE"),
    "language": ("USAGE", "USAGE"),
    "tablespace": ("CREATE", "CREATE"),
}


def _privilege_hint(message: str, conn: psycopg.Connection[Any] | None) -> str:
    role = ""
    with contextlib.suppress(Exception):  # the role's name is a courtesy; never fail on it
        if conn is not None and not conn.closed:
            role = conn.info.user or ""
    who = f"role {role}" if role else "the connected role"
    match = _DENIED_ON.search(message)
    if match:
        kind, obj = match.group("kind"), match.group("obj")
        lacks, grant = _GRANTS[kind]
        keyword = "TABLE" if kind == "relation" else kind.upper()
        return (
            f"{who} lacks {lacks} on {kind} {obj}; its owner or a superuser can run: "
            f"GRANT {grant} ON {keyword} {obj} TO {role or '<role>'} (the privileges this "
            "needs); or connect as a role that has them"
        )
    if message.startswith("must be owner of"):
        return f"{who} is not the owner ({message}); connect as the owner, or transfer ownership"
    if "superuser" in message:
        return f"{who} is not a superuser, which this needs; ask the server's administrator"
    return f"{who} lacks a privilege this needs; grant it, or connect as a role that has it"


PsycopgError = psycopg.Error


@contextlib.contextmanager
def scoped_search_path(conn: psycopg.Connection[Any], search_path: str) -> Iterator[None]:
    """Run the block's reads with ``search_path`` set, then roll everything back.

    Uses a transaction (a savepoint when the caller is already in one), so the
    session's own search_path and state are untouched afterwards. For read-only
    catalog queries whose rendered names depend on the search path. Raises
    DatabaseUnreachable when the connection is closed or lost.
    """
    try:
        with conn.transaction():
            run_query(conn, "select pg_catalog.set_config('search_path', %s, true)", (search_path,))
            yield
            raise psycopg.Rollback()
    except psycopg.Error as exc:  # BEGIN/ROLLBACK on a lost connection
        raise map_error(exc, conn) from None


def render(query: sql.Composable) -> str:
    """The text of a composed statement, for a client that is not psycopg.

    Used for ``postgres --single``, which reads statements from its stdin.
    """
    return query.as_string(None)
