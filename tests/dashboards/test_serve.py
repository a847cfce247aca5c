"""`dashboard serve`: a real waitress server on 127.0.0.1, a real HTTP client, a real database.

Nothing is mocked: the app collects from a migrated PostgreSQL, requests go
through waitress over TCP (httpx, or a raw socket where httpx would tidy the
path first), and the CLI runs in-process and as a subprocess. ``collect`` is
only wrapped to count the collections.
"""

from __future__ import annotations

import logging
import os
import re
import secrets as pysecrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboards.collect import collect_snapshot
from dashboards.serve import (
    SECURITY_HEADERS,
    DashboardApp,
    DashboardServer,
    FailureThrottle,
    QueueDepthSampler,
    make_app,
    warn_unless_loopback,
)
from ops.config import Config, load_config
from tests.conftest import REPO
from tests.helpers import encoded_forms, write_config, write_env

TOKEN_NAME = "ADMIN_DASHBOARD_TOKEN"
PAGE_PATHS = ("/", "/admin/db-health", "/runbooks/DB_UNREACHABLE.md")
TRAVERSALS = (
    "/runbooks/../pyproject.toml",
    "/runbooks/%2e%2e/pyproject.toml",
    "/runbooks/%2E%2E/pyproject.toml",
    "/runbooks/..%2fpyproject.toml",
    "/runbooks/%2e%2e%2fpyproject.toml",
    "/runbooks/..%5cpyproject.toml",
    "/runbooks/..\\pyproject.toml",
    "/runbooks/%5c..%5cpyproject.toml",
    "/runbooks/DB_UNREACHABLE.md%00",
    "/runbooks/DB_UNREACHABLE.md%00.txt",
    "/runbooks/%2fetc%2fpasswd",
    "/runbooks//etc/passwd",
    "//etc/passwd",
    "/../../../../etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd",
    "/runbooks/DB%5fUNREACHABLE.md",
    "/runbooks/incidents/../DB_UNREACHABLE.md",
    "/runbooks/",
    "/runbooks",
    "http://127.0.0.1/../pyproject.toml",
    "/runbooks/\x00",
)


