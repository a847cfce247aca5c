"""The backup's grants: recorded in its snapshot, and put back exactly after a restore.

The restore target runs the bootstrap, whose default privileges are
Supabase's (everything to the API roles on new tables): without the grants
step, a restored ``admin_logs`` would be writable and TRUNCATE-able by
``anon``. Against the real PostgreSQL 18.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops import db
from ops.backup.grants import apply_grants, read_grants
from tests.backup.test_backup_run import _config, _seed
from tests.backup.test_restore import _backup, _drop, _new_name


def _grants(dsn: str, schemas: list[str]) -> dict[str, Any]:
    with db.connect(dsn, autocommit=True) as conn:
        return read_grants(conn, schemas)


def _table_privileges(dsn: str, role: str, table: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select privilege_type from information_schema.role_table_grants "
            "where grantee = %s and table_schema || '.' || table_name = %s",
            (role, table),
        ).fetchall()
    return {r[0] for r in rows}


def _restore(cli: Any, source: str, name: str, *args: str) -> dict[str, Any]:
    result = cli(
        "restore", "latest", "--target-db", name, "--create", "--json", *args,
        env={"DATABASE_URL": source},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_a_restore_carries_exactly_the_backups_grants_not_the_targets_defaults(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _seed(migrated_db)
    _config(tmp_path)
    backup_id = _backup(cli, migrated_db)
    manifest = json.loads((tmp_path / "backups" / backup_id / "manifest.json").read_bytes())
    recorded = manifest["grants"]
    # The record covers tables, columns, sequences, functions and schemas, and no secret.
    kinds = {entry["kind"] for entry in recorded.values()}
    assert {"TABLE", "SCHEMA", "FUNCTION"} <= kinds
    assert recorded["table public.admin_logs"]["grants"]["service_role"] == ["INSERT", "SELECT"]
    name, bare = _new_name(), _new_name()
    try:
        _restore(cli, migrated_db, name)
        restored = db.with_dbname(migrated_db, name)
        assert _grants(restored, manifest["schemas"]) == _grants(migrated_db, manifest["schemas"])
        # The defaults would have given anon everything on the append-only log.
        assert _table_privileges(restored, "anon", "public.admin_logs") == set()
        assert _table_privileges(restored, "service_role", "public.admin_logs") == {
            "INSERT", "SELECT"
        }  # fmt: skip
        # --no-grants: the target's defaults stay, which is what the step takes back.
        _restore(cli, migrated_db, bare, "--no-grants")
        widened = _table_privileges(db.with_dbname(migrated_db, bare), "anon", "public.admin_logs")
        assert {"TRUNCATE", "DELETE", "UPDATE"} <= widened
    finally:
        _drop(pg, name)
        _drop(pg, bare)


def test_a_table_restore_gives_grants_to_the_chosen_table_only(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _config(tmp_path)
    _backup(cli, migrated_db)
    name = _new_name()
    try:
        data = _restore(cli, migrated_db, name, "--table", "public.offers")["data"]
        assert "grants" in data["stages"]
        restored = db.with_dbname(migrated_db, name)
        assert _table_privileges(restored, "anon", "public.offers") == _table_privileges(
            migrated_db, "anon", "public.offers"
        )
    finally:
        _drop(pg, name)


@pytest.fixture
def target(fresh_db: str) -> Any:
    with db.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create table public.t (id int, secret text)")
        conn.execute("grant all on public.t to public")
        yield conn


def test_apply_grants_revokes_what_is_there_and_gives_what_was_recorded(target: Any) -> None:
    role = 'odd "role"; drop table public.t; --'
    target.execute(db.SQL("drop role if exists {}").format(db.Identifier(role)))
    target.execute(db.SQL("create role {}").format(db.Identifier(role)))
    try:
        recorded = {
            "table public.t": {
                "kind": "TABLE", "schema": "public", "name": "t",
                "grants": {role: ["SELECT"]}, "columns": {"id": {"PUBLIC": ["UPDATE"]}},
            }
        }  # fmt: skip
        assert apply_grants(target, recorded) == []
        assert read_grants(target, ["public"])["table public.t"] == recorded["table public.t"]
    finally:
        target.execute(db.SQL("revoke all on public.t from {}").format(db.Identifier(role)))
        target.execute(db.SQL("drop role {}").format(db.Identifier(role)))


def test_apply_grants_refuses_what_is_not_a_privilege_or_a_role_and_applies_the_rest(
    target: Any,
) -> None:
    recorded = {
        "table public.t": {
            "kind": "TABLE", "schema": "public", "name": "t",
            "grants": {
                "PUBLIC": ["SELECT", "SELECT ON public.t TO PUBLIC; DROP TABLE public.t; --"],
                "no_such_role_here": ["SELECT"],
            },
        },
        "table public.gone": {
            "kind": "TABLE", "schema": "public", "name": "gone", "grants": {"PUBLIC": ["SELECT"]}
        },
        "type public.x": {"kind": "TYPE", "schema": "public", "name": "x", "grants": {}},
    }  # fmt: skip
    problems = apply_grants(target, recorded)
    assert len(problems) == 3
    assert any("is not a privilege" in p for p in problems)
    assert any("role no_such_role_here does not exist" in p for p in problems)
    assert any("type public.x" in p for p in problems)
    # The table is still there, with only the valid grant (the rest revoked).
    assert read_grants(target, ["public"])["table public.t"]["grants"] == {"PUBLIC": ["SELECT"]}


def test_a_backup_that_recorded_no_grants_says_so_and_leaves_the_defaults(
    fresh_db: str,
) -> None:
    from ops.backup.manifest import BackupManifest
    from ops.backup.restore import RestoreReport, restore_grants

    manifest = BackupManifest(
        backup_id="20260101T000000Z-abcdef", status="complete", database={},
        pg_dump_version="18.1", format="custom", compression="zstd", zstd_level=3,
        recipients=[], started_at="2026-01-01T00:00:00+00:00", finished_at="", seconds=0.0,
        schemas=["public"], excluded_schemas=[], tables={}, migration_version=None,
        empire_ops_version="0", grants=None,
    )  # fmt: skip
    report = RestoreReport(target="t")
    assert restore_grants(fresh_db, manifest, (), report) == []
    assert [f.code for f in report.findings] == ["RESTORE_GRANTS_UNKNOWN"]
    assert "grants" not in report.stages
