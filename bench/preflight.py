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
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench._common import Timing, byte_compile, database, empire_ops, measure, render_table

TARGET_SECONDS = 0.5
PROJECT_REF = "benchbenchbenchbench"
# Variables that would make the benchmark read someone's real configuration.
_SCRUB = ("EMPIRE_OPS_CONFIG", "EMPIRE_ENV", "EMPIRE_OPS_LOG_FORMAT", "EMPIRE_OPS_LOG_LEVEL")


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
    return render_table(head, rows, markdown=markdown)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 when preflight misses the target or fails."""
    parser = argparse.ArgumentParser(prog="python -m bench.preflight", description=__doc__)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (15)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)

    byte_compile()
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
