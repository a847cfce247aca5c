"""Benchmark: ``migrate check`` on a synthetic 1,000-table, 3,000-index schema.

Run with ``.venv/bin/python -m bench.schema_check`` (``--tables N``, ``--runs N``,
``--markdown``).

A scratch database gets ``--tables`` tables, each with a primary key, two
more indexes (3 indexes a table), a foreign key to the previous table, a
check constraint, RLS with a policy, a ``set_updated_at`` trigger and grants
to three API-like roles. Its manifest is made by snapshotting it (the same
code as ``migrate snapshot``), then the check runs ``--runs`` times (after one
warm-up) against that manifest: it must find nothing, and take at most 10
catalog queries. Timed in the same run, the baselines are one ``select 1``
round trip on an open connection, and a new connection plus ``select 1``
(what ``check_target`` pays before its first query).

The server is ``$DATABASE_URL`` when set (a scratch database ``bench_schema_*``
is created and dropped there), otherwise an embedded PostgreSQL in a temporary
folder for this run.
"""

from __future__ import annotations

import argparse
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench._common import database
from ops import db
from ops.migrate.drift import run_check
from ops.migrate.manifest import manifest_of

TARGET_SECONDS = 1.0
MAX_QUERIES = 10
_ROLES = ("bench_anon", "bench_authenticated", "bench_service")


def build_schema(conn: Any, tables: int) -> None:
    """Create ``tables`` tables with 3 indexes each, in batches of one statement string."""
    roles = ", ".join(_ROLES)
    head = [
        "create or replace function public.set_updated_at() returns trigger "
        "language plpgsql as $$ begin new.updated_at := now(); return new; end $$;",
    ]
    for role in _ROLES:
        head.append(
            f"do $$ begin if not exists (select 1 from pg_roles where rolname = '{role}') "
            f"then create role {role} nologin; end if; end $$;"
        )
    db.run_query(conn, "\n".join(head))
    batch: list[str] = []
    for i in range(tables):
        t = f"public.bench_{i:04d}"
        fk = (
            f"prev_id bigint references public.bench_{i - 1:04d} (id) on delete set null, "
            if i
            else ""
        )
        batch.append(
            f"create table {t} (id bigint primary key, {fk}slug text not null, "
            f"status text not null default 'draft' check (status in ('draft', 'live')), "
            f"owner uuid, meta jsonb not null default '{{}}', "
            f"created_at timestamptz not null default now(), "
            f"updated_at timestamptz not null default now());"
            f"create index on {t} ({'prev_id' if i else 'owner'});"
            f"create index on {t} (status, created_at);"
            f"alter table {t} enable row level security;"
            f"create policy own on {t} for select to {_ROLES[1]} using (owner is not null);"
            f"create trigger set_updated_at before update on {t} "
            f"for each row execute function public.set_updated_at();"
            f"grant select, insert, update, delete on {t} to {roles};"
        )
        if len(batch) == 100:
            db.run_query(conn, "\n".join(batch))
            batch.clear()
    if batch:
        db.run_query(conn, "\n".join(batch))


def _median_seconds(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm-up: caches, plans
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def run(server: str, *, tables: int, runs: int) -> dict[str, Any]:
    """Build the schema on a scratch database, snapshot it, time the check and the baselines."""
    name = f"bench_schema_{secrets.token_hex(4)}"
    with db.connect(server, autocommit=True) as admin:
        db.run_query(admin, f"create database {name}")
    dsn = db.with_dbname(server, name)
    try:
        with db.connect(dsn, autocommit=True) as conn:
            started = time.perf_counter()
            build_schema(conn, tables)
            built = time.perf_counter() - started
            counts = db.run_query(
                conn,
                "select count(*) filter (where relkind = 'r') as tables, "
                "count(*) filter (where relkind = 'i') as indexes from pg_class "
                "where relnamespace = 'public'::regnamespace",
            )[0]
            manifest = manifest_of(conn)
            result = run_check(conn, manifest=manifest)
            problems = [f for f in result.findings if f.code != "SCHEMA_OK"]
            if problems or result.queries > MAX_QUERIES:
                raise SystemExit(
                    f"check is not clean or too chatty: {result.queries} {problems[:3]}"
                )
            check = _median_seconds(lambda: run_check(conn, manifest=manifest), runs)
            ping = _median_seconds(lambda: db.run_query(conn, "select 1"), runs)

        def connect_ping() -> None:
            with db.connect(dsn, autocommit=True) as c:
                db.run_query(c, "select 1")

        connect = _median_seconds(connect_ping, runs)
        return {
            "tables": counts["tables"],
            "indexes": counts["indexes"],
            "build_s": built,
            "queries": result.queries,
            "check": check,
            "ping": ping,
            "connect": connect,
        }
    finally:
        with db.connect(server, autocommit=True) as admin:
            db.run_query(admin, f"drop database if exists {name} with (force)")


def render(r: dict[str, Any], *, markdown: bool) -> str:
    rows = [
        ("select 1 round trip (baseline)", r["ping"]),
        ("connect + select 1 (baseline)", r["connect"]),
        (f"migrate check ({r['queries']} catalog queries)", r["check"]),
    ]
    base = statistics.median(r["ping"])
    lines = [
        f"{r['tables']} tables, {r['indexes']} indexes (built in {r['build_s']:.1f}s)",
    ]
    if markdown:
        lines += ["", "| what | median ms | max ms | vs select 1 |", "| --- | --- | --- | --- |"]
        for label, samples in rows:
            med = statistics.median(samples)
            lines.append(
                f"| {label} | {med * 1e3:.1f} | {max(samples) * 1e3:.1f} | {med / base:.0f}x |"
            )
    else:
        for label, samples in rows:
            med = statistics.median(samples)
            lines.append(
                f"{label:<42} median {med * 1e3:8.1f} ms  max {max(samples) * 1e3:8.1f} ms"
            )
    verdict = "ok" if statistics.median(r["check"]) < TARGET_SECONDS else "SLOWER THAN TARGET"
    lines.append(f"target: check median < {TARGET_SECONDS:g}s: {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    with database() as (server, where):
        result = run(server, tables=args.tables, runs=args.runs)
    print(
        f"# migrate check, {args.runs} runs, {where}; "
        f"Python {platform.python_version()} on {platform.machine()}",
        file=sys.stderr,
    )
    print(render(result, markdown=args.markdown))
    return 0 if statistics.median(result["check"]) < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
