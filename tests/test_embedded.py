"""The embedded PostgreSQL lifecycle through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import psycopg
import pytest

from ops.embedded import PostgresCluster, read_passfile_password
from ops.errors import ConfigError


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch, run_cli):
    """A project folder whose embedded server is stopped and removed afterwards."""
    from tests.conftest import server_tmpdir

    folder = server_tmpdir("project")
    monkeypatch.chdir(folder)
    yield folder
    run_cli("db", "stop")
    PostgresCluster(folder / ".empire" / "pgdata").destroy()
    shutil.rmtree(folder, ignore_errors=True)


def _status(run_cli) -> dict:
    result = run_cli("db", "status", "--json")
    return json.loads(result.stdout)["data"]


def test_start_status_stop_and_restart_after_kill_9(project: Path, run_cli) -> None:
    first = run_cli("db", "start")
    assert first.exit_code == 0, first.output
    status = _status(run_cli)
    assert status["running"] is True
    assert status["version"].startswith("18.")
    assert status["vector_available"] is True
    assert status["data_dir"] == str(project / ".empire" / "pgdata")

    # vector really is installable there
    with psycopg.connect(status["url"], autocommit=True) as conn:
        conn.execute("create extension if not exists vector")
        assert conn.execute("select '[1,2]'::vector(2)::text").fetchone()[0] == "[1,2]"

    # idempotent: a second start changes nothing
    again = run_cli("db", "start")
    assert again.exit_code == 0
    assert _status(run_cli)["pid"] == status["pid"]

    # url prints the DSN without a password: it names the 0600 password file instead
    url = run_cli("db", "url")
    assert url.stdout.strip() == status["url"]
    passfile = project / ".empire" / "pgpass"
    assert status["url"].endswith(f"?passfile={passfile}")
    password = read_passfile_password(passfile)
    assert password and password not in url.output and "password" not in status["url"]

    # kill -9 the postmaster: start recovers, on the same port, with the data intact
    os.kill(status["pid"], 9)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _status(run_cli)["running"]:
        time.sleep(0.1)
    recovered = run_cli("db", "start")
    assert recovered.exit_code == 0, recovered.output
    after = _status(run_cli)
    assert after["running"] and after["pid"] != status["pid"]
    assert after["port"] == status["port"]
    with psycopg.connect(after["url"]) as conn:
        assert conn.execute("select extname from pg_extension where extname='vector'").fetchone()

    stopped = run_cli("db", "stop")
    assert stopped.exit_code == 0 and "stopped" in stopped.stdout
    down = run_cli("db", "status")
    assert down.exit_code == 1 and "running:   no" in down.stdout
    assert run_cli("db", "stop").stdout.strip() == "embedded PostgreSQL was not running"


def test_start_survives_a_stale_pid_file(project: Path, run_cli) -> None:
    assert run_cli("db", "start").exit_code == 0
    assert run_cli("db", "stop").exit_code == 0
    pid_file = project / ".empire" / "pgdata" / "postmaster.pid"
    # a pid file left by a crash, naming a process that no longer exists
    pid_file.write_text("999999\n" + str(project / ".empire" / "pgdata") + "\n0\n5432\n")
    result = run_cli("db", "start")
    assert result.exit_code == 0, result.output
    assert _status(run_cli)["running"] is True


def test_url_when_not_running_is_a_clear_error(project: Path, run_cli) -> None:
    result = run_cli("db", "url")
    assert result.exit_code == 1
    assert "not running" in result.stderr and "empire-ops db start" in result.stderr


def test_configured_port_that_is_taken_is_a_clear_error(project: Path, run_cli) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        (project / "empire-ops.toml").write_text(f"[embedded]\nport = {port}\n")
        result = run_cli("db", "start")
    assert result.exit_code == 1
    assert f"port {port}" in result.stderr and "taken" in result.stderr


# -- the server is locked: a password for every connection ------------------------------
def _psql() -> str:
    """A psql the unprivileged test user can run: the system one, else the wheel's."""
    from ops.embedded import wheel_install_dir

    system = shutil.which("psql")
    return system or str(wheel_install_dir() / "bin" / "psql")


