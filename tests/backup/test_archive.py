"""pg_dump's custom-format TOC, read and rewritten in the stream (ops/backup/archive.py),
on real archives of the real servers."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg

from ops import db
from ops.backup.archive import TocRewriter, internal_column_options, strip_column_options
from ops.backup.tools import find_tool
from tests.backup.test_backup_run import _config
from tests.backup.test_restore import _backup


def _pg_dump(dsn: str, *args: str) -> bytes:
    tool = find_tool("pg_dump", server_major=15)
    conninfo, env = db.tool_conninfo(dsn)
    return subprocess.run(
        [str(tool.path), "-Fc", "-Z0", f"--dbname={conninfo}", *args],
        capture_output=True, check=True, env={**env, "PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip


def _listing(archive: bytes, tmp_path: Path) -> list[tuple[str, str]]:
    """(dump id, description) of every entry, as pg_restore --list reads them."""
    path = tmp_path / "a.pgc"
    path.write_bytes(archive)
    tool = find_tool("pg_restore", server_major=15)
    out = subprocess.run(
        [str(tool.path), "--list", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return [
        (m.group(1), m.group(2))
        for m in re.finditer(r"^(\d+); \d+ \d+ ([A-Z][A-Z ]*?) ", out, re.M)
    ]


def test_strip_column_options_leaves_every_other_option_and_statement() -> None:
    defn = (
        "CREATE TABLE public.t (\n    id bigint,\n    body text\n);\n"
        "ALTER TABLE ONLY public.t ALTER COLUMN id SET (pg_attver=22161904);\n"
        "ALTER TABLE ONLY public.t ALTER COLUMN body SET (n_distinct=5, pg_attver=7);\n"
        "ALTER TABLE ONLY public.t ALTER COLUMN body SET (pg_attver=7, n_distinct=5);\n"
        "ALTER TABLE ONLY public.t ALTER COLUMN body SET STATISTICS 500;\n"
        "COMMENT ON COLUMN public.t.body IS 'SET (pg_attver=1)';\n"
    )
    assert strip_column_options(defn, ["pg_attver"]) == (
        "CREATE TABLE public.t (\n    id bigint,\n    body text\n);\n"
        "ALTER TABLE ONLY public.t ALTER COLUMN body SET (n_distinct=5);"
        "ALTER TABLE ONLY public.t ALTER COLUMN body SET (n_distinct=5);"
        "ALTER TABLE ONLY public.t ALTER COLUMN body SET STATISTICS 500;\n"
        "COMMENT ON COLUMN public.t.body IS 'SET (pg_attver=1)';\n"
    )
    assert strip_column_options("CREATE TABLE t ();\n", ["pg_attver"]) == "CREATE TABLE t ();\n"


def test_a_real_archive_reads_as_pg_restore_reads_it_and_rewrites_only_definitions(
    migrated_db: str, tmp_path: Path
) -> None:
    archive = _pg_dump(migrated_db)
    same = TocRewriter(io.BytesIO(archive), lambda d: d)
    assert same.read() == archive and same.problem is None and same.changed == 0

    marked = TocRewriter(io.BytesIO(archive), lambda d: d.replace("CREATE TABLE", "CREATE  TABLE"))
    rewritten = marked.read()
    assert marked.problem is None and marked.changed > 30
    assert _listing(rewritten, tmp_path) == _listing(archive, tmp_path)
    # The data after the TOC is the same bytes.
    assert rewritten.endswith(archive[-(len(archive) // 2) :])


def test_what_it_cannot_rewrite_passes_through_unchanged(migrated_db: str, tmp_path: Path) -> None:
    # A dump written to a file records its data offsets: a new TOC would move them.
    path = tmp_path / "seekable.pgc"
    _pg_dump(migrated_db, "-f", str(path))
    seekable = path.read_bytes()
    for data, why in [
        (seekable, "data offsets"),
        (b"not an archive at all", "not a pg_dump archive"),
        (_pg_dump(migrated_db)[:300], "ended inside"),
    ]:
        stream = TocRewriter(io.BytesIO(data), lambda d: d + "-- changed\n")
        assert stream.read() == data
        assert stream.problem is not None and why in stream.problem and stream.changed == 0


def test_a_postgresql_15_backup_leaves_out_the_servers_internal_column_options(
    pg15_source: str, tmp_path: Path, cli: Any
) -> None:
    """PostgreSQL 15.20 keeps pg_attver on every column, which 18 refuses: the
    backup records which options it left out, and its archive holds none."""
    source = pg15_source
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("create table public.t (id int, body text)")
        conn.execute("alter table public.t alter column body set (n_distinct = 5)")
    with db.connect(source, autocommit=True) as conn:
        internal = internal_column_options(conn)
    _config(tmp_path, '[backup]\ncompression = "none"\n')
    backup_id = _backup(cli, source)
    folder = tmp_path / "backups" / backup_id
    manifest = json.loads((folder / "manifest.json").read_bytes())
    assert manifest["stripped_column_options"] == internal
    tool = find_tool("pg_restore", server_major=15)
    script = subprocess.run(
        [str(tool.path), "-f", "-", str(folder / "dump.pgc")],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "SET (n_distinct=5);" in script
    assert not any(option + "=" in script for option in internal)
