"""Benchmark: the dashboard's collect and render on 1,000 tables and 5,000 indexes.

Run with ``.venv/bin/python -m bench.dashboard_scale`` (``--tables N``, ``--runs N``,
``--markdown``).

A scratch database gets the Empire schema (``migrate up``), then ``--tables``
tables built as :mod:`bench.schema_check` builds them (a primary key and two
more indexes each, a foreign key, RLS, a trigger, grants) plus two indexes
more per table (one on ``slug``, one GIN on ``meta``): 5 indexes a table,
counted from ``pg_class`` before anything is timed. A few tables get rows
(and are analyzed), so sizes differ and the largest-first lists mean something.

A temporary project folder holds an ``empire-ops.toml``, a ``.env`` with a
valid, made-up Supabase-shaped secret set, and the state store; ``DATABASE_URL``
names the scratch database. Timed, after one warm-up, ``--runs`` times: one
build as ``dashboard build`` makes it, minus writing the files:
``collect_snapshot(config, record=False)``, ``snapshot.to_dict()`` (the
redacted db-health.json data), ``json.dumps`` of it and ``render_html``. Each
part's own ``.seconds`` is reported too, with the sizes of the page and the
JSON, and the page is checked: it shows the top N of the tables and indexes
and counts the rest ("and N more tables").

Baseline, in the same run: every read-only statement the collector sent to
PostgreSQL in the warm-up (recorded there, through ``ops.db.run_query``: the
statistics queries, the catalog reads of the drift check and lints, the
migration history, the logs, the ledger and heartbeats), replayed with the
same parameters, bare, on a new plain psycopg connection (as the collector
opens one per build; tuples, no wrapper, no timeout). The ratio is what
collecting and rendering cost above the raw catalog reads. Peak memory: the
``tracemalloc`` peak of one untimed build and of one replay, and the process's
``ru_maxrss`` before the first build and after the timed ones.

Target: median under 2 s (exit 1 otherwise); the aim is 0.5 s.
The server is ``$DATABASE_URL`` when set (a scratch database ``bench_dash_*``
is created and dropped there), otherwise an embedded PostgreSQL in a temporary
folder for this run.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import database, empire_ops, render_table
from bench.preflight import boot_secrets
from bench.schema_check import build_schema
from ops import db

if TYPE_CHECKING:
    from ops.config import Config

TARGET_SECONDS = 2.0
AIM_SECONDS = 0.5
INDEXES_PER_TABLE = 5
# Variables that would make the benchmark read someone's real configuration.
_SCRUB = ("EMPIRE_OPS_CONFIG", "EMPIRE_ENV", "EMPIRE_OPS_LOG_FORMAT", "EMPIRE_OPS_LOG_LEVEL")
# Tables that get rows (table number, rows): a few, of different sizes.
_FILLED = ((0, 40_000), (1, 20_000), (7, 10_000), (42, 5_000), (500, 1_000))
_READ_ONLY = re.compile(r"\s*(select|with)\b", re.IGNORECASE)


def _p90(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def add_indexes(conn: Any, tables: int) -> None:
    """Two more indexes on each of :func:`build_schema`'s tables (5 a table), 100 tables a batch."""
    batch: list[str] = []
    for i in range(tables):
        t = f"public.bench_{i:04d}"
        batch.append(f"create index on {t} (slug); create index on {t} using gin (meta);")
        if len(batch) == 100:
            db.run_query(conn, "\n".join(batch))
            batch.clear()
    if batch:
        db.run_query(conn, "\n".join(batch))


def add_rows(conn: Any, tables: int) -> None:
    """Rows in a few tables, analyzed, so the tables differ in size and row estimate."""
    for number, rows in _FILLED:
        if number >= tables:
            continue
        t = f"public.bench_{number:04d}"
        db.run_query(
            conn,
            f"insert into {t} (id, slug, status, owner, meta) "
            "select g, 'row-' || g, case when g %% 3 = 0 then 'live' else 'draft' end, "
            "gen_random_uuid(), jsonb_build_object('n', g) from generate_series(1, %s) g",
            (rows,),
        )
        db.run_query(conn, f"analyze {t}")


