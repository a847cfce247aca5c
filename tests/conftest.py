"""Shared fixtures: real PostgreSQL servers, an isolated working folder, CLI runners.

Services are real (see DESIGN.md "Real services in tests"): the embedded
PostgreSQL 18 from the wheel, one cluster per session and a fresh database per
test cloned from a template; the system PostgreSQL 15 for cross-version tests.
A service missing on a laptop is skipped with its reason; with CI=true a
missing service fails the run, so CI never skips silently.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from ops.embedded import PostgresCluster, free_port, read_passfile_password, superuser_dsn
from ops.logs import clear_secret_values

PG15_BIN = Path(os.environ.get("EMPIRE_PG15_BIN", "/usr/lib/postgresql/15/bin"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent
TEMPLATE_DB = "empire_template"


def require_service(available: bool, reason: str) -> None:
    """Skip with ``reason`` on a laptop; fail under CI=true, where everything must exist."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"required test service missing under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


# -- isolation -----------------------------------------------------------------------
_SCRUB = (
    "DATABASE_URL",
    "SUPABASE_DB_URL",
    "EMPIRE_OPS_CONFIG",
    "EMPIRE_ENV",
    "EMPIRE_OPS_LOG_FORMAT",
    "EMPIRE_OPS_LOG_LEVEL",
)


@pytest.fixture(autouse=True)
def _isolated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Each test runs in its own folder with no ambient config, DSN or redaction state."""
    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    _let_postgres_through(tmp_path, tmp_path_factory)
    monkeypatch.chdir(tmp_path)
    clear_secret_values()
    yield
    clear_secret_values()


def _let_postgres_through(tmp_path: Path, factory: pytest.TempPathFactory) -> None:
    """As root, let the PostgreSQL OS user pass through pytest's private temporary folders.

    A test whose project (and so whose embedded server's state folder) is
    ``tmp_path`` needs the server's OS user to reach it; empire-ops itself
    never changes a folder's mode, it says which folder blocks. pytest makes
    its root 0700 again at the next session.
    """
    if os.geteuid() != 0:
        return
    root = factory.getbasetemp().parent
    for folder in [tmp_path, *tmp_path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
        if folder == root:
            break


def server_tmpdir(prefix: str) -> Path:
    """A temporary folder the PostgreSQL OS user can reach.

    pytest keeps its own temporary root private (mode 0700), and PostgreSQL runs
    as an unprivileged user when the tests run as root, so server data lives in
    a folder of its own that only grants traversal (0711).
    """
    path = Path(tempfile.mkdtemp(prefix=f"empire-{prefix}-"))
    path.chmod(0o711)
    return path


# -- PostgreSQL 18 (embedded wheel) ------------------------------------------------------
@dataclass
class PgServer:
    cluster: PostgresCluster
    port: int

    def dsn(self, dbname: str = "postgres") -> str:
        """The superuser's DSN; its password comes from the cluster's 0600 passfile."""
        return superuser_dsn(self.port, dbname, self.cluster.passfile)

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.dsn(), autocommit=True)

    @property
    def password(self) -> str:
        """The superuser's password (for tests that must put one in a DSN)."""
        password = read_passfile_password(self.cluster.passfile)
        assert password, f"no password in {self.cluster.passfile}"
        return password

    def login_role(
        self,
        name: str,
        attributes: str = "",
        dbname: str = "postgres",
        password: str | None = None,
    ) -> str:
        """(Re)create the login role ``name`` with a password (random by default); its DSN.

        The server asks every role for a password (scram-sha-256), so a test's
        role gets one, held in the returned DSN. ``attributes`` are extra
        CREATE ROLE options such as ``"createdb"`` (test-controlled SQL).
        """
        from psycopg import sql

        from ops.db import make_dsn

        password = password or secrets.token_urlsafe(16)
        with self.admin() as conn:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("create role {} login password {} " + attributes).format(
                    sql.Identifier(name), sql.Literal(password)
                )
            )
        return make_dsn("127.0.0.1", self.port, name, dbname, password)


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """One real PostgreSQL 18 (+pgvector) for the whole session."""
    root = server_tmpdir("pg18")
    cluster = PostgresCluster(root / "pgdata", port=free_port())
    port = cluster.start()
    server = PgServer(cluster, port)
    with server.admin() as conn:
        conn.execute(f"create database {TEMPLATE_DB}")
    yield server
    cluster.destroy()
    shutil.rmtree(root, ignore_errors=True)


_counter = itertools.count()


def _cloned_db(pg: PgServer, template: str | None, prefix: str) -> Iterator[str]:
    """A new database on ``pg`` (cloned from ``template`` when given), dropped after."""
    name = f"{prefix}{os.getpid()}_{next(_counter)}"
    clone = f" template {template}" if template else ""
    with pg.admin() as conn:
        conn.execute(f"create database {name}{clone}")
    yield pg.dsn(name)
    with pg.admin() as conn:
        conn.execute(f"drop database if exists {name} with (force)")


@pytest.fixture
def fresh_db(pg: PgServer) -> Iterator[str]:
    """A DSN to a new, empty database cloned from the session template; dropped after."""
    yield from _cloned_db(pg, TEMPLATE_DB, "t")


@dataclass
class LowPrivDb:
    """A database owned by a role that is not superuser and has no CREATE on it."""

    dsn: str  # as the low-privilege role
    admin_dsn: str  # the same database as the superuser
    role: str
    dbname: str


