"""Benchmark: ``dashboard serve`` under 200 concurrent clients and slow header senders.

Run with ``.venv/bin/python -m bench.dashboard_load`` (``--clients N``,
``--seconds S``, ``--warmup S``, ``--slow N``, ``--cache D``, ``--markdown``).

The real command, ``empire-ops dashboard serve --port 0``, runs in a child
process on a migrated database (``$DATABASE_URL`` when set, else an embedded
PostgreSQL in a temporary folder), with a random ADMIN_DASHBOARD_TOKEN in its
environment and ``[dashboard] cache`` set short (``--cache``, 3 s) so the
snapshot is rebuilt several times under the load. ``--clients`` keep-alive
connections then ask for ``/admin/db-health`` with the token as fast as they
are answered, for ``--warmup`` seconds (1) and then ``--seconds`` (10),
while ``--slow`` more connections send a request's headers one byte a second
(slowloris) and the rest at the end. The figures, over ``--seconds``:
requests per second, p50/p99/max latency, errors (any answer but a complete
200, any connection error, warm-up included), the slow clients' final
statuses, and the server's peak RSS (``ru_maxrss`` from ``wait4`` when it is
reaped). The warm-up's worst latency is printed apart: it is the cost of a
fresh server meeting its first burst of connections.

The baseline, in the same run: the same waitress settings
(``dashboards.serve.server_options`` through ``DashboardServer``) serving the
same bytes, the JSON the real server answered, from a trivial WSGI app with
no token check and no rebuild, in a child process of its own. The ratio shows
what our app costs on top of waitress.

The clients are a minimal HTTP/1.1 client on asyncio streams in this process
(the server has a core of its own): httpx costs over a millisecond of CPU per
90 kB answer, so 200 httpx clients in one process would measure httpx.
Target: every request answered within 1 s, no error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import render_table

TARGET_MAX_SECONDS = 1.0
TOKEN_NAME = "ADMIN_DASHBOARD_TOKEN"
PATH = "/admin/db-health"
_READY = re.compile(r"(?:serving|listening on) http://127\.0\.0\.1:(\d+)/")
# Variables that would make the benchmark read someone's real configuration.
_SCRUB = ("EMPIRE_OPS_CONFIG", "EMPIRE_ENV", "EMPIRE_OPS_LOG_FORMAT", "EMPIRE_OPS_LOG_LEVEL")


# -- the clients ---------------------------------------------------------------------------
@dataclass
class LoadStats:
    """What the clients saw: one latency per answered request, errors, the slow clients' ends."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    warmup_latencies: list[float] = field(default_factory=list)  # not in the figures above
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    slow_statuses: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies) + self.errors

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the latencies (0 when there are none)."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    @property
    def max(self) -> float:
        return max(self.latencies, default=0.0)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(what)


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server keeps the connection) of one HTTP/1.1 answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length)
    return status, body, headers.get("connection", "").lower() != "close"


async def _client(
    port: int,
    request: bytes,
    window: tuple[float, float],
    stats: LoadStats,
    check: Callable[[bytes], bool],
) -> None:
    """One keep-alive connection asking again as soon as it is answered, until the window ends.

    A request started before the ``window`` (measure from, deadline) is warm-up:
    its latency goes apart; an error counts whenever it happens.
    """
    measure_from, deadline = window
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = conn
            writer.write(request)
            status, body, keep = await asyncio.wait_for(_answer(reader), timeout=10)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            stats.error(type(exc).__name__)
            if conn is not None:
                conn[1].close()
            conn = None
            continue
        if status != 200 or not check(body):
            stats.error(f"status {status}, {len(body)} bytes")
        elif started < measure_from:
            stats.warmup_latencies.append(time.monotonic() - started)
        else:
            stats.latencies.append(time.monotonic() - started)
        if not keep:
            writer.close()
            conn = None
    if conn is not None:
        conn[1].close()


