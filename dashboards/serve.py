"""`dashboard serve`: the health page and db-health.json over HTTP, behind a bearer token.

What it promises:

- **Three routes, read-only.** ``GET /`` is the page, ``GET /admin/db-health``
  the JSON, ``GET /runbooks/<CODE>.md`` a finding's runbook; ``HEAD`` answers
  as ``GET`` without the body. Any other path is 404 and any other method
  405. Paths are matched whole and never mapped onto the file system: a
  runbook is looked up by its code (``[A-Z][A-Z0-9_]*``), and a request
  target may hold no percent-escape, so ``..``, ``%2e%2e``, ``%2f``, a
  backslash, NUL or an absolute path cannot name another file.
- **A token on every request.** ``Authorization: Bearer <token>``, the
  secret named by ``[dashboard] token_secret``, compared in constant time.
  Without it, or with another, the answer is 401, whatever the path. A client
  address that presented ``[dashboard] max_failures`` wrong tokens within a
  minute is made to wait (a request without a token guesses nothing, so it
  does not count): every request of it is 429 (with ``Retry-After``), a
  right token included, until the oldest of those failures is a minute old;
  so at most ``max_failures`` guesses a minute get through. The address is the TCP peer
  (waitress drops ``X-Forwarded-*`` headers from an untrusted proxy).
- **The token never leaves.** A failure is logged as one line with the
  address, the path and the reason (``no token``, ``wrong token``), never
  what was presented nor the real token; no answer carries either.
- **Strict headers on every answer**: a Content-Security-Policy that allows
  inline styles and ``data:`` images only (the page has no script, font or
  request), ``nosniff``, ``no-store``, ``no-referrer``, no framing, and a
  ``Server`` header without versions.
- **One rebuild at a time.** The snapshot is collected again when older than
  ``[dashboard] cache``, in the background, by one thread: meanwhile every
  request gets the previous copy, and only the very first requests wait for
  the first copy. A rebuild that raises is logged and the last good copy
  stays (503 while there is none); the server keeps running.

The server is waitress, set for a small admin endpoint that must survive a
few hundred clients and slow ones (:func:`server_options` says why each
setting), with two changes measured under 200 clients (docs/benchmarks.md):
waiting connections are accepted in batches, not one per turn of the event
loop, and ``dashboard serve`` hands the GIL between threads every 0.5 ms, so
a rebuild does not starve the event loop.

Slow clients: waitress reads requests in its event loop and hands a request
to a worker thread only once it is complete, so a client that trickles its
headers holds a connection, never a thread; ``connection_limit`` caps those
connections, and ``channel_timeout`` drops one that goes quiet. waitress has
no deadline for a whole request, so a client that keeps trickling bytes
keeps its connection: on a non-loopback address, put a TLS proxy with a
header timeout in front (the server says so when it starts).
"""

from __future__ import annotations

import errno
import hmac
import logging
import math
import re
import signal
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ops.errors import UsageError
from ops.secrets.errors import SecretMissing

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from dashboards.collect import HealthSnapshot
    from ops.config import Config
    from ops.secrets.merge import LoadResult

log = logging.getLogger(__name__)

REALM = 'Bearer realm="empire-ops dashboard"'
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)
JSON_PATH = "/admin/db-health"
RUNBOOKS_PATH = "/runbooks/"
_RUNBOOK = re.compile(r"/runbooks/([A-Z][A-Z0-9_]*)\.md")
_TEXT = "text/plain; charset=utf-8"
# A failed rebuild is tried again after this long (or the cache time, if shorter).
FAILED_RETRY_SECONDS = 5.0
# How long a request waits for the very first snapshot before it is told 503.
FIRST_BUILD_WAIT_SECONDS = 30.0
# Client addresses the failure table remembers at most (the oldest go first).
MAX_CLIENTS_TRACKED = 10_000
# The event loop looks at the stop flag this often (a signal handler only sets it).
_POLL_SECONDS = 0.25

# The serving process's thread switch interval (CPython's default is 5 ms): see below.
SWITCH_INTERVAL_SECONDS = 0.0005

Collect = Callable[..., "HealthSnapshot"]


