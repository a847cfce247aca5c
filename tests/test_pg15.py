"""The system PostgreSQL 15 fixture (Supabase's major) for cross-version work."""

from __future__ import annotations

import psycopg

from ops import db


def test_pg15_fixture_runs_a_real_postgresql_15(pg15) -> None:
    with db.connect(pg15.dsn(), autocommit=True) as conn:
        major, full = db.server_version(conn)
    assert major == 15, full


def test_pg15_and_pg18_run_side_by_side(pg15, pg) -> None:
    with psycopg.connect(pg15.dsn()) as a, psycopg.connect(pg.dsn()) as b:
        assert a.info.server_version // 10000 == 15
        assert b.info.server_version // 10000 == 18


def test_preflight_reports_pg15_without_vector(pg15, cli) -> None:
    import json

    result = cli("preflight", "--json", env={"DATABASE_URL": pg15.dsn()})
    data = json.loads(result.stdout)
    codes = {f["code"]: f for f in data["findings"]}
    assert "DB_REACHABLE" in codes
    assert codes["EXTENSION_UNAVAILABLE"]["subject"] == "vector"
    assert result.exit_code == 1
