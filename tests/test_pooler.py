"""Supabase connection strings: transaction-mode poolers and remote hosts without TLS.

Supabase cannot be reached from the tests, so a Supabase host name is paired
with ``hostaddr=127.0.0.1`` (libpq then connects there and never resolves the
name) on port 6543, where a local listener counts what reaches it. A command
that needs a session must refuse such a DSN with the listener untouched; a
read-only command must get through to it (which proves the listener would
have seen a connection). A forwarder on the same port to the real test
server shows that a connection which still reached a "pooler" cannot take an
advisory lock. Normal DSNs keep working against the real server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from ops import db
from ops.errors import ConfigError
from tests.conftest import PgServer, require_service

REF = "abcdefghijklmnopqrst"
PASSWORD = "Pooler-Secret-9f2Kq7"
SHARED = "aws-0-eu-west-1.pooler.supabase.com"
DEDICATED = f"db.{REF}.supabase.co"
POOLER_PORT = 6543


class Listener:
    """A TCP listener on 127.0.0.1:6543 that counts connections.

    With ``upstream`` it forwards each one to that local port (a stand-in for
    a pooler in front of the real server); without, it accepts and stays
    silent (a server that never answers).
    """

    def __init__(self, upstream: int | None = None) -> None:
        self.upstream = upstream
        self.accepted = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind(("127.0.0.1", POOLER_PORT))
        except OSError as exc:
            self._sock.close()
            require_service(False, f"port {POOLER_PORT} on 127.0.0.1 is taken ({exc})")
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._held.append(client)
            if self.upstream is not None:
                server = socket.create_connection(("127.0.0.1", self.upstream))
                self._held.append(server)
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for s in self._held:
            with contextlib.suppress(OSError):
                s.close()
        self._sock.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def silent_pooler() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture
def forwarding_pooler(pg: PgServer) -> Iterator[Listener]:
    listener = Listener(upstream=pg.port)
    yield listener
    listener.close()


def shared_pooler_dsn(dbname: str = "postgres", password: str = PASSWORD) -> str:
    return (
        f"postgresql://postgres.{REF}:{quote(password, safe='')}@{SHARED}:{POOLER_PORT}/{dbname}"
        "?hostaddr=127.0.0.1&sslmode=require"
    )


def dedicated_pooler_dsn(dbname: str = "postgres", password: str = PASSWORD) -> str:
    return (
        f"host={DEDICATED} hostaddr=127.0.0.1 port={POOLER_PORT} user=postgres "
        f"password={password} dbname={dbname} sslmode=require"
    )


POOLERS = {"shared": shared_pooler_dsn, "dedicated": dedicated_pooler_dsn}
SESSION_COMMANDS = [
    ("migrate", "up", "--yes"),
    ("migrate", "down", "--to", "0", "--yes"),
    ("migrate", "heal", "--apply", "--yes"),
    ("db", "seed-demo", "--yes"),
    ("up", "--yes"),
]


def flat(text: str) -> str:
    return "".join(text.split())


@pytest.fixture
def quick_timeout(tmp_path: Path) -> None:
    (tmp_path / "empire-ops.toml").write_text('[database]\nconnect_timeout = "1s"\n')


# -- the refusal -----------------------------------------------------------------------
@pytest.mark.parametrize("pooler", sorted(POOLERS))
@pytest.mark.parametrize("args", SESSION_COMMANDS, ids=" ".join)
def test_session_commands_refuse_a_transaction_pooler_before_connecting(
    args: tuple[str, ...], pooler: str, silent_pooler: Listener, quick_timeout: None, cli
) -> None:
    result = cli(*args, env={"DATABASE_URL": POOLERS[pooler]()})
    assert result.exit_code == 2, result.output
    if args[0] == "up":
        # up refuses its migrate step from the DSN alone, then ends as always by building
        # the dashboard, whose reads may go through a pooler (as `migrate status`'s do):
        # one attempt reaches the silent listener and times out, and the page says so.
        assert silent_pooler.accepted <= 1
        assert "\ndashboard: " in result.stdout
    else:
        assert silent_pooler.accepted == 0  # refused from the DSN alone: no connection, no DNS
    kind = "shared pooler (Supavisor)" if pooler == "shared" else "dedicated pooler (PgBouncer)"
    said = flat(result.output)  # `up` wraps its findings table
    assert flat(f"{kind} in transaction mode") in said
    assert flat("advisory lock needs a database session of its own") in said
    assert flat("session pooler (the same pooler host on port 5432)") in said
    assert flat("direct host (db.<project-ref>.supabase.co:5432)") in said
    assert flat(db.POOLER_RUNBOOK) in said
    assert PASSWORD not in said


def test_a_read_only_command_only_warns_and_does_reach_the_listener(
    silent_pooler: Listener, quick_timeout: None, cli
) -> None:
    """The control of the test above: a command that needs no session connects (and times out)."""
    result = cli("migrate", "status", env={"DATABASE_URL": shared_pooler_dsn()})
    assert result.exit_code == 4, result.output  # the silent listener never answers
    assert silent_pooler.accepted >= 1
    assert "transaction mode" in result.output and "refuse it" in result.output  # the warning
    assert PASSWORD not in result.output


def test_the_lock_helper_refuses_a_connection_that_reached_a_pooler(
    pg: PgServer, fresh_db: str, forwarding_pooler: Listener
) -> None:
    """A connection opened without ``session=`` still cannot take a lock through the pooler."""
    dbname = db.parse_dsn(fresh_db).dbname
    pg.login_role(f"postgres.{REF}", dbname=dbname, password=PASSWORD)  # Supavisor's user name
    dsn = shared_pooler_dsn(dbname).replace("sslmode=require", "sslmode=prefer")
    with db.connect(dsn, autocommit=True) as conn:  # reads through a pooler are fine
        assert db.run_query(conn, "select 1 as one") == [{"one": 1}]
        assert conn.prepare_threshold is None  # the pooler cannot keep prepared statements
        with pytest.raises(ConfigError) as caught, db.advisory_lock(conn, "migrate", 1):
            pytest.fail("the lock was taken through a transaction pooler")
        assert "the 'migrate' advisory lock needs a database session" in caught.value.message
        assert caught.value.exit_code == 2
    with pg.admin() as admin:
        held = admin.execute("select count(*) from pg_locks where locktype = 'advisory'")
        assert held.fetchone() == (0,)
    before = forwarding_pooler.accepted
    with pytest.raises(ConfigError, match="session of its own"):
        db.connect(dsn, session="the 'migrate' advisory lock")
    assert forwarding_pooler.accepted == before


@pytest.mark.parametrize(
    "dsn, refused",
    [
        (f"postgresql://postgres.{REF}:pw@{SHARED}:6543/postgres", True),
        (f"postgresql://postgres:pw@{DEDICATED}:6543/postgres", True),
        (f"host={DEDICATED.upper()} port=6543 user=postgres", True),
        (f"host=db.example.com,{SHARED} port=5432,6543 user=postgres.{REF}", True),
        (f"postgresql://postgres.{REF}:pw@{SHARED}:5432/postgres", False),  # session pooler
        (f"postgresql://postgres:pw@{DEDICATED}:5432/postgres", False),  # the database itself
        ("postgresql://app:pw@db.example.com:6543/empire", False),  # not Supabase: no guess
        ("postgresql://app:pw@127.0.0.1:6543/empire", False),
    ],
)
def test_the_rule_reads_the_parsed_dsn(dsn: str, refused: bool) -> None:
    if refused:
        with pytest.raises(ConfigError) as caught:
            db.require_session(dsn, "a test")
        assert "pw" not in caught.value.message.split(":")
    else:
        db.require_session(dsn, "a test")


def test_a_normal_dsn_still_takes_its_lock_and_migrates(pg: PgServer, fresh_db: str, cli) -> None:
    with db.connect(fresh_db, autocommit=True, session="a test") as conn:
        assert conn.prepare_threshold == 5
        with db.advisory_lock(conn, "pooler-test", 1), pg.admin() as admin:
            held = admin.execute("select count(*) from pg_locks where locktype = 'advisory'")
            assert held.fetchone() == (1,)
    result = cli("migrate", "up", "--yes", env={"DATABASE_URL": fresh_db})
    assert result.exit_code == 0, result.output
    assert "applied" in result.output
    assert "sslmode" not in result.output and "transaction mode" not in result.output


# -- TLS for remote hosts -----------------------------------------------------------------
@pytest.mark.parametrize(
    "dsn, expect",
    [
        ("postgresql://app:pw@db.example.com:5432/empire", "has no sslmode for the remote host"),
        ("postgresql://app:pw@db.example.com/empire?sslmode=prefer", "has sslmode=prefer"),
        ("postgresql://app:pw@db.example.com/empire?sslmode=allow", "has sslmode=allow"),
        ("postgresql://app:pw@db.example.com/empire?sslmode=disable", "sets sslmode=disable"),
        ("host=10.0.0.5 user=app sslmode=disable", "sets sslmode=disable"),
        ("host=localhost,db.example.com user=app", "remote host db.example.com"),
        ("postgresql://app:pw@db.example.com/empire?sslmode=require", None),
        ("postgresql://app:pw@db.example.com/empire?sslmode=verify-ca", None),
        ("postgresql://app:pw@db.example.com/empire?sslmode=verify-full", None),
        ("postgresql://app:pw@localhost:5432/empire", None),
        ("postgresql://app:pw@127.0.0.1:5432/empire?sslmode=disable", None),
        ("postgresql://app:pw@[::1]:5432/empire", None),
        ("host=/var/run/postgresql user=app", None),
        ("postgresql://app@%2Ftmp/empire", None),
    ],
)
def test_a_remote_host_must_require_tls(dsn: str, expect: str | None) -> None:
    found = db.dsn_warnings(dsn)
    if expect is None:
        assert found == []
    else:
        assert len(found) == 1 and expect in found[0], found
        assert "pw" not in found[0].split()


def test_pgsslmode_counts_when_the_dsn_sets_none(monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = "postgresql://app:pw@db.example.com/empire"
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    assert db.dsn_warnings(dsn) == []
    monkeypatch.setenv("PGSSLMODE", "disable")
    assert "sets sslmode=disable" in db.dsn_warnings(dsn)[0]
    assert db.dsn_warnings(dsn + "?sslmode=require") == []  # the DSN's own wins


def _remote_looking(pg: PgServer, dsn: str, extra: str = "") -> str:
    """``dsn``'s database under a remote host name, reached at 127.0.0.1 (no DNS)."""
    info = db.parse_dsn(dsn)
    return (
        f"host=db.example.com hostaddr=127.0.0.1 port={info.port} user=postgres "
        f"password={pg.password} dbname={info.dbname} {extra}"
    )


def test_preflight_finds_and_commands_log_a_remote_host_without_tls(
    pg: PgServer, migrated_db: str, cli
) -> None:
    dsn = _remote_looking(pg, migrated_db)
    result = cli("preflight", env={"DATABASE_URL": dsn})
    assert "SECRETS_SUSPICIOUS" in result.stdout
    assert "remote host db.example.com" in result.output
    assert "DB_REACHABLE" in result.stdout  # a warning, not a refusal
    assert result.exit_code == 0, result.output
    status = cli(
        "migrate",
        "status",
        env={"DATABASE_URL": _remote_looking(pg, migrated_db, "sslmode=disable")},
    )
    assert status.exit_code == 0, status.output
    assert "sets sslmode=disable for the remote host db.example.com" in status.stderr
    assert pg.password not in result.output + status.output