# -- waitress ------------------------------------------------------------------------------
def server_options(threads: int) -> dict[str, Any]:
    """waitress's settings for the dashboard (the same for the benchmark's baseline).

    - ``threads``: workers that run the app; requests are served from memory,
      so a few suffice (``[dashboard] threads``).
    - ``connection_limit`` 512: open connections, idle or slow ones included,
      before waitress stops accepting; well above the 200 concurrent clients
      it must take, and within the usual 1024 open files per process.
    - ``channel_timeout`` 30 s, checked every ``cleanup_interval`` 10 s: a
      connection that sends nothing for 30 s (an idle keep-alive, a stalled
      client) is closed within 40 s.
    - ``max_request_header_size`` 16 KiB: a bearer token and a browser's
      headers fit many times over; more is refused (431) and not buffered.
    - ``max_request_body_size`` 1 KiB: no route takes a body.
    - ``asyncore_use_poll``: ``poll()``, not ``select()``, which fails past
      file descriptor 1024.
    - ``ident`` ``empire-ops``: the ``Server`` header names no version.
    - ``expose_tracebacks`` off and ``clear_untrusted_proxy_headers`` on (both
      waitress's defaults, stated because the auth and throttle depend on them).
    """
    return {
        "threads": threads,
        "connection_limit": 512,
        "channel_timeout": 30,
        "cleanup_interval": 10,
        "max_request_header_size": 16 * 1024,
        "max_request_body_size": 1024,
        "asyncore_use_poll": True,
        "ident": "empire-ops",
        "expose_tracebacks": False,
        "clear_untrusted_proxy_headers": True,
    }


def favour_the_event_loop() -> None:
    """Make this process hand the GIL from thread to thread every 0.5 ms instead of 5 ms.

    waitress's event loop makes a few system calls per request and must take
    the GIL back after each. While a thread that computes holds it (a snapshot
    rebuild), each of those waits up to the switch interval. Under 200
    clients with a rebuild every 3 s, six runs each: at 5 ms, a median 2,470
    answers a second and a slowest answer of 0.58-1.25 s; at 0.5 ms, 3,610 a
    second and 0.17-0.92 s (1.7 s in one run) (docs/benchmarks.md). It is
    process-wide, so only a process that does nothing but serve sets it
    (``dashboard serve``, which puts the old value back when it stops, and the
    benchmark's baseline).
    """
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


class DashboardServer:
    """waitress serving a WSGI app on ``host:port`` (0 picks a free port), until stopped.

    :meth:`run` serves in the calling thread until :meth:`stop` (safe in a
    signal handler); :meth:`start` runs it in a thread of its own and
    :meth:`close` stops it and waits (tests, the benchmark). ``overrides``
    change :func:`server_options`. Raises UsageError (exit 2) when the
    address cannot be bound (in use, not permitted, not this machine's).
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        threads: int = 8,
        **overrides: Any,
    ) -> None:
        _sample_queue_warnings()
        self.host = host
        self._map: dict[int, Any] = {}
        options = {**server_options(threads), **overrides}
        try:
            # One listening socket, on the first address ``host`` resolves to.
            self._server = _server_class()(app, map=self._map, host=host, port=port, **options)
        except OSError as exc:
            raise _bind_error(exc, host, port) from None
        except ValueError as exc:  # waitress's own check of its settings (e.g. an odd host)
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc}", hint="check --host and --port"
            ) from None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "new"  # then "running", then "closed"
        self._state_lock = threading.Lock()

    @property
    def port(self) -> int:
        """The port listened on (the one picked, for port 0)."""
        return int(self._server.effective_port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        """Serve until :meth:`stop`; then close every connection and stop the workers.

        Requests still running when it stops are cut: this is a read-only page.
        """
        from waitress import wasyncore

        with self._state_lock:
            if self._state != "new":
                return
            self._state = "running"
        try:
            while not self._stop.is_set() and self._map:
                wasyncore.loop(timeout=_POLL_SECONDS, use_poll=True, map=self._map, count=1)
        finally:
            self._shut()

    def stop(self) -> None:
        """Ask :meth:`run` to return (within a fraction of a second); signal-safe."""
        self._stop.set()

    def start(self) -> DashboardServer:
        """Serve in a daemon thread; returns self (``with DashboardServer(...).start() as s``)."""
        self._thread = threading.Thread(target=self.run, name="dashboard-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop, wait for the serving thread, and release the socket of a server never run."""
        self.stop()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with self._state_lock:
            never_ran = self._state == "new"
            if never_ran:
                self._state = "running"
        if never_ran:
            self._shut()

    def _shut(self) -> None:
        from waitress import wasyncore

        wasyncore.close_all(self._map)
        self._server.task_dispatcher.shutdown(timeout=2)
        with self._state_lock:
            self._state = "closed"

    def __enter__(self) -> DashboardServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class QueueDepthSampler(logging.Filter):
    """Lets one of waitress's "Task queue depth is N" warnings through per ``every`` seconds.

    waitress warns on *every* request queued behind busy workers: under the
    200 clients this server is built for, thousands of lines a second (and as
    many for a client that floods it). One line a minute, with the deepest
    queue seen and how many lines it stands for, keeps the signal.
    """

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every = every
        self._clock = clock
        self._next = float("-inf")
        self._held = 0
        self._deepest = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        depth = record.args[0] if isinstance(record.args, tuple) and record.args else 0
        with self._lock:
            self._held += 1
            self._deepest = max(self._deepest, depth if isinstance(depth, int) else 0)
            now = self._clock()
            if now < self._next:
                return False
            record.msg = (
                "up to %d requests waited for a worker thread (%d such warnings since the "
                "last one shown; one is shown per %.0f s)"
            )
            record.args = (self._deepest, self._held, self.every)
            self._next, self._held, self._deepest = now + self.every, 0, 0
            return True