class Clock:
    """A clock the test moves by hand (the cache and the throttle read it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    app: DashboardApp
    server: DashboardServer
    clock: Clock
    collections: list[float] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def token() -> str:
    """The real token: a random canary, searched for in every answer and log line."""
    return "canary-" + pysecrets.token_urlsafe(32)


def serve(config: Config, token: str, collect: Callable[..., Any] | None = None) -> Served:
    clock = Clock()
    collections: list[float] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        collections.append(time.monotonic())
        return (collect or collect_snapshot)(*args, **kwargs)

    app = make_app(config, token, clock=clock, window=60.0, collect=counted)
    server = DashboardServer(app, "127.0.0.1", 0).start()
    return Served(app, server, clock, collections)


@pytest.fixture
def served(dashboard_config: Config, token: str) -> Iterator[Served]:
    """The app on a real waitress server, on 127.0.0.1 and a free port."""
    s = serve(dashboard_config, token)
    yield s
    s.server.close()


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        yield client


def raw_request(
    port: int, target: str, token: str | None, method: str = "GET"
) -> tuple[int, bytes]:
    """Send the request line exactly as given (httpx would resolve ``..``); (status, body)."""
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((head + "\r\n").encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS:
        assert response.headers.get(name) == value, (response.status_code, name)
    assert response.headers["server"] == "empire-ops"  # no version


# -- the token -------------------------------------------------------------------------------
def test_no_token_is_401_on_every_path(served: Served, http: httpx.Client) -> None:
    for path in (*PAGE_PATHS, "/nope", "/runbooks/"):
        r = http.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == 'Bearer realm="empire-ops dashboard"'
        assert "banner" not in r.text and "schema_version" not in r.text
        assert_security_headers(r)
    assert http.post("/", content=b"x").status_code == 401  # the token comes before the method
    # Seven requests without a token guessed nothing: the client is not made to wait.
    assert served.app.throttle.wait_for("127.0.0.1") == 0


def test_wrong_token_is_401(served: Served, http: httpx.Client, token: str) -> None:
    same_length = pysecrets.token_urlsafe(len(token))[: len(token)]
    for headers in (
        bearer(same_length),
        bearer(token[:-1]),  # a different length
        bearer(token + "x"),
        {"Authorization": f"Basic {token}"},  # the right value, the wrong scheme
        {"Authorization": "Bearer"},
    ):
        r = http.get("/admin/db-health", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer ")


def test_right_token_serves_the_page_and_the_json(
    served: Served, http: httpx.Client, token: str
) -> None:
    page = http.get("/", headers=bearer(token))
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'id="banner"' in page.text
    # The page's runbook links lead to this server (a fresh project has no alert channel).
    links = set(re.findall(r'href="(/runbooks/[^"]*)"', page.text))
    assert links
    for link in links:
        r = http.get(link, headers=bearer(token))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/markdown")
    assert_security_headers(page)
    data = http.get("/admin/db-health", headers=bearer(token))
    assert data.status_code == 200
    assert data.headers["content-type"] == "application/json"
    assert data.json()["schema_version"] == 1
    assert_security_headers(data)
    # The lower-case scheme is the same scheme (RFC 7235).
    assert http.get("/", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_head_answers_like_get_without_a_body(
    served: Served, http: httpx.Client, token: str
) -> None:
    for path in PAGE_PATHS:
        got = http.get(path, headers=bearer(token))
        head = http.head(path, headers=bearer(token))
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) == len(got.content)
        assert head.headers["content-type"] == got.headers["content-type"]
    assert http.head("/", headers=bearer("x" * 40)).status_code == 401


def test_other_methods_are_405(served: Served, http: httpx.Client, token: str) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        r = http.request(method, "/admin/db-health", headers=bearer(token))
        assert r.status_code == 405, method
        assert r.headers["allow"] == "GET, HEAD"
        assert_security_headers(r)


def test_unknown_paths_are_404(served: Served, http: httpx.Client, token: str) -> None:
    for path in (
        "/admin",
        "/admin/",
        "/admin/db-health/",
        "/admin/db-health.json",
        "/db-health.html",
        "/db-health.json",
        "/index.html",
        "/runbooks/DB_UNREACHABLE",
        "/runbooks/db_unreachable.md",
        "/runbooks/NO_SUCH_CODE_AT_ALL.md",
        "/runbooks/incidents/",
        "/favicon.ico",
    ):
        r = http.get(path, headers=bearer(token))
        assert r.status_code == 404, path
        assert_security_headers(r)


def test_every_traversal_form_is_refused(served: Served, token: str) -> None:
    project = (REPO / "pyproject.toml").read_bytes()
    runbook = (REPO / "runbooks" / "DB_UNREACHABLE.md").read_bytes()
    for target in TRAVERSALS:
        status, body = raw_request(served.server.port, target, token)
        assert status in (400, 404), (target, status)
        assert b"[project]" not in body and b"root:" not in body, target
        assert runbook[:200] not in body and project[:200] not in body, target
    # The same refusals without a token are 401: nothing about paths is told to strangers.
    assert raw_request(served.server.port, TRAVERSALS[0], None)[0] == 401


def test_a_runbook_is_served_as_markdown(served: Served, http: httpx.Client, token: str) -> None:
    r = http.get("/runbooks/DB_UNREACHABLE.md", headers=bearer(token))
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/markdown; charset=utf-8"
    assert r.content == (REPO / "runbooks" / "DB_UNREACHABLE.md").read_bytes()
    assert_security_headers(r)


# -- throttling ---------------------------------------------------------------------------
def test_repeated_failures_are_throttled_then_forgiven(
    served: Served, http: httpx.Client, token: str
) -> None:
    limit = int(served.app.throttle.max_failures)
    assert limit == 5  # [dashboard] max_failures
    assert http.get("/", headers=bearer(token)).status_code == 200
    for _ in range(limit):
        assert http.get("/", headers=bearer("wrong-" + token)).status_code == 401
    blocked = http.get("/", headers=bearer(token))  # the right token, too
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    assert_security_headers(blocked)
    assert http.get("/admin/db-health", headers=bearer("wrong")).status_code == 429
    assert http.get("/nope").status_code == 429
    # Another client address is not affected (the WSGI app, called as waitress would).
    assert call_app(served.app, "/admin/db-health", token, remote="10.0.0.2")[0] == "200 OK"
    assert call_app(served.app, "/admin/db-health", token, remote="127.0.0.1")[0].startswith("429")
    served.clock.now += 59
    assert http.get("/", headers=bearer(token)).status_code == 429
    served.clock.now += 1.5  # the window has passed
    assert http.get("/", headers=bearer(token)).status_code == 200


def call_app(app: DashboardApp, path: str, token: str | None, remote: str) -> tuple[str, bytes]:
    """Call the WSGI app directly with a client address of our choosing."""
    got: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "REQUEST_URI": path,
        "REMOTE_ADDR": remote,
        **({"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}),
    }
    body = b"".join(app(environ, lambda status, headers, exc_info=None: got.append(status)))
    return got[0], body


def test_the_failure_table_stays_bounded() -> None:
    clock = Clock()
    throttle = FailureThrottle(5, 60.0, clock, max_clients=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 250}.{i % 250}")
    assert len(throttle) <= 100
    for _ in range(5):
        assert throttle.wait_for("10.9.9.9") == 0
        throttle.failed("10.9.9.9")
    assert throttle.wait_for("10.9.9.9") == pytest.approx(60.0)
    clock.now += 61  # a sweep at the next failure drops everyone outside the window
    throttle.failed("10.8.8.8")
    assert len(throttle) == 1
    assert throttle.wait_for("10.9.9.9") == 0


# -- no token in any output ------------------------------------------------------------------
def test_failure_logs_name_the_client_path_and_reason_but_no_token(
    served: Served, http: httpx.Client, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "guess-" + pysecrets.token_urlsafe(32)
    with caplog.at_level(logging.INFO, logger="dashboards.serve"):
        http.get("/admin/db-health")
        http.get("/admin/db-health", headers=bearer(wrong))
    lines = [r.getMessage() for r in caplog.records if r.name == "dashboards.serve"]
    refused = [line for line in lines if "refused" in line]
    assert len(refused) == 2
    assert "127.0.0.1" in refused[0] and "/admin/db-health" in refused[0]
    assert refused[0].endswith("no token") and refused[1].endswith("wrong token")
    text = "\n".join([*lines, caplog.text])
    for secret in (wrong, token):
        for form in encoded_forms(secret):
            assert form not in text


def test_the_token_is_in_no_answer(served: Served, http: httpx.Client, token: str) -> None:
    answers = [http.head("/", headers=bearer(token)), http.post("/", headers=bearer(token))]
    answers += [
        http.get(path, headers=headers)
        for path in (*PAGE_PATHS, "/nope", "/runbooks/NOPE.md")
        for headers in ({}, bearer(token), bearer("x" * 43))
    ]
    for _ in range(5):
        answers.append(http.get("/", headers=bearer("wrong")))
    answers.append(http.get("/", headers=bearer(token)))  # 429
    assert {r.status_code for r in answers} >= {200, 401, 404, 405, 429}
    forms = encoded_forms(token)
    for r in answers:
        seen = r.text + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
        assert not [f for f in forms if f in seen], (r.request.url, r.status_code)


# -- the cache ---------------------------------------------------------------------------
def test_requests_within_the_cache_time_share_one_collection(
    served: Served, http: httpx.Client, token: str
) -> None:
    def fetch() -> str:
        return str(http.get("/admin/db-health", headers=bearer(token)).json()["generated_at"])

    with httpx.Client(base_url=served.base, timeout=30) as other:
        # 16 clients at once, before any copy exists: they wait for one collection.
        with_threads = run_concurrently(
            16, lambda: other.get("/", headers=bearer(token)).status_code
        )
    assert with_threads == [200] * 16
    first = fetch()
    assert fetch() == first
    assert len(served.collections) == 1
    served.clock.now += 31  # older than [dashboard] cache (30s): the next request rebuilds
    assert fetch() == first  # the previous copy, at once; the rebuild runs behind it
    served.app.cache.wait_idle()
    assert len(served.collections) == 2
    assert fetch() >= first
    assert served.app.cache.builds == 2


def run_concurrently(n: int, fn: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_a_failing_rebuild_serves_the_last_good_copy(dashboard_config: Config, token: str) -> None:
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("the collector broke")
        return collect_snapshot(*args, **kwargs)

    s = serve(dashboard_config, token, collect=flaky)
    try:
        with httpx.Client(base_url=s.base, timeout=30) as http:
            good = http.get("/admin/db-health", headers=bearer(token)).content
            s.clock.now += 31
            assert http.get("/admin/db-health", headers=bearer(token)).content == good
            s.app.cache.wait_idle()
            assert s.app.cache.failures == 1
            assert http.get("/admin/db-health", headers=bearer(token)).content == good
    finally:
        s.server.close()


def test_a_rebuild_that_never_works_is_503_and_the_server_lives_on(
    dashboard_config: Config, token: str
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no snapshot today " + token)  # a message holding the token

    s = serve(dashboard_config, token, collect=broken)
    try:
        with httpx.Client(base_url=s.base, timeout=30) as http:
            r = http.get("/", headers=bearer(token))
            assert r.status_code == 503
            assert "retry-after" in r.headers
            assert token not in r.text and "no snapshot today" not in r.text
            assert_security_headers(r)
            assert http.get("/runbooks/DB_UNREACHABLE.md", headers=bearer(token)).status_code == 200
            assert http.get("/admin/db-health", headers=bearer(token)).status_code == 503
        assert s.app.cache.builds == 1  # retried after a pause, not on every request
    finally:
        s.server.close()


# -- waitress ------------------------------------------------------------------------------
def test_an_idle_connection_is_dropped(dashboard_config: Config, token: str) -> None:
    """channel_timeout closes a connection that sends nothing (shortened here to 1 s)."""
    app = make_app(dashboard_config, token)
    server = DashboardServer(app, "127.0.0.1", 0, channel_timeout=1, cleanup_interval=1)
    with server.start(), socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(1024) == b""  # closed by the server, no answer
        assert time.monotonic() - started < 5


def test_oversized_headers_are_refused(served: Served, token: str) -> None:
    head = (
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Authorization: Bearer {token}\r\nX-Filler: {'a' * 20000}\r\n\r\n"
    )
    data = b""
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=10) as sock:
        try:
            sock.sendall(head.encode())
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:  # it closes without reading the rest of what we sent
            pass
    assert data.split(b" ", 2)[1] == b"431", data[:100]


def test_a_server_never_run_releases_its_port(dashboard_config: Config, token: str) -> None:
    server = DashboardServer(make_app(dashboard_config, token), "127.0.0.1", 0)
    port = server.port
    server.close()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))


def test_queue_depth_warnings_are_sampled() -> None:
    """waitress warns on every queued request; one line a minute goes through, with the worst."""
    clock = Clock()
    sampler = QueueDepthSampler(every=60.0, clock=clock)
    log = logging.getLogger("waitress.queue")

    def record(depth: int) -> logging.LogRecord:
        return log.makeRecord(
            log.name, logging.WARNING, __file__, 1, "Task queue depth is %d", (depth,), None
        )

    shown = [r for r in (record(d) for d in range(1, 1001)) if sampler.filter(r)]
    assert len(shown) == 1 and "up to 1 requests" in shown[0].getMessage()
    assert not sampler.filter(record(5))
    clock.now += 61
    last = record(2)
    assert sampler.filter(last)
    assert last.getMessage().startswith("up to 1000 requests waited for a worker thread (1001 ")


def test_a_non_loopback_address_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dashboards.serve"):
        assert not [h for h in ("127.0.0.1", "::1", "localhost") if warn_unless_loopback(h)]
        assert not caplog.records
        assert warn_unless_loopback("0.0.0.0")
    assert "TLS proxy" in caplog.text and "0.0.0.0" in caplog.text


# -- the command ---------------------------------------------------------------------------
def test_cli_without_the_token_exits_3_naming_the_secret(
    cli: Any, dashboard_config: Config
) -> None:
    result = cli("dashboard", "serve", "--port", "0")
    assert result.exit_code == 3, result.output
    assert TOKEN_NAME in result.output
    assert "token_urlsafe" in result.output  # how to make one
    assert "Traceback" not in result.output


def test_cli_with_a_short_token_exits_3(
    cli: Any, dashboard_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = "short-" + pysecrets.token_hex(6)
    monkeypatch.setenv(TOKEN_NAME, short)
    result = cli("dashboard", "serve", "--port", "0")
    assert result.exit_code == 3, result.output
    assert TOKEN_NAME in result.output and "shorter than 32" in result.output
    assert short not in result.output


def test_cli_on_a_port_in_use_exits_2(
    cli: Any, dashboard_config: Config, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv(TOKEN_NAME, token)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = cli("dashboard", "serve", "--port", str(port))
    assert result.exit_code == 2, result.output
    assert "already in use" in result.output and "--port" in result.output
    assert "Traceback" not in result.output and token not in result.output


@dataclass
class Process:
    proc: subprocess.Popen[str]
    port: int
    lines: list[str]

    def output(self) -> str:
        return "".join(self.lines)


def start_cli_server(cwd: Path, token: str, timeout: float = 60) -> Process:
    """``python -m ops dashboard serve --port 0`` with the token in its environment.

    Returns once the server has said where it listens (its stderr is read in
    a thread so the pipe never fills).
    """
    env = {**os.environ, TOKEN_NAME: token, "EMPIRE_OPS_LOG_FORMAT": "plain"}
    env.setdefault("PYTHONPATH", str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops", "dashboard", "serve", "--port", "0"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    found: list[int] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"serving http://127\.0\.0\.1:(\d+)/ and /admin/db-health", line)
            if m:
                found.append(int(m.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or not found:
        proc.kill()
        proc.wait()
        raise AssertionError("the server did not start:\n" + "".join(lines))
    return Process(proc, found[0], lines)


def stop(p: Process) -> tuple[int, float]:
    """SIGTERM; (exit code, seconds it took to exit)."""
    started = time.monotonic()
    p.proc.send_signal(signal.SIGTERM)
    try:
        code = p.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.proc.kill()
        raise
    return code, time.monotonic() - started


def test_cli_serves_in_a_subprocess_and_stops_on_sigterm(
    dashboard_config: Config, tmp_path: Path, token: str
) -> None:
    p = start_cli_server(tmp_path, token)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{p.port}", timeout=30) as http:
            assert http.get("/admin/db-health").status_code == 401
            r = http.get("/admin/db-health", headers=bearer(token))
            assert r.status_code == 200 and r.json()["schema_version"] == 1
            assert http.get("/", headers=bearer(token)).status_code == 200
    finally:
        code, seconds = stop(p)
    assert code == 0, p.output()
    assert seconds < 3
    out = p.output()
    assert f"(bearer token: the secret {TOKEN_NAME})" in out
    assert "refused 127.0.0.1 '/admin/db-health': no token" in out
    assert not [f for f in encoded_forms(token) if f in out]


# -- under load ----------------------------------------------------------------------------
CLIENTS = 200
LOAD_SECONDS = 10.0
SLOW_CLIENTS = 16  # more than the 8 worker threads: a slow client must not hold one


@pytest.mark.slow
def test_200_clients_and_slow_header_senders_all_answered_within_a_second(
    migrated_db: str, tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real command in a process of its own (so the server has a core), the clients here.

    The clients are bench.dashboard_load's minimal HTTP/1.1 client: httpx spends
    over a millisecond of CPU per 90 kB answer, so 200 httpx clients in this
    process would measure httpx, not the server. One httpx request during the
    load checks that a real client is answered too. The snapshot is rebuilt
    every 5 s, so rebuilds happen under the load.
    """
    from bench.dashboard_load import run_load

    monkeypatch.setenv("DATABASE_URL", migrated_db)
    load_config(write_config(tmp_path, '[dashboard]\ncache = "5s"\n'))
    p = start_cli_server(tmp_path, token)
    checked: list[int] = []

    def one_httpx_request() -> None:
        time.sleep(LOAD_SECONDS / 2)
        r = httpx.get(
            f"http://127.0.0.1:{p.port}/admin/db-health", headers=bearer(token), timeout=5
        )
        checked.append(r.status_code)

    probe = threading.Thread(target=one_httpx_request)
    probe.start()
    try:
        stats = run_load(p.port, token, clients=CLIENTS, seconds=LOAD_SECONDS, slow=SLOW_CLIENTS)
    finally:
        probe.join()
        code, _ = stop(p)
    print(
        f"\n{stats.count} requests in {stats.seconds:.1f}s from {CLIENTS} clients: "
        f"{stats.rps:.0f} req/s, p50 {stats.percentile(50) * 1e3:.0f} ms, "
        f"p99 {stats.percentile(99) * 1e3:.0f} ms, max {stats.max * 1e3:.0f} ms, "
        f"{stats.errors} errors; {SLOW_CLIENTS} slow clients answered {set(stats.slow_statuses)}"
    )
    assert code == 0, p.output()
    assert stats.errors == 0, stats.error_samples
    assert len(stats.latencies) > 10 * CLIENTS
    assert stats.max < 1.0
    assert stats.slow_statuses == [200] * SLOW_CLIENTS  # held open, never a worker, then served
    assert checked == [200]
    assert "Traceback" not in p.output()
    assert not [f for f in encoded_forms(token) if f in p.output()]


