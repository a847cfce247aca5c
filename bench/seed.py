"""Benchmark: ``seed_demo`` against a plain COPY of the same number of bytes, in the same run.

Run with ``.venv/bin/python -m bench.seed`` (``--scale S``, ``--runs N``, ``--markdown``).

Each run seeds a fresh clone of a migrated database at ``--scale`` and reports
rows/s and MB/s, where MB is the growth of the tables on disk (heap, TOAST,
indexes). The baseline COPYs a trivial generated table (bigint + a constant
text, no index) into a fresh database until it reaches the same size: the
cost of moving those bytes through COPY with nothing to generate, check or
index. The ratio is what generation, constraints, triggers and indexes add.

The server is ``$DATABASE_URL`` when set (scratch databases ``bench_seed_*``
are created and dropped there), otherwise an embedded PostgreSQL in a
temporary folder for this run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench._common import database, render_table
from ops import db
from ops.migrate.runner import apply_all_to
from ops.seed import seed_demo

TEMPLATE = "bench_seed_template"
# The baseline's row: small, constant, so generating it costs nothing.
_PAYLOAD = "x" * 120


@dataclass
class Sample:
    """One timed load: rows, bytes the tables grew by, seconds."""

    rows: int
    bytes: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds


def _admin(dsn: str, *statements: str) -> None:
    with db.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            db.run_query(conn, statement)


def _seed_once(server: str, name: str, scale: float) -> Sample:
    _admin(server, f"create database {name} template {TEMPLATE}")
    try:
        started = time.monotonic()
        report = seed_demo(db.with_dbname(server, name), scale=scale)
        return Sample(report.rows, report.bytes, time.monotonic() - started)
    finally:
        _admin(server, f"drop database if exists {name} with (force)")


def _baseline_once(server: str, name: str, target_bytes: int) -> Sample:
    _admin(server, f"create database {name}")
    try:
        with db.connect(db.with_dbname(server, name)) as conn:
            db.run_query(conn, "create table baseline (id bigint, payload text)")
            conn.commit()
            rows, size, started = 0, 0, time.monotonic()
            while size < target_bytes:
                with conn.cursor() as cur, cur.copy("copy baseline from stdin") as copy:
                    for i in range(rows, rows + 10_000):
                        copy.write_row((i, _PAYLOAD))
                rows += 10_000
                size = int(
                    db.run_query(conn, "select pg_total_relation_size('baseline') as b")[0]["b"]
                )
            conn.commit()
            return Sample(rows, size, time.monotonic() - started)
    finally:
        _admin(server, f"drop database if exists {name} with (force)")


def run(server: str, *, scale: float, runs: int) -> tuple[list[Sample], list[Sample]]:
    """Seed ``runs`` fresh clones at ``scale``, and load the baseline as many times."""
    _admin(server, f"drop database if exists {TEMPLATE}", f"create database {TEMPLATE}")
    try:
        apply_all_to(db.with_dbname(server, TEMPLATE))
        seeded = [_seed_once(server, f"bench_seed_{i}", scale) for i in range(runs)]
        target = int(statistics.median(s.bytes for s in seeded))
        baseline = [_baseline_once(server, f"bench_seed_base_{i}", target) for i in range(runs)]
        return seeded, baseline
    finally:
        _admin(server, f"drop database if exists {TEMPLATE} with (force)")


def render(seeded: Sequence[Sample], baseline: Sequence[Sample], *, markdown: bool) -> str:
    def median(samples: Sequence[Sample], attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in samples)

    base_mb = median(baseline, "mb_per_s")
    rows = [
        ("COPY trivial table (baseline)", baseline),
        ("seed_demo", seeded),
    ]
    header = ("load", "rows", "MB", "median s", "rows/s", "MB/s", "MB/s vs baseline")
    lines = []
    for name, samples in rows:
        mb_s = median(samples, "mb_per_s")
        lines.append(
            (
                name,
                f"{int(median(samples, 'rows'))}",
                f"{median(samples, 'bytes') / 1e6:.1f}",
                f"{median(samples, 'seconds'):.2f}",
                f"{median(samples, 'rows_per_s'):,.0f}",
                f"{mb_s:.1f}",
                f"{mb_s / base_mb:.2f}x",
            )
        )
    if markdown:
        return render_table(header, lines, markdown=True)
    # Plain output keeps its right-aligned 14-wide cells, as before render_table.
    return "\n".join("  ".join(f"{c:>14}" for c in line) for line in [header, *lines])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    with database() as (server, where):
        seeded, baseline = run(server, scale=args.scale, runs=args.runs)
    print(
        f"# seed_demo scale {args.scale:g}, {args.runs} runs, {where}; "
        f"Python {platform.python_version()} on {platform.machine()}",
        file=sys.stderr,
    )
    print(render(seeded, baseline, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
