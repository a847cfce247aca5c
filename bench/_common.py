"""What every benchmark shares: the database, timing a child, and printing a table.

Not a benchmark itself (``python -m bench`` skips modules named with ``_``).
"""

from __future__ import annotations

import math
import os
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


def empire_ops() -> list[str]:
    """The console script next to this interpreter, else ``python -m ops``."""
    script = Path(sys.executable).with_name("empire-ops")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ops"]


def byte_compile() -> None:
    """Byte-compile the ``ops`` package, as ``pip install`` does for the wheel.

    Under ``PYTHONDONTWRITEBYTECODE`` (set on some machines) an editable checkout
    would otherwise compile every module from source on every run (30-65 ms of a
    command's start), which no installed user pays.
    """
    import compileall

    import ops

    compileall.compile_dir(Path(ops.__file__).parent, quiet=1)


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


def render_table(head: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool) -> str:
    """``rows`` under ``head``: a Markdown table, or columns aligned with two spaces."""
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]
    )