def count_objects(conn: Any) -> dict[str, int]:
    """The bench tables and their indexes, and every user table and index, from pg_catalog."""
    return db.run_query(
        conn,
        "select count(*) filter (where c.relkind = 'r' and c.relname like 'bench\\_%%') "
        "as bench_tables, "
        "count(*) filter (where c.relkind = 'i' and t.relname like 'bench\\_%%') "
        "as bench_indexes, "
        "count(*) filter (where c.relkind in ('r', 'p')) as tables, "
        "count(*) filter (where c.relkind = 'i') as indexes "
        "from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
        "left join pg_catalog.pg_index x on x.indexrelid = c.oid "
        "left join pg_catalog.pg_class t on t.oid = x.indrelid "
        "where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')",
    )[0]


@contextmanager
def _environ(dsn: str) -> Iterator[None]:
    """``DATABASE_URL`` set to ``dsn`` and the variables naming a real configuration unset."""
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", *_SCRUB)}
    for k in _SCRUB:
        os.environ.pop(k, None)
    os.environ["DATABASE_URL"] = dsn
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def write_project(work: Path) -> Path:
    """A project folder: ``empire-ops.toml`` (state store inside it) and a ``.env`` (0600)."""
    config = work / "empire-ops.toml"
    config.write_text(
        '[project]\nname = "bench-dashboard"\nstate_dir = ".empire"\n'
        '[backup.repos.local]\nurl = "file:.empire/backups"\n'
    )
    dotenv = work / ".env"
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in boot_secrets().items()))
    dotenv.chmod(0o600)
    return config


@dataclass
class Build:
    """One build's wall seconds by stage, each part's own seconds, and the outputs' sizes."""

    collect: float
    to_dict: float
    json: float
    render: float
    parts: dict[str, float]
    html_bytes: int
    json_bytes: int
    html: str = field(repr=False)
    data: dict[str, Any] = field(repr=False)

    @property
    def total(self) -> float:
        return self.collect + self.to_dict + self.json + self.render


def build_once(config: Config, top: int) -> Build:
    """Collect (no history point), redact to a dict, serialise and render, as one build does."""
    from dashboards.collect import collect_snapshot
    from dashboards.render import json_text, render_html

    t0 = time.perf_counter()
    snapshot = collect_snapshot(config, record=False)
    t1 = time.perf_counter()
    data = snapshot.to_dict()
    t2 = time.perf_counter()
    text = json_text(data)
    t3 = time.perf_counter()
    html = render_html(data, top=top, runbook_base="")
    t4 = time.perf_counter()
    return Build(
        t1 - t0, t2 - t1, t3 - t2, t4 - t3,
        {name: part.seconds for name, part in snapshot.parts.items()},
        len(html.encode()), len(text.encode()), html, data,
    )  # fmt: skip


@contextmanager
def recording() -> Iterator[list[tuple[Any, Any]]]:
    """Every (statement, parameters) sent through ``ops.db.run_query`` while inside."""
    sent: list[tuple[Any, Any]] = []
    original = db.run_query

    def run_query(conn: Any, query: Any, params: Any = None) -> list[dict[str, Any]]:
        sent.append((query, params))
        return original(conn, query, params)

    db.run_query = run_query
    try:
        yield sent
    finally:
        db.run_query = original


def _text(query: Any) -> str:
    return query if isinstance(query, str) else db.render(query)