def _as_nobody() -> dict:
    """subprocess arguments that run a command as the unprivileged `nobody` (when root)."""
    import pwd

    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("nobody")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def test_password_auth_passfile_and_psql_accepts_db_url(project: Path, run_cli) -> None:
    import stat
    import subprocess

    assert run_cli("db", "start").exit_code == 0
    url = run_cli("db", "url").stdout.strip()
    passfile = project / ".empire" / "pgpass"
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    hba = (project / ".empire" / "pgdata" / "pg_hba.conf").read_text()
    assert "trust" not in [w for line in hba.splitlines() if not line.startswith("#")
                           for w in line.split()]  # fmt: skip

    # psql takes `db url` as it is printed
    ok = subprocess.run(
        [_psql(), url, "-XAtc", "select current_user || '@' || current_database()"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "postgres@empire"

    # without the password file the server asks for a password, and gets none
    bare = url.split("?", 1)[0]
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(bare, passfile=str(project / "no-such-passfile"), connect_timeout=5)

    # an unauthenticated local user cannot reach COPY ... TO PROGRAM any more
    marker = Path("/tmp") / f"empire-pwned-{os.getpid()}"
    attack = subprocess.run(
        [_psql(), bare, "-Xc", f"copy (select 1) to program 'touch {marker}'"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, cwd="/",
        env={"PATH": os.environ.get("PATH", ""), "PGPASSFILE": "/nonexistent"}, **_as_nobody(),
    )  # fmt: skip
    assert attack.returncode != 0
    assert "password" in attack.stderr
    assert not marker.exists()
    # and it cannot read the password file either
    if os.geteuid() == 0:
        peek = subprocess.run(["cat", str(passfile)], capture_output=True, **_as_nobody())
        assert peek.returncode != 0 and not peek.stdout


def test_a_trust_cluster_of_an_earlier_version_is_switched_to_passwords(
    project: Path, run_cli
) -> None:
    """A cluster that an earlier empire-ops made (trust, no passfile), running, keeps its data."""
    import subprocess

    from ops.embedded import PostgresCluster

    data = project / ".empire" / "pgdata"
    old = PostgresCluster(data)  # only for its binaries and OS user
    data.mkdir(parents=True, mode=0o700)
    entry = old.run_as()
    ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []} if entry else {}
    if entry:
        os.chown(data, entry.pw_uid, entry.pw_gid)
    binary = old.bin_dir
    subprocess.run(
        [str(binary / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "--no-locale", "--no-instructions"],
        check=True, capture_output=True, cwd="/", **ids,
    )  # fmt: skip
    from ops.embedded import free_port

    port = free_port()
    subprocess.run(
        [str(binary / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"), "-w", "-o",
         f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''", "start"],
        check=True, capture_output=True, cwd="/", **ids,
    )  # fmt: skip
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as c:
        c.execute("create database empire")
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/empire", autocommit=True) as c:
        c.execute("create table kept (id int)")
    old_pid = old.pid()

    result = run_cli("db", "start")
    assert result.exit_code == 0, result.output
    assert "switching the embedded PostgreSQL" in result.stderr
    status = _status(run_cli)
    assert status["running"] and status["pid"] != old_pid
    with psycopg.connect(status["url"]) as conn:
        assert conn.execute("select to_regclass('public.kept') is not null").fetchone()[0]
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(status["url"].split("?")[0], passfile="/nonexistent", connect_timeout=5)
    assert "trust" not in (data / "pg_hba.conf").read_text()
    # the second start finds it locked already and changes nothing
    assert run_cli("db", "start").exit_code == 0
    assert _status(run_cli)["pid"] == status["pid"]


def test_a_lost_password_file_is_recovered_with_a_new_password(project: Path, run_cli) -> None:
    assert run_cli("db", "start").exit_code == 0
    passfile = project / ".empire" / "pgpass"
    first = read_passfile_password(passfile)
    passfile.unlink()
    result = run_cli("db", "start")
    assert result.exit_code == 0, result.output
    second = read_passfile_password(passfile)
    assert second and second != first
    with psycopg.connect(_status(run_cli)["url"]) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_a_password_file_open_to_others_is_refused(project: Path, run_cli) -> None:
    assert run_cli("db", "start").exit_code == 0
    passfile = project / ".empire" / "pgpass"
    passfile.chmod(0o644)
    result = run_cli("db", "start")
    assert result.exit_code == 2
    assert "readable by other users" in result.stderr and f"chmod 600 {passfile}" in result.stderr
    passfile.chmod(0o600)


# -- two runs at once ----------------------------------------------------------------------
def _spawn(*args: str, cwd: Path):
    import subprocess
    import sys

    from tests.conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "ops", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("command", [("db", "start"), ("up",)])
def test_two_starts_at_once_in_a_fresh_folder(project: Path, run_cli, command) -> None:
    """Both are started before either has made the cluster: one inits, the other waits."""
    procs = [_spawn(*command, cwd=project) for _ in range(2)]
    results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, f"exit {code}\n{out}\n{err}"
        assert "pg_ctl" not in err and "initdb failed" not in err
    status = _status(run_cli)
    assert status["running"] is True
    if command == ("db", "start"):
        ports = {out.strip().split("127.0.0.1:")[1].split()[0] for _, out, _ in results}
        assert ports == {str(status["port"])}
    else:
        assert all("result: ok" in out for _, out, _ in results)


def test_a_start_that_waits_too_long_for_the_lock_is_busy(project: Path, run_cli) -> None:
    from ops.fsutil import file_lock

    (project / "empire-ops.toml").write_text('[database]\nlock_timeout = "1s"\n')
    with file_lock(project / ".empire" / "embedded.lock", timeout=0, what="a test"):
        result = run_cli("db", "start")
    assert result.exit_code == 5, result.output
    assert "another empire-ops run is busy with starting the embedded PostgreSQL" in result.stderr
    assert "hint: wait for it to finish" in result.stderr
    assert not (project / ".empire" / "pgdata" / "PG_VERSION").exists()
    # once the lock is free, it starts
    assert run_cli("db", "start").exit_code == 0


NO_SUCH_USER = "empire-ops-no-such-user"


def test_as_root_without_os_user_or_a_postgres_user_it_refuses_with_the_fix(
    tmp_path: Path,
) -> None:
    """Root, no embedded.os_user, no default OS user: exit 2 naming the fix; nothing made.

    The default user's name is the cluster's ``default_os_user`` (``postgres``
    in the product), so the test names one this system does not have.
    """
    import pwd

    from tests.conftest import require_service

    require_service(os.geteuid() == 0, "runs as root only (PostgreSQL's user is then chosen)")
    with pytest.raises(KeyError):
        pwd.getpwnam(NO_SUCH_USER)
    cluster = PostgresCluster(tmp_path / ".empire" / "pgdata", default_os_user=NO_SUCH_USER)
    with pytest.raises(ConfigError) as caught:
        cluster.start()
    error = caught.value
    assert error.exit_code == 2  # configuration, README "Exit codes"
    assert "PostgreSQL refuses to run as root" in error.message
    assert f"no `{NO_SUCH_USER}` user" in error.message
    assert "embedded.os_user is not set" in error.message
    assert error.hint is not None
    assert "set embedded.os_user to an existing unprivileged user" in error.hint
    assert "useradd --system" in error.hint and 'embedded.os_user = "empire_ops"' in error.hint
    # Nothing was changed on the system: no user, no data folder.
    with pytest.raises(KeyError):
        pwd.getpwnam(NO_SUCH_USER)
    with pytest.raises(KeyError):
        pwd.getpwnam("empire_ops")
    assert not (tmp_path / ".empire" / "pgdata").exists()


def test_as_root_a_configured_os_user_that_does_not_exist_is_exit_2(project: Path, run_cli) -> None:
    from tests.conftest import require_service

    require_service(os.geteuid() == 0, "runs as root only (PostgreSQL's user is then chosen)")
    (project / "empire-ops.toml").write_text(f'[embedded]\nos_user = "{NO_SUCH_USER}"\n')
    result = run_cli("db", "start")
    assert result.exit_code == 2, result.output
    assert f"embedded.os_user {NO_SUCH_USER!r} is not a user on this system" in result.stderr
    assert "hint: create it" in result.stderr and "useradd" in result.stderr
    assert not (project / ".empire" / "pgdata").exists()