async def _slow_client(port: int, request: bytes, deadline: float) -> int:
    """Send ``request`` a byte a second until ``deadline``, then the rest; its status (0: none)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    try:
        while time.monotonic() < deadline and sent < len(request) - 1:
            writer.write(request[sent : sent + 1])
            await writer.drain()
            sent += 1
            await asyncio.sleep(1.0)
        writer.write(request[sent:])
        await writer.drain()
        status, _, _ = await asyncio.wait_for(_answer(reader), timeout=10)
        return status
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        return 0
    finally:
        writer.close()


async def hammer(
    port: int,
    token: str,
    *,
    clients: int = 200,
    seconds: float = 10.0,
    slow: int = 16,
    warmup: float = 0.0,
    path: str = PATH,
    check: Callable[[bytes], bool] = lambda body: body.endswith(b"}\n"),
) -> LoadStats:
    """``clients`` keep-alive clients and ``slow`` slowloris clients for ``seconds``.

    Every client sends ``Authorization: Bearer <token>``; an answer counts
    when it is a 200 whose body passes ``check`` (a whole JSON document).
    The first ``warmup`` seconds are not in the figures (their latencies are
    kept apart, in ``warmup_latencies``).
    """
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    measure_from = time.monotonic() + warmup
    window = (measure_from, measure_from + seconds)
    stats = LoadStats(seconds)
    slow_tasks = [asyncio.create_task(_slow_client(port, request, window[1])) for _ in range(slow)]
    await asyncio.gather(*(_client(port, request, window, stats, check) for _ in range(clients)))
    stats.seconds = time.monotonic() - measure_from
    stats.slow_statuses = list(await asyncio.gather(*slow_tasks))
    return stats


def run_load(port: int, token: str, **options: Any) -> LoadStats:
    """:func:`hammer` in an event loop of its own, on a thread of its own (the caller's
    thread may already run a loop: Playwright's sync API keeps one in the tests)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="load") as pool:
        return pool.submit(asyncio.run, hammer(port, token, **options)).result()


# -- the servers ---------------------------------------------------------------------------
@dataclass
class Child:
    """A server in a child process: its port, and its output (read in a thread)."""

    proc: subprocess.Popen[str]
    port: int
    lines: list[str]

    def stop(self, timeout: float = 10) -> tuple[int, int, float]:
        """SIGTERM; (exit code, peak RSS in KiB, seconds it took to exit)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
        finally:
            timer.cancel()
        self.proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        rss = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
        return self.proc.returncode, rss, time.monotonic() - started


def start_child(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], timeout: float = 60
) -> Child:
    """Start a server and wait for its "serving http://127.0.0.1:PORT/" line."""
    proc = subprocess.Popen(
        list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    ports: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            found = _READY.search(line)
            if found and not ports:
                ports.append(int(found.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or not ports:
        proc.kill()
        proc.wait()
        raise SystemExit("the server did not start:\n" + "".join(lines[-20:]))
    return Child(proc, ports[0], lines)


def serve_baseline(body_file: str, threads: int) -> int:
    """The baseline server: the same waitress settings, the same bytes, nothing else."""
    from dashboards.serve import DashboardServer, favour_the_event_loop

    body = Path(body_file).read_bytes()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", headers)
        return [body]

    server = DashboardServer(app, "127.0.0.1", 0, threads=threads)
    favour_the_event_loop()  # as `dashboard serve` does
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    signal.signal(signal.SIGINT, lambda *_: server.stop())
    print(f"listening on {server.url}", flush=True)
    server.run()
    return 0


@dataclass
class Result:
    name: str
    stats: LoadStats
    rss_kib: int
    exit_code: int
    stop_seconds: float


def measure(name: str, child: Child, token: str, **options: Any) -> Result:
    """Load ``child`` and stop it; its figures."""
    try:
        stats = run_load(child.port, token, **options)
    finally:
        code, rss, took = child.stop()
    return Result(name, stats, rss, code, took)


def render(results: Sequence[Result], *, markdown: bool) -> str:
    base = results[0].stats.rps or 1.0
    head = (
        "server",
        "req/s",
        "vs baseline",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "slow clients 200",
        "peak RSS MiB",
    )
    rows = [
        (
            r.name,
            f"{r.stats.rps:.0f}",
            f"{r.stats.rps / base:.2f}x",
            f"{r.stats.percentile(50) * 1e3:.0f}",
            f"{r.stats.percentile(99) * 1e3:.0f}",
            f"{r.stats.max * 1e3:.0f}",
            str(r.stats.errors),
            f"{r.stats.slow_statuses.count(200)}/{len(r.stats.slow_statuses)}",
            f"{r.rss_kib / 1024:.1f}",
        )
        for r in results
    ]
    return render_table(head, rows, markdown=markdown)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 when the app misses the target (an error, or a slow answer)."""
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_load", description=__doc__)
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="load time per server (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (1)")
    parser.add_argument("--slow", type=int, default=16, help="slowloris clients (16)")
    parser.add_argument("--cache", default="3s", help="[dashboard] cache of the served app (3s)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--baseline-server", metavar="BODY", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_server:
        return serve_baseline(args.baseline_server, args.threads)

    from bench._common import database, empire_ops

    token = secrets.token_urlsafe(32)
    load = {
        "clients": args.clients,
        "seconds": args.seconds,
        "slow": args.slow,
        "warmup": args.warmup,
    }
    work = Path(tempfile.mkdtemp(prefix="empire-bench-dash-"))
    try:
        (work / "empire-ops.toml").write_text(f'[dashboard]\ncache = "{args.cache}"\n')
        with database() as (dsn, where):
            env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
            env.update(DATABASE_URL=dsn, EMPIRE_OPS_LOG_FORMAT="plain")
            cli = empire_ops()
            subprocess.run(
                [*cli, "--env", "dev", "migrate", "up"],
                cwd=work,
                env=env,
                capture_output=True,
                check=True,
            )
            app = start_child(
                [*cli, "dashboard", "serve", "--port", "0"],
                cwd=work,
                env={**env, TOKEN_NAME: token},
            )
            body = work / "db-health.json"
            body.write_bytes(_fetch(app.port, token))
            size = body.stat().st_size
            repo = str(Path(__file__).resolve().parent.parent)
            baseline = start_child(
                [sys.executable, "-m", "bench.dashboard_load", "--baseline-server", str(body)],
                cwd=work,
                env={**env, "PYTHONPATH": repo},
            )
            # The baseline runs first, while the app's server idles with its first copy.
            results = [measure("waitress, same bytes, no app (baseline)", baseline, token, **load)]
            results.append(measure("empire-ops dashboard serve", app, token, **load))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = (
        f"{os.cpu_count()} CPUs, {platform.machine()} {platform.system()} {platform.release()}"
    )
    print(
        f"# {args.clients} clients + {args.slow} slowloris, {args.warmup:g}s warm-up then "
        f"{args.seconds:g}s per server, {size / 1000:.0f} kB answers, cache {args.cache}; "
        f"database: {where}"
    )
    print(f"# {when}; Python {platform.python_version()}; {machine}")
    print(render(results, markdown=args.markdown))
    ours = results[-1]
    ok = ours.stats.errors == 0 and ours.stats.max < TARGET_MAX_SECONDS and ours.exit_code == 0
    verdict = "meets" if ok else "MISSES"
    print(
        f"# dashboard serve: max latency {ours.stats.max:.3f}s, {ours.stats.errors} errors: "
        f"{verdict} the {TARGET_MAX_SECONDS:g}s / no-error target; exit {ours.exit_code} "
        f"{ours.stop_seconds:.2f}s after SIGTERM"
    )
    for r in results:
        cold = max(r.stats.warmup_latencies, default=0.0)
        print(f"# {r.name}: warm-up (first burst of connections) max latency {cold:.3f}s")
        if r.stats.error_samples:
            print(f"# {r.name}: errors such as {', '.join(r.stats.error_samples[:3])}")
    return 0 if ok else 1


def _fetch(port: int, token: str) -> bytes:
    """The JSON the real server answers (the baseline serves these bytes)."""
    import httpx

    r = httpx.get(
        f"http://127.0.0.1:{port}{PATH}", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    r.raise_for_status()
    return r.content


if __name__ == "__main__":
    raise SystemExit(main())