def read_only(sent: Sequence[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The statements that only read (the ledger's ``create table if not exists`` is not one)."""
    return [(q, p) for q, p in sent if _READ_ONLY.match(_text(q))]


def replay(dsn: str, statements: Sequence[tuple[Any, Any]]) -> tuple[float, list[float]]:
    """Wall seconds to connect and send ``statements`` bare (tuples), and each one's seconds."""
    import psycopg  # bare on purpose: the baseline is the driver without ops' wrapper

    each: list[float] = []
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:  # autocommit, as the collector's
        for query, params in statements:
            t = time.perf_counter()
            conn.execute(query, params).fetchall()
            each.append(time.perf_counter() - t)
    return time.perf_counter() - started, each


def answered(dsn: str, statements: Sequence[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """The statements that run without an error (the collector reads some tables that may
    not exist yet, such as the scheduler's heartbeats, and takes the error as "none")."""
    import psycopg

    out = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for query, params in statements:
            try:
                conn.execute(query, params).fetchall()
            except psycopg.Error:
                continue
            out.append((query, params))
    return out


def _maxrss_kib() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # bytes there, KiB on Linux


def traced_peak(fn: Callable[[], object]) -> int:
    """The tracemalloc peak (bytes) of the Python allocations of one call of ``fn``."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def check_page(build: Build, top: int) -> list[str]:
    """What the page must show of the long lists: ``top`` rows of each, the rest counted."""
    database = build.data["parts"]["database"]
    problems = []
    for key, heading in (("tables", "<h3>Tables ("), ("indexes", "<h3>Indexes (")):
        total = len(database[key])
        more = f"and {total - top} more {key}"
        if total <= top:
            problems.append(f"only {total} {key}: nothing to count beyond the top {top}")
            continue
        start, end = build.html.find(heading), build.html.find(more)
        if start < 0 or end < start:
            problems.append(f'the page has no {heading[4:-2]} list ending "{more}"')
            continue
        rows = build.html.count("<tr><td>", start, end)
        if rows != top:
            problems.append(f"the page lists {rows} {key}, not the top {top}")
    severe = [
        f for f in build.data["findings"] if f["severity"] in ("warning", "error", "critical")
    ]
    if len(severe) > top * 5 and f"and {len(severe) - top * 5} more findings" not in build.html:
        problems.append(f"the page does not count the {len(severe) - top * 5} findings not shown")
    return problems


def run(server: str, *, tables: int, runs: int) -> dict[str, Any]:
    """Build the database and the project, time the builds and the bare replay."""
    from ops.config import load_config

    name = f"bench_dash_{secrets.token_hex(4)}"
    with db.connect(server, autocommit=True) as admin:
        db.run_query(admin, f"create database {name}")
    dsn = db.with_dbname(server, name)
    work = Path(tempfile.mkdtemp(prefix="empire-bench-dash-"))
    try:
        config_path = write_project(work)
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        env["DATABASE_URL"] = dsn
        started = time.perf_counter()
        subprocess.run(
            [*empire_ops(), "--env", "dev", "migrate", "up"], cwd=work, env=env,
            capture_output=True, check=True,
        )  # fmt: skip
        with db.connect(dsn, autocommit=True) as conn:
            build_schema(conn, tables)
            add_indexes(conn, tables)
            add_rows(conn, tables)
            counts = count_objects(conn)
        built = time.perf_counter() - started
        expected = (tables, tables * INDEXES_PER_TABLE)
        if (counts["bench_tables"], counts["bench_indexes"]) != expected:
            raise SystemExit(f"built {counts}, expected {expected} tables and indexes")

        with _environ(dsn):
            config = load_config(config_path, env="dev")
            top = int(config.get("dashboard.top"))
            rss_before = _maxrss_kib()
            with recording() as sent:
                warm = build_once(config, top)  # warm-up: imports, templates, plans
            statements = answered(dsn, read_only(sent))
            builds = [build_once(config, top) for _ in range(runs)]
            failed = sorted({n for b in (warm, *builds) for n, part in b.data["parts"].items()
                             if part["state"] == "failed"})  # fmt: skip
            rss_after = _maxrss_kib()  # before tracemalloc, whose own tables are large
            peak = traced_peak(lambda: build_once(config, top))
        replay(dsn, statements)  # warm-up
        replays = [replay(dsn, statements) for _ in range(runs)]
        replay_peak = traced_peak(lambda: replay(dsn, statements))
        slowest = sorted(
            zip((statistics.median(s) for s in zip(*(r[1] for r in replays), strict=True)),
                (_text(q) for q, _ in statements), strict=True),
            reverse=True,
        )[:5]  # fmt: skip
        return {
            "counts": counts,
            "build_s": built,
            "builds": builds,
            "page_problems": sorted({p for b in builds for p in check_page(b, top)}),
            "failed_parts": failed,
            "top": top,
            "statements": len(statements),
            "sent": len(sent),
            "baseline": [r[0] for r in replays],
            "slowest": slowest,
            "peak": peak,
            "replay_peak": replay_peak,
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with db.connect(server, autocommit=True) as admin:
            db.run_query(admin, f"drop database if exists {name} with (force)")


def render(r: dict[str, Any], *, markdown: bool) -> str:
    """The figures: counts, timings against the baseline, per-part seconds, sizes, memory."""
    c, builds = r["counts"], r["builds"]
    total = [b.total for b in builds]
    base = statistics.median(r["baseline"])
    mib = 1024 * 1024
    lines = [
        f"{c['bench_tables']} bench tables with {c['bench_indexes']} indexes "
        f"({c['tables']} tables, {c['indexes']} indexes in all; built in {r['build_s']:.1f}s); "
        f"page top {r['top']}",
        "",
    ]
    rows = [
        ("baseline: the collector's reads, bare", r["baseline"]),
        ("collect_snapshot", [b.collect for b in builds]),
        ("to_dict (redacted)", [b.to_dict for b in builds]),
        ("json.dumps", [b.json for b in builds]),
        ("render_html", [b.render for b in builds]),
        ("build: collect + to_dict + json + render", total),
    ]
    lines.append(render_table(
        ("what", "median s", "p90 s", "vs baseline"),
        [(n, f"{statistics.median(s):.3f}", f"{_p90(s):.3f}", f"{statistics.median(s) / base:.1f}x")
         for n, s in rows],
        markdown=markdown,
    ))  # fmt: skip
    lines.append("")
    parts = [(n, [b.parts[n] for b in builds]) for n in builds[0].parts]
    lines.append(
        render_table(
            ("part", "median s", "p90 s"),
            [(n, f"{statistics.median(s):.3f}", f"{_p90(s):.3f}") for n, s in parts],
            markdown=markdown,
        )
    )
    b = builds[-1]
    lines += [
        "",
        f"page {b.html_bytes / 1024:.0f} KiB, db-health.json {b.json_bytes / 1024:.0f} KiB; "
        f"{r['statements']} read-only statements replayed (of {r['sent']} sent)",
        f"peak memory: tracemalloc {r['peak'] / mib:.1f} MiB a build, "
        f"{r['replay_peak'] / mib:.1f} MiB the baseline "
        f"({r['peak'] / max(1, r['replay_peak']):.1f}x); "
        f"process ru_maxrss {r['rss_after_kib'] / 1024:.1f} MiB after the builds "
        f"({r['rss_before_kib'] / 1024:.1f} MiB before the first)",
        "slowest statements (median s):",
    ]
    for seconds, text in r["slowest"]:
        lines.append(f"  {seconds:.4f}  {' '.join(text.split())[:90]}")
    med = statistics.median(total)
    verdict = "meets" if med < TARGET_SECONDS else "MISSES"
    aim = "beats" if med < AIM_SECONDS else "does not reach"
    lines.append(
        f"build median {med:.3f}s {verdict} the {TARGET_SECONDS:g}s target and {aim} "
        f"the {AIM_SECONDS:g}s aim"
    )
    for problem in r["page_problems"]:
        lines.append(f"page: {problem}")
    for part in r["failed_parts"]:
        lines.append(f"warning: the {part} part failed; its timing is not a read")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 1 when the median build misses 2 s or the page is wrong."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard_scale",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--tables", type=int, default=1000, help="bench tables (1000)")
    parser.add_argument("--runs", type=int, default=7, help="timed builds (7)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    args = parser.parse_args(argv)
    with database() as (server, where):
        result = run(server, tables=args.tables, runs=args.runs)
    print(
        f"# dashboard build, {args.runs} runs, {where}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"Python {platform.python_version()}; {os.cpu_count()} CPUs {platform.machine()}",
        file=sys.stderr,
    )
    print(render(result, markdown=args.markdown))
    ok = statistics.median(b.total for b in result["builds"]) < TARGET_SECONDS
    return 0 if ok and not result["page_problems"] and not result["failed_parts"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