def low_privilege_db(pg: PgServer, template: str | None, prefix: str) -> Iterator[LowPrivDb]:
    """A database cloned from ``template``, owned by a new role without CREATE on it.

    Like Supabase's own ``postgres`` role: it owns the database and its
    ``public`` schema, may connect and create tables there, but is not
    superuser, cannot create databases or roles, and cannot create schemas.
    """
    from psycopg import sql

    name = f"{prefix}{os.getpid()}_{next(_counter)}"
    role = f"{name}_owner"
    dsn = pg.login_role(role, "nosuperuser nocreatedb nocreaterole", dbname=name)
    clone = sql.SQL(" template {}").format(sql.Identifier(template)) if template else sql.SQL("")
    with pg.admin() as conn:
        conn.execute(
            sql.SQL("create database {} owner {}").format(
                sql.Identifier(name), sql.Identifier(role)
            )
            + clone
        )
        conn.execute(
            sql.SQL("revoke create on database {} from {}, public").format(
                sql.Identifier(name), sql.Identifier(role)
            )
        )
    with psycopg.connect(pg.dsn(name), autocommit=True) as conn:
        conn.execute(sql.SQL("alter schema public owner to {}").format(sql.Identifier(role)))
    yield LowPrivDb(dsn=dsn, admin_dsn=pg.dsn(name), role=role, dbname=name)
    with pg.admin() as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


@pytest.fixture
def lowpriv_db(pg: PgServer) -> Iterator[LowPrivDb]:
    """An empty database owned by a role without superuser and without CREATE on it."""
    yield from low_privilege_db(pg, TEMPLATE_DB, "lp")


@pytest.fixture
def lowpriv_migrated_db(pg: PgServer, migrated_template: str) -> Iterator[LowPrivDb]:
    """The migrated schema, used by a low-privilege owner with a managed project's grants.

    The migrations ran as the superuser (as Supabase's own do); the role may
    read the migration history and read and write the app's tables, and no more.
    """
    from psycopg import sql

    for db in low_privilege_db(pg, migrated_template, "lm"):
        role = sql.Identifier(db.role)
        with psycopg.connect(db.admin_dsn, autocommit=True) as conn:
            for schema in ("supabase_migrations", "ops"):
                conn.execute(
                    sql.SQL("grant usage on schema {} to {}").format(sql.Identifier(schema), role)
                )
                conn.execute(
                    sql.SQL("grant select on all tables in schema {} to {}").format(
                        sql.Identifier(schema), role
                    )
                )
            conn.execute(
                sql.SQL(
                    "grant select, insert, update, delete, truncate on all tables in schema public "
                    "to {}"
                ).format(role)
            )
            conn.execute(
                sql.SQL("grant usage on all sequences in schema public to {}").format(role)
            )
            # The credentials' schema (decision 0008) is the app's too, not the API's.
            conn.execute(sql.SQL("grant usage on schema empire_private to {}").format(role))
            conn.execute(
                sql.SQL(
                    "grant select, insert, update, delete, truncate on all tables in schema "
                    "empire_private to {}"
                ).format(role)
            )
        yield db  # fmt: skip


# -- PostgreSQL 15 (system binaries) ---------------------------------------------------
@pytest.fixture(scope="session")
def pg15(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """The system PostgreSQL 15, initdb'd into a temporary folder, on a free port."""
    require_service(
        (PG15_BIN / "postgres").exists(),
        f"system PostgreSQL 15 binaries not found in {PG15_BIN} (apt-get install postgresql-15)",
    )
    root = server_tmpdir("pg15")
    cluster = PostgresCluster(root / "pgdata", bin_dir=PG15_BIN, port=free_port())
    port = cluster.start()
    yield PgServer(cluster, port)
    cluster.destroy()
    shutil.rmtree(root, ignore_errors=True)


# -- CLI -------------------------------------------------------------------------------
@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def cli() -> object:
    """Invoke the typer app in-process: ``cli("config", "validate")`` -> CliResult."""
    from ops.cli import app

    runner = CliRunner()

    def invoke(
        *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> CliResult:
        result = runner.invoke(app, list(args), env=env, input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def run_cli() -> object:
    """Run ``python -m ops`` in a real subprocess: ``run_cli("db", "status")`` -> CliResult."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 120,
        input: str | None = None,
    ) -> CliResult:
        full_env = {**os.environ, **(env or {})}
        full_env.setdefault("PYTHONPATH", str(REPO))
        proc = subprocess.run(
            [sys.executable, "-m", "ops", *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
            input=input,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (a hung database)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for s in held:
        s.close()
    srv.close()


# -- migrated databases ------------------------------------------------------------------
MIGRATED_TEMPLATE_DB = "empire_migrated_template"


@pytest.fixture(scope="session")
def migrated_template(pg: PgServer) -> str:
    """Database ``empire_migrated_template`` with every shipped migration applied (once)."""
    from ops.migrate.runner import apply_all_to

    with pg.admin() as conn:
        conn.execute(f"drop database if exists {MIGRATED_TEMPLATE_DB}")
        conn.execute(f"create database {MIGRATED_TEMPLATE_DB} template {TEMPLATE_DB}")
    apply_all_to(pg.dsn(MIGRATED_TEMPLATE_DB))
    return MIGRATED_TEMPLATE_DB


@pytest.fixture
def migrated_db(pg: PgServer, migrated_template: str) -> Iterator[str]:
    """A DSN to a new database cloned from the migrated template; dropped after."""
    yield from _cloned_db(pg, migrated_template, "m")


# -- OpenBao (a real Vault-API server) -----------------------------------------------------
# Imported last: tests/openbao.py uses require_service from this module.
from tests.openbao import (  # noqa: E402
    openbao,
    openbao_server,
    openbao_tls,
    openbao_uninitialised,
)

__all__ = ["openbao", "openbao_server", "openbao_tls", "openbao_uninitialised"]

# Real SMTP and webhook servers (tests/mailservers.py).
from tests.mailservers import cert_path, smtp, smtp_tls, webhook  # noqa: E402, F401