def _sample_queue_warnings() -> None:
    queue = logging.getLogger("waitress.queue")
    if not any(isinstance(f, QueueDepthSampler) for f in queue.filters):
        queue.addFilter(QueueDepthSampler())


# Connections accepted per turn of the event loop, at most (waitress accepts one).
ACCEPT_BATCH = 64


def _server_class() -> type:
    """waitress's TCP server, taking up to :data:`ACCEPT_BATCH` waiting connections a turn.

    waitress accepts one connection per turn of its event loop, and a turn
    serves every ready connection first: when 200 clients connect at once
    while the first are being answered, the last waited over a second for
    their first answer (0.7-2.1 s in 8 fresh starts of 12). Taking the
    waiting ones in batches (never past ``connection_limit``) brought that to
    0.08-0.11 s (docs/benchmarks.md).
    """
    from waitress.server import TcpWSGIServer

    class BatchAcceptServer(TcpWSGIServer):
        def handle_accept(self) -> None:
            room = self.adj.connection_limit - len(self._map)
            for _ in range(max(1, min(ACCEPT_BATCH, room))):
                before = len(self._map)
                super().handle_accept()  # a new connection adds its channel to the map
                if len(self._map) == before:  # none was waiting (or accept failed)
                    return

    return BatchAcceptServer