def test_canary_secrets_are_in_no_served_answer(
    dashboard_config: Config, tmp_path: Path, token: str
) -> None:
    """Secrets the page describes (by name and fingerprint) never reach the wire."""
    from ops.secrets import load_secrets
    from tests.dashboards.browser import find_leaks

    canaries = {
        "SMTP_PASSWORD": "canary-smtp-" + pysecrets.token_urlsafe(18),
        "SUPABASE_JWT_SECRET": "canary-jwt-" + pysecrets.token_urlsafe(30),
        "ALERT_WEBHOOK_URL": "https://hooks.example.com/services/canary-"
        + pysecrets.token_urlsafe(18),
    }
    write_env(tmp_path / ".env", canaries)
    loaded = load_secrets(dashboard_config)
    assert set(canaries) <= set(loaded.secrets)
    app = make_app(dashboard_config, token, loaded=loaded)
    with DashboardServer(app, "127.0.0.1", 0).start() as server:
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base, timeout=60) as client:
            answers = {
                path: client.get(path, headers=bearer(token))
                for path in ("/", "/admin/db-health", "/runbooks/SECRETS_WEAK.md")
            }
    assert {r.status_code for r in answers.values()} == {200}
    rows = {r["name"]: r for r in answers["/admin/db-health"].json()["parts"]["secrets"]["items"]}
    assert all(rows[name]["source"] == "dotenv" and rows[name]["fingerprint"] for name in canaries)
    blobs = {
        path: r.content + "\n".join(f"{k}: {v}" for k, v in r.headers.items()).encode()
        for path, r in answers.items()
    }
    assert find_leaks({**canaries, "token": token}, blobs) == []
