"""Benchmark: preflight on the boot path, against a ``python -c pass`` baseline in the same run.

Run with ``.venv/bin/python -m bench.preflight`` (``--runs N``, ``--markdown``).
It measures N wall-clock runs each of:

- ``python -c pass`` — the interpreter start-up every command pays (the baseline);
- ``empire-ops preflight`` with the env and ``.env`` sources and a live database;
- ``empire-ops run -- true`` — preflight plus starting a child.

The database is ``$DATABASE_URL`` when set, otherwise an embedded PostgreSQL
started in a temporary folder for this run (and removed after). The secrets
are a valid, made-up Supabase-shaped set written to a ``.env`` file (0600),
with ``DATABASE_URL`` in the environment, so both boot-path sources are read.
Each command's peak memory is reported too: the largest resident set
(``ru_maxrss`` from ``wait4``, in MiB) over its runs, beside the baseline's.
The ``ops`` package is byte-compiled first, as ``pip install`` does for the
wheel: under ``PYTHONDONTWRITEBYTECODE`` (set on some machines) an editable
checkout would otherwise recompile every module on every run (~65 ms here),
which no installed user pays.
Target: preflight median < 0.5 s.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TARGET_SECONDS = 0.5
PROJECT_REF = "benchbenchbenchbench"
# Variables that would make the benchmark read someone's real configuration.
_SCRUB = ("EMPIRE_OPS_CONFIG", "EMPIRE_ENV", "EMPIRE_OPS_LOG_FORMAT", "EMPIRE_OPS_LOG_LEVEL")


@dataclass
class Timing:
    """N wall-clock samples of one command, its peak RSS, and the exit code of its last run."""

    name: str
    samples: list[float]
    exit_code: int
    peak_rss_kib: int = 0  # the largest ru_maxrss over the timed runs

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        # Nearest-rank percentile: with 15 runs, the 14th fastest.
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict[str, object], secret: str) -> str:
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(sig)}"


def boot_secrets() -> dict[str, str]:
    """A valid, made-up set of the default spec's secrets (legacy HS256 keys, signed)."""
    secret = "bench-jwt-secret-" + "x" * 32
    now = int(time.time())
    claims = {"iss": "supabase", "ref": PROJECT_REF, "iat": now, "exp": now + 10 * 365 * 86400}
    return {
        "SUPABASE_URL": f"https://{PROJECT_REF}.supabase.co",
        "SUPABASE_ANON_KEY": _jwt({**claims, "role": "anon"}, secret),
        "SUPABASE_SERVICE_ROLE_KEY": _jwt({**claims, "role": "service_role"}, secret),
        "SUPABASE_JWT_SECRET": secret,
    }


def empire_ops() -> list[str]:
    """The console script next to this interpreter, else ``python -m ops``."""
    script = Path(sys.executable).with_name("empire-ops")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ops"]


@contextmanager
def database() -> Iterator[tuple[str, str]]:
    """(DSN, description): ``$DATABASE_URL``, or an embedded cluster for this run."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"], "$DATABASE_URL"
        return
    from ops.embedded import PostgresCluster, free_port

    root = Path(tempfile.mkdtemp(prefix="empire-bench-"))
    root.chmod(0o711)  # the server runs as an unprivileged user when we are root
    cluster = PostgresCluster(root / "pgdata", port=free_port())
    try:
        port = cluster.start()
        del port  # the cluster's own DSN names its passfile (scram auth)
        yield cluster.url("postgres"), "embedded PostgreSQL (temp dir)"
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


def run_once(argv: Sequence[str], *, cwd: Path, env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, exit code, peak RSS in KiB) of one run of ``argv``.

    The peak is the kernel's ``ru_maxrss`` for the reaped child (on Linux, in
    KiB; the largest of the child and the descendants it waited for), so the
    measurement costs the child nothing. Output is discarded.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    rss = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss  # bytes there
    return elapsed, proc.returncode, rss


def measure(name: str, argv: Sequence[str], *, runs: int, cwd: Path, env: dict[str, str]) -> Timing:
    """Run ``argv`` once to warm caches, then ``runs`` times; wall time and peak RSS of each."""
    samples: list[float] = []
    code = peak = 0
    for i in range(runs + 1):
        elapsed, code, rss = run_once(argv, cwd=cwd, env=env)
        if i:
            samples.append(elapsed)
            peak = max(peak, rss)
    return Timing(name, samples, code, peak)


def render(timings: Sequence[Timing], *, markdown: bool) -> str:
    """The table: time and peak RSS of each command, both also as a ratio to the baseline's."""
    base, base_rss = timings[0].median, max(1, timings[0].peak_rss_kib)
    rows = [
        (
            t.name,
            f"{t.median * 1e3:.0f}",
            f"{t.p90 * 1e3:.0f}",
            f"{t.median / base:.1f}x",
            f"{t.peak_rss_kib / 1024:.1f}",
            f"{t.peak_rss_kib / base_rss:.1f}x",
            str(t.exit_code),
        )
        for t in timings
    ]
    head = (
        "command", "median ms", "p90 ms", "vs baseline", "peak RSS MiB", "RSS vs baseline", "exit"
    )  # fmt: skip
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 when preflight misses the target or fails."""
    parser = argparse.ArgumentParser(prog="python -m bench.preflight", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (15)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)

    import compileall

    import ops

    compileall.compile_dir(Path(ops.__file__).parent, quiet=1)
    work = Path(tempfile.mkdtemp(prefix="empire-bench-work-"))
    try:
        dotenv = work / ".env"
        dotenv.write_text("".join(f"{k}={v}\n" for k, v in boot_secrets().items()))
        dotenv.chmod(0o600)
        with database() as (dsn, where):
            env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
            env["DATABASE_URL"] = dsn
            cli = empire_ops()
            # Preflight only reads (it never migrates by surprise), so the
            # measured boot is one on a database that has the Empire schema.
            subprocess.run(
                [*cli, "--env", "dev", "migrate", "up"], cwd=work, env=env,
                capture_output=True, check=True,
            )  # fmt: skip
            commands = [
                ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
                ("empire-ops preflight", [*cli, "preflight"]),
                ("empire-ops run -- true", [*cli, "run", "--", "true"]),
            ]
            timings = [measure(n, a, runs=args.runs, cwd=work, env=env) for n, a in commands]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"# {args.runs} runs each; database: {where}")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    machine = (
        f"{os.cpu_count()} CPUs, {platform.machine()} {platform.system()} {platform.release()}"
    )
    print(f"# {when}; Python {platform.python_version()}; {machine}")
    print(render(timings, markdown=args.markdown))
    preflight = timings[1]
    verdict = "meets" if preflight.median < TARGET_SECONDS else "MISSES"
    print(f"# preflight median {preflight.median:.3f}s {verdict} the {TARGET_SECONDS}s target")
    print(
        f"# preflight peak RSS {preflight.peak_rss_kib / 1024:.1f} MiB "
        f"(baseline {timings[0].peak_rss_kib / 1024:.1f} MiB)"
    )
    for t in timings[1:]:
        if t.exit_code != 0:
            print(f"# warning: `{t.name}` exited {t.exit_code}; its timing is not a boot")
    return 0 if preflight.median < TARGET_SECONDS and preflight.exit_code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
