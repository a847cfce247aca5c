"""Benchmark: backup, restore and drill against bare pg_dump / pg_restore, in the same run.

Run with ``.venv/bin/python -m bench.backup`` (``--scale S``, ``--runs N``, ``--markdown``).

On the demo data at ``--scale`` (``db seed-demo``; scale 130 is about 1 GB),
in an embedded PostgreSQL 18 started for this run (or ``$DATABASE_URL``), it
measures N runs of each pair, the baseline first:

| measured | baseline |
| --- | --- |
| `backup run`, zstd, no encryption | `pg_dump -Fc -f FILE` |
| `backup run`, `compression = "pg_dump"` | `pg_dump -Fc -f FILE` |
| `backup run`, zstd + age | `backup run`, zstd, no encryption |
| `restore` of the zstd backup into a new database | `createdb` + `pg_restore -d` of the bare dump |
| `drill run` | `createdb` + `pg_restore` + `count(*)` of every table |
| `pg_dump -Fd -j 2` (directory format, for the record) | `pg_dump -Fc -f FILE` |
| `restore -j 2` of the zstd backup | `createdb` + `pg_restore -j 2 -d` of the bare dump |
| `backup run` to S3 (moto's server; ``--no-s3`` skips it) | `backup run`, local |

Scale 130 is about 1 GB of tables; ``--scale 10`` and ``--scale 130`` side by
side show whether peak RSS stays flat as the data grows.

Each row gives the median wall time, its ratio to the baseline, the output
size where there is one, and the peak RSS (``ru_maxrss`` of the command and
the children it waited for, from ``wait4``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._common import Timing, database, empire_ops, measure, render_table

_SCRUB = ("EMPIRE_OPS_CONFIG", "EMPIRE_ENV", "EMPIRE_OPS_LOG_FORMAT", "EMPIRE_OPS_LOG_LEVEL")
_COUNT_ALL = (
    "import psycopg, sys\n"
    "with psycopg.connect(sys.argv[1]) as c:\n"
    '    for s, t in c.execute("select schemaname, tablename from pg_tables where schemaname '
    "not in ('pg_catalog', 'information_schema')\").fetchall():\n"
    '        c.execute(f\'select count(*) from "{s}"."{t}"\').fetchone()\n'
)


@dataclass
class Row:
    timing: Timing
    baseline: Timing
    size: int | None = None
    baseline_size: int | None = None


def _bin(name: str) -> str:
    from ops.embedded import wheel_install_dir

    return str(wheel_install_dir() / "bin" / name)


def _newest_size(folder: Path, pattern: str) -> int:
    files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    return files[-1].stat().st_size if files else 0


def _config(work: Path, body: str) -> None:
    (work / "empire-ops.toml").write_text('[backup.repos.local]\nurl = "file:backups"\n' + body)


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _s3_row(cli: list[str], work: Path, env: dict[str, str], runs: int, local: Row) -> Row:
    """`backup run` into a bucket on moto's server, against the local run.

    moto runs in its own process: in this one, the objects it holds would be
    counted in the measured command's peak RSS (a forked child starts with
    its parent's pages).
    """
    import socket
    import subprocess
    import time

    import boto3

    from tests.motoserver import AWS_KEY_ID, AWS_SECRET

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        env = {**env, "AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
               "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id=AWS_KEY_ID, aws_secret_access_key=AWS_SECRET,
        )  # fmt: skip
        for _ in range(100):
            try:
                client.create_bucket(Bucket="bench")
                break
            except Exception:  # not listening yet
                time.sleep(0.1)
        (work / "empire-ops.toml").write_text(
            f'[backup.repos.s3]\nurl = "s3://bench/backups"\nendpoint_url = "{endpoint}"\n'
        )
        timing = measure("backup run (zstd) to S3 (moto)", [*cli, "backup", "run"], runs=runs,
                         cwd=work, env=env)  # fmt: skip
        sizes = [o["Size"] for o in client.list_objects_v2(Bucket="bench")["Contents"]
                 if o["Key"].endswith(".zst")]  # fmt: skip
        return Row(timing, local.timing, sizes[-1] if sizes else None, local.size)
    finally:
        moto.terminate()
        moto.wait(timeout=10)


def run(scale: float, runs: int, *, s3: bool = True) -> tuple[list[Row], str]:
    """Seed, then measure every pair; returns the rows and where the database was."""
    from ops import db

    work = Path(tempfile.mkdtemp(prefix="empire-bench-backup-"))
    work.chmod(0o711)
    try:
        with database() as (dsn, where):
            env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
            env["DATABASE_URL"] = dsn
            cli = empire_ops()
            import subprocess

            subprocess.run([*cli, "--env", "dev", "migrate", "up"], cwd=work, env=env,
                           capture_output=True, check=True)  # fmt: skip
            seed = [*cli, "--env", "dev", "db", "seed-demo", "--scale", str(scale), "--yes"]
            subprocess.run(seed, cwd=work, env=env, capture_output=True, check=True)
            conninfo, extra = db.tool_conninfo(dsn)
            env.update(extra)
            bare = work / "bare.pgc"
            pg_dump = measure("pg_dump -Fc -f FILE (baseline)",
                              [_bin("pg_dump"), "-Fc", "-f", str(bare), f"--dbname={conninfo}"],
                              runs=runs, cwd=work, env=env)  # fmt: skip
            bare_size = bare.stat().st_size
            rows: list[Row] = []
            _config(work, "")
            zstd = measure("backup run (zstd)", [*cli, "backup", "run"], runs=runs, cwd=work,
                           env=env)  # fmt: skip
            rows.append(Row(zstd, pg_dump, _newest_size(work / "backups", "*/dump.pgc.zst"),
                            bare_size))  # fmt: skip
            _config(work, '[backup]\ncompression = "pg_dump"\n')
            gz = measure("backup run (compression = pg_dump)", [*cli, "backup", "run"],
                         runs=runs, cwd=work, env=env)  # fmt: skip
            rows.append(Row(gz, pg_dump, _newest_size(work / "backups", "*/dump.pgc"), bare_size))
            from pyrage import x25519

            identity = x25519.Identity.generate()
            _config(work, f'[backup]\nrecipients = ["{identity.to_public()}"]\n')
            age = measure("backup run (zstd + age)", [*cli, "backup", "run"], runs=runs,
                          cwd=work, env=env)  # fmt: skip
            rows.append(Row(age, zstd, _newest_size(work / "backups", "*/dump.pgc.zst.age"),
                            rows[0].size))  # fmt: skip
            _config(work, "")
            subprocess.run([*cli, "backup", "run"], cwd=work, env=env, check=True,
                           capture_output=True)  # fmt: skip  # the latest is a zstd one again
            server = db.with_dbname(dsn, "postgres")
            base_info, _ = db.tool_conninfo(server)
            createdb = f'{_bin("createdb")} --maintenance-db="{base_info}"'
            target = f'"$(echo "{base_info}" | sed "s/dbname=[^ ]*/dbname=$n/")"'
            pg_restore = f"{_bin('pg_restore')} --no-owner --no-privileges"
            restore_base = measure(
                "createdb + pg_restore -d (baseline)",
                ["bash", "-c", f"n=b$$_$RANDOM; {createdb} $n && {pg_restore} -d {target} {bare}"],
                runs=runs, cwd=work, env=env,
            )  # fmt: skip
            restore = measure(
                "restore latest --target-db NEW --create",
                ["bash", "-c", f'{" ".join(cli)} restore latest --target-db r$$_$RANDOM --create'],
                runs=runs, cwd=work, env=env,
            )  # fmt: skip
            rows.append(Row(restore, restore_base))
            counter = work / "count_all.py"
            counter.write_text(_COUNT_ALL)
            drill_base = measure(
                "createdb + pg_restore + count(*) of every table (baseline)",
                ["bash", "-c", f"n=d$$_$RANDOM; {createdb} $n && {pg_restore} -d {target} {bare}; "
                 f"{sys.executable} {counter} {target}"],
                runs=runs, cwd=work, env=env,
            )  # fmt: skip
            env["DRILL_DATABASE_URL"] = server
            _config(work, '[backup.drill]\ndsn_secret = "DRILL_DATABASE_URL"\n')
            drill = measure("drill run", [*cli, "drill", "run"], runs=runs, cwd=work, env=env)
            rows.append(Row(drill, drill_base))
            del env["DRILL_DATABASE_URL"]
            _config(work, "")
            folder = work / "bare.dir"
            directory = measure(
                "pg_dump -Fd -j 2 (directory format)",
                ["bash", "-c", f'rm -rf {folder} && {_bin("pg_dump")} -Fd -j 2 -f {folder} '
                 f'--dbname="{conninfo}"'],
                runs=runs, cwd=work, env=env,
            )  # fmt: skip
            rows.append(Row(directory, pg_dump, _tree_size(folder), bare_size))
            restore_j2_base = measure(
                "createdb + pg_restore -j 2 -d (baseline)",
                ["bash", "-c", f"n=j$$_$RANDOM; {createdb} $n && {pg_restore} -j 2 -d {target} "
                 f"{bare}"],
                runs=runs, cwd=work, env=env,
            )  # fmt: skip
            restore_j2 = measure(
                "restore latest -j 2 --target-db NEW --create",
                ["bash", "-c", f'{" ".join(cli)} restore latest -j 2 --target-db q$$_$RANDOM '
                 "--create"],
                runs=runs, cwd=work, env=env,
            )  # fmt: skip
            rows.append(Row(restore_j2, restore_j2_base))
            if s3:
                rows.append(_s3_row(cli, work, env, runs, rows[0]))
            return rows, where
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render(rows: Sequence[Row], *, markdown: bool) -> str:
    head = ("measured", "median s", "baseline", "baseline s", "ratio", "size MB (baseline)",
            "peak RSS MiB", "exit")  # fmt: skip
    body = []
    for r in rows:
        size = "" if r.size is None else f"{r.size / 1e6:.1f} ({(r.baseline_size or 0) / 1e6:.1f})"
        body.append((
            r.timing.name, f"{r.timing.median:.2f}", r.baseline.name, f"{r.baseline.median:.2f}",
            f"{r.timing.median / r.baseline.median:.2f}x", size,
            f"{r.timing.peak_rss_kib / 1024:.0f}", str(r.timing.exit_code),
        ))  # fmt: skip
    return render_table(head, body, markdown=markdown)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backup", description=__doc__)
    parser.add_argument("--scale", type=float, default=10.0, help="demo data scale (10)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per command (3)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--no-s3", action="store_true", help="leave out the S3 (moto) row")
    args = parser.parse_args(argv)
    rows, where = run(args.scale, args.runs, s3=not args.no_s3)
    print(f"# {args.runs} runs each, scale {args.scale}; database: {where}")
    print(f"# {platform.python_version()}; {os.cpu_count()} CPUs, {platform.machine()} "
          f"{platform.system()} {platform.release()}")  # fmt: skip
    print(render(rows, markdown=args.markdown))
    return 0 if all(r.timing.exit_code == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
