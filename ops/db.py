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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import conninfo, sql
from psycopg.rows import dict_row

from ops.errors import ConfigError, DatabaseError, DatabaseUnreachable, LockBusy, OpsError
from ops.logs import redact

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)

Connection = psycopg.Connection
SQL = sql.SQL
Identifier = sql.Identifier
Literal = sql.Literal

_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``****`` (URL or key=value form).

    Never raises: an unparseable DSN is masked as best it can be.
    """
    if not dsn:
        return dsn
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:****@", dsn)
        if parts.password is None and "@" not in parts.netloc:
            masked = dsn
        else:
            userinfo, _, hostinfo = parts.netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:****@{hostinfo}" if ":" in userinfo else f"{user}@{hostinfo}"
            masked = urlunsplit(parts._replace(netloc=netloc))
        return _URL_PASSWORD.sub(r"\1****", masked)
    return _KV_PASSWORD.sub(r"\1****", dsn)


def dsn_password(dsn: str) -> str | None:
    """The password in ``dsn``, if any (used only to register it for redaction)."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        if "://" in dsn:
            with contextlib.suppress(ValueError):
                pw = urlsplit(dsn).password
                return unquote(pw) if pw else None
        return None
    value = params.get("password")
    return str(value) if value else None


@dataclass(frozen=True)
class DsnInfo:
    """What can safely be shown about a DSN."""

    host: str
    port: int
    user: str
    dbname: str
    masked: str


def parse_dsn(dsn: str) -> DsnInfo:
    """Parse ``dsn``; raise ConfigError (without the password) when it does not parse."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        reason = redact(str(exc)).replace(dsn, mask_dsn(dsn))
        pw = dsn_password(dsn)
        if pw:
            reason = reason.replace(pw, "****")
        raise ConfigError(
            f"the database DSN does not parse: {reason}",
            hint="use postgresql://user:password@host:5432/dbname (percent-encode the password)",
        ) from None
    port = str(params.get("port") or "5432")
    if not port.isdigit():
        raise ConfigError(f"the database DSN has a non-numeric port {port!r}")
    return DsnInfo(
        host=str(params.get("host") or params.get("hostaddr") or "localhost"),
        port=int(port),
        user=str(params.get("user") or ""),
        dbname=str(params.get("dbname") or params.get("user") or ""),
        masked=mask_dsn(dsn),
    )


def make_dsn(host: str, port: int, user: str, dbname: str, password: str | None = None) -> str:
    """A URL-form DSN; the password is percent-encoded."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    return f"postgresql://{auth}@{host}:{port}/{quote(dbname, safe='')}"


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
    dsn: str, options: ConnectOptions | None = None, *, autocommit: bool = False
) -> psycopg.Connection[dict[str, Any]]:
    """Open a connection (rows as dicts).

    Raises ConfigError for a DSN that does not parse, DatabaseUnreachable (exit 4)
    when the server does not accept the connection within the connect timeout.
    Messages show the DSN masked.
    """
    options = options or ConnectOptions()
    info = parse_dsn(dsn)
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
    pw = dsn_password(dsn)
    if pw:
        text = text.replace(pw, "****")
    text = redact(text).replace(dsn, mask_dsn(dsn))
    return " ".join(text.split())


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


def advisory_unlock(conn: psycopg.Connection[Any], name: str) -> None:
    """Release the session-level lock ``name`` (no error if it was not held)."""
    if conn.closed:
        return
    run_query(conn, "select pg_advisory_unlock(%s)", (lock_key(name),))
    if not conn.autocommit:
        commit(conn)


@contextlib.contextmanager
def advisory_lock(conn: psycopg.Connection[Any], name: str, timeout: float) -> Iterator[None]:
    """Hold the session-level lock ``name`` for the block; raise LockBusy (exit 5) if busy."""
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
                run_query(
                    admin, SQL("drop database if exists {} with (force)").format(Identifier(name))
                )
    finally:
        admin.close()


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
        return DatabaseError(message, hint=_privilege_hint(primary, conn), sqlstate=sqlstate)
    if sqlstate == "57014":
        return DatabaseError(
            f"the statement was cancelled: {primary}",
            hint="it ran longer than database.statement_timeout; raise it, or run this when the "
            "database is less busy",
            sqlstate=sqlstate,
        )
    state = f" [{sqlstate}]" if sqlstate else ""
    return DatabaseError(f"query failed: {text}{state}", sqlstate=sqlstate)


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