def _bind_error(exc: OSError, host: str, port: int) -> UsageError:
    where = f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return UsageError(
            f"cannot listen on {where}: the port is already in use",
            hint="stop what holds it, or choose another with --port N ([dashboard] port)",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UsageError(
            f"cannot listen on {where}: permission denied",
            hint="ports below 1024 need privileges: choose --port 1024 or above",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return UsageError(
            f"cannot listen on {where}: the address is not one of this machine's",
            hint="choose --host 127.0.0.1, or an address of this machine",
        )
    return UsageError(
        f"cannot listen on {where}: {exc.strerror or exc}", hint="check --host and --port"
    )


# -- throttling ----------------------------------------------------------------------------
class FailureThrottle:
    """Failed logins per client address over a sliding window; bounded, thread-safe.

    A client with ``max_failures`` failures in the last ``window`` seconds
    must wait until the oldest of them is ``window`` old. The table keeps at
    most ``max_failures`` times per client and ``max_clients`` clients: a
    sweep drops clients with no failure in the window, and past the cap the
    client whose last failure is oldest goes first.
    """

    def __init__(
        self,
        max_failures: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS_TRACKED,
    ) -> None:
        self.max_failures = max(1, max_failures)
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()  # last failure last
        self._lock = threading.Lock()
        self._next_sweep = clock() + window

    def wait_for(self, client: str) -> float:
        """Seconds ``client`` must still wait before trying again; 0 when it may try now."""
        # Every request asks: most clients have no entry, and a dict read needs no lock
        # (a lock taken by all the workers for every request would make them queue).
        if client not in self._failures:
            return 0.0
        with self._lock:
            times = self._failures.get(client)
            if times is None or len(times) < self.max_failures:
                return 0.0
            return max(0.0, times[0] + self.window - self._clock())

    def failed(self, client: str) -> bool:
        """Record a failure of ``client``; True when it must now wait."""
        with self._lock:
            now = self._clock()
            times = self._failures.pop(client, None) or deque(maxlen=self.max_failures)
            times.append(now)
            self._failures[client] = times
            if now >= self._next_sweep or len(self._failures) > self.max_clients:
                self._sweep(now)
            return len(times) >= self.max_failures and times[0] > now - self.window

    def __len__(self) -> int:
        return len(self._failures)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.window
        cutoff = now - self.window
        for client in [c for c, t in self._failures.items() if t[-1] <= cutoff]:
            del self._failures[client]
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


# -- the snapshot ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Rendered:
    """One snapshot, ready to send: the page and the JSON as bytes."""

    html: bytes
    json: bytes


class SnapshotCache:
    """The current :class:`Rendered`, rebuilt in the background when older than ``max_age``.

    ``build`` makes a new one (it may raise). Only one rebuild runs at a
    time; while it runs, :meth:`get` returns the previous copy at once, or,
    when there is none yet, waits for the first (up to ``first_wait``).
    ``builds`` counts the rebuilds started, ``failures`` those that raised.
    """

    def __init__(
        self,
        build: Callable[[], Rendered],
        max_age: float,
        clock: Callable[[], float] = time.monotonic,
        first_wait: float = FIRST_BUILD_WAIT_SECONDS,
    ) -> None:
        self.build = build
        self.max_age = max_age
        self.clock = clock
        self.first_wait = first_wait
        self.builds = 0
        self.failures = 0
        self._current: Rendered | None = None
        self._due = float("-inf")  # when the next rebuild is due
        self._building = False
        self._cond = threading.Condition()

    def get(self) -> Rendered | None:
        """The current copy (rebuilding it in the background when due); None when there is none."""
        current, due = self._current, self._due
        if current is not None and self.clock() < due:
            return current  # the common case, without the lock every worker would queue on
        with self._cond:
            if not self._building and self.clock() >= self._due:
                self._building = True
                self.builds += 1
                threading.Thread(
                    target=self._rebuild, name="dashboard-rebuild", daemon=True
                ).start()
            if self._current is None and self._building:
                self._cond.wait_for(lambda: not self._building, timeout=self.first_wait)
            return self._current

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until no rebuild runs (tests, warming up)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._building, timeout=timeout)

    def _rebuild(self) -> None:
        rendered: Rendered | None = None
        try:
            rendered = self.build()
        except Exception as exc:  # the server must outlive any fault of a rebuild
            from ops.errors import OpsError
            from ops.logs import redact

            what = exc.message_with_hint if isinstance(exc, OpsError) else f"{exc}"
            log.error(
                "dashboard: rebuilding the snapshot failed (%s: %s); %s",
                type(exc).__name__,
                redact(what),
                "serving the last good copy" if self._current else "answering 503",
            )
            log.debug("dashboard: the failed rebuild", exc_info=True)
        with self._cond:
            if rendered is not None:
                self._current = rendered
                self._due = self.clock() + self.max_age
            else:
                self.failures += 1
                self._due = self.clock() + min(self.max_age, FAILED_RETRY_SECONDS)
            self._building = False
            self._cond.notify_all()


# -- the app ------------------------------------------------------------------------------
@dataclass
class Response:
    status: str
    body: bytes
    content_type: str = _TEXT
    headers: list[tuple[str, str]] = field(default_factory=list)


def _text(status: str, message: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    return Response(status, (message + "\n").encode(), _TEXT, list(headers))


class DashboardApp:
    """The WSGI app: token, throttle, then one of three routes (see the module docstring).

    ``loaded`` are the secrets to collect with (else each rebuild loads them);
    ``clock`` and ``window`` drive the cache and the throttle; ``collect``
    replaces :func:`~dashboards.collect.collect_snapshot` (called as
    ``collect(config, loaded=..., record=False)``). Raises ValueError for an
    empty token.
    """

    def __init__(
        self,
        config: Config,
        token: str,
        *,
        loaded: LoadResult | None = None,
        clock: Callable[[], float] = time.monotonic,
        window: float = 60.0,
        collect: Collect | None = None,
    ) -> None:
        from ops.logs import register_secret_values

        if not token:
            raise ValueError("the dashboard needs a non-empty token")
        register_secret_values([token])  # never printed, wherever it came from
        self._token = token.encode("utf-8")
        self._config = config
        self._loaded = loaded
        self._collect = collect
        self.throttle = FailureThrottle(int(config.get("dashboard.max_failures")), window, clock)
        self.cache = SnapshotCache(self._build, config.seconds("dashboard.cache"), clock)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        try:
            response = self.respond(environ)
        except Exception:  # a bug answers 500 without a traceback; the server goes on
            log.exception("dashboard: answering %s failed", _shown(environ.get("PATH_INFO", "")))
            response = _text("500 Internal Server Error", "internal error; see the server log")
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *SECURITY_HEADERS,
            *response.headers,
        ]
        start_response(response.status, headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [response.body]

    def respond(self, environ: WSGIEnvironment) -> Response:
        """The answer to one request: throttle, token, method, then the route."""
        client = str(environ.get("REMOTE_ADDR") or "unknown")
        path = str(environ.get("PATH_INFO", ""))
        wait = self.throttle.wait_for(client)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            return _text(
                "429 Too Many Requests",
                f"too many failed logins from this address; retry in {seconds} s",
                [("Retry-After", str(seconds))],
            )
        reason = self._refusal(environ)
        if reason:
            # Only a wrong token is a guess. A request without one guesses nothing, and
            # counting it would let a browser or a monitor lock out the admin at its address.
            throttled = reason == "wrong token" and self.throttle.failed(client)
            log.warning("dashboard: refused %s %s: %s", client, _shown(path), reason)
            if throttled:
                log.warning(
                    "dashboard: %s made %d failed logins within %.0f s; it must wait",
                    client,
                    self.throttle.max_failures,
                    self.throttle.window,
                )
            return _text(
                "401 Unauthorized", "a bearer token is required", [("WWW-Authenticate", REALM)]
            )
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _text("405 Method Not Allowed", "only GET and HEAD", [("Allow", "GET, HEAD")])
        return self._route(environ, path)

    def _refusal(self, environ: WSGIEnvironment) -> str:
        """Why the request's token is refused ("no token", "wrong token"), or ""."""
        scheme, _, presented = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            return "no token"
        # WSGI gives header values as latin-1 text of the raw bytes: compare those bytes.
        if not hmac.compare_digest(presented.encode("latin-1", "replace"), self._token):
            return "wrong token"
        return ""

    def _route(self, environ: WSGIEnvironment, path: str) -> Response:
        raw = str(environ.get("REQUEST_URI", path)).partition("?")[0]
        if "%" in raw or "\\" in raw:  # no route needs an escape; an escape hides a path
            return _text("404 Not Found", "not found")
        if path in ("/", JSON_PATH):
            rendered = self.cache.get()
            if rendered is None:
                return _text(
                    "503 Service Unavailable",
                    "the health snapshot could not be built yet; see the server log",
                    [("Retry-After", str(int(FAILED_RETRY_SECONDS)))],
                )
            if path == "/":
                return Response("200 OK", rendered.html, "text/html; charset=utf-8")
            return Response("200 OK", rendered.json, "application/json")
        match = _RUNBOOK.fullmatch(path)
        if match:
            return self._runbook(match.group(1))
        return _text("404 Not Found", "not found")

    def _runbook(self, code: str) -> Response:
        from ops.runbook import runbook_path

        try:
            body = runbook_path(code).read_bytes()
        except (UsageError, OSError):
            return _text("404 Not Found", "no such runbook")
        return Response("200 OK", body, "text/markdown; charset=utf-8")

    def _build(self) -> Rendered:
        from dashboards.render import json_text, render_html
        from ops.logs import redact

        if self._collect is None:
            from dashboards.collect import collect_snapshot

            self._collect = collect_snapshot
        snapshot = self._collect(self._config, loaded=self._loaded, record=False)
        data = snapshot.to_dict()  # redacted
        html = render_html(
            data, top=int(self._config.get("dashboard.top")), runbook_base=RUNBOOKS_PATH
        )
        return Rendered(redact(html).encode(), json_text(data).encode())


# The app's constructor under the name the tests and the benchmark use.
make_app = DashboardApp


def _shown(path: str) -> str:
    """A request path fit for a log line: quoted (control characters escaped), cut, redacted."""
    from ops.logs import redact

    return redact(repr(path[:200]))


# -- the command ----------------------------------------------------------------------------
def dashboard_token(loaded: LoadResult, name: str) -> str:
    """The token held by the secret ``name``; raises SecretMissing (exit 3) when it is
    missing, empty, or flagged by the spec (too short, weak where that is an error)."""
    how = (
        f"set {name} in a secret source, e.g. a line {name}=<token> in the project's .env "
        "(mode 0600), with a token made by "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
    )
    value = loaded.secrets.get(name, "")
    if not value.strip():
        consulted = ", ".join(loaded.consulted) or "no source"
        raise SecretMissing(
            f"the dashboard's token secret {name} is not set (consulted: {consulted}); "
            "`dashboard serve` does not start without it",
            hint=how,
        )
    problems = [f for f in loaded.findings if f.subject == name and f.is_problem]
    if problems:
        raise SecretMissing(
            f"the dashboard's token secret {name} is not usable: "
            + "; ".join(f.message for f in problems),
            hint=f"replace it: {how}",
        )
    return value


def serve_dashboard(config: Config, *, host: str | None = None, port: int | None = None) -> None:
    """Serve the dashboard until SIGINT or SIGTERM, then return (exit 0).

    ``host`` and ``port`` default to ``[dashboard] host`` and ``port``.
    Raises SecretMissing (exit 3) without a usable token secret, and
    UsageError (exit 2) for a port out of range or an address that cannot be
    bound (in use, not permitted).
    """
    from ops.secrets import load_secrets

    host = host or str(config.get("dashboard.host"))
    port = int(config.get("dashboard.port")) if port is None else port
    if not 0 <= port <= 65535:
        raise UsageError(f"{port} is not a TCP port", hint="use --port 1-65535, or 0 for any")
    restore_logging = _log_like_ops()
    try:
        loaded = load_secrets(config)
        name = str(config.get("dashboard.token_secret"))
        token = dashboard_token(loaded, name)
        for finding in loaded.findings:
            if finding.subject == name and finding.severity.label == "warning":
                log.warning("dashboard: %s: %s", name, finding.message)
        app = make_app(config, token, loaded=loaded)
        server = DashboardServer(app, host, port, threads=int(config.get("dashboard.threads")))
        warn_unless_loopback(host)
        switch_interval = sys.getswitchinterval()
        handlers: dict[signal.Signals, Any] = {}
        try:
            app.cache.get()  # the first copy before the first visitor, who then need not wait
            favour_the_event_loop()
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    handlers[sig] = signal.signal(sig, lambda _sig, _frame: server.stop())
            log.info("serving %s and %s (bearer token: the secret %s)", server.url, JSON_PATH, name)
            server.run()
        finally:
            for sig, previous in handlers.items():
                signal.signal(sig, previous)
            sys.setswitchinterval(switch_interval)
            server.close()
        log.info("dashboard: stopped")
    finally:
        restore_logging()


def warn_unless_loopback(host: str) -> bool:
    """Log a warning when ``host`` is not a loopback address; True when it warned."""
    from ops.netutil import is_loopback

    if is_loopback(host):
        return False
    log.warning(
        "dashboard: listening on %s, not loopback: the token travels in clear text; "
        "put a TLS proxy (with a request header timeout) in front",
        host,
    )
    return True


def _log_like_ops() -> Callable[[], None]:
    """Send waitress's log lines where ours go (redacted, in the CLI's format), while serving.

    ``ops.logs.setup_logging`` configures our own logger trees; waitress's
    would otherwise reach Python's last-resort handler (warnings only,
    unredacted). Returns the function that takes the handlers back.
    """
    source = logging.getLogger("ops")
    target = logging.getLogger("waitress")
    previous_level = target.level
    added = [
        h for h in source.handlers if getattr(h, "_empire_ops", False) and h not in target.handlers
    ]
    for handler in added:
        target.addHandler(handler)
    target.setLevel(source.level)

    def restore() -> None:
        for handler in added:
            target.removeHandler(handler)
        target.setLevel(previous_level)

    return restore
