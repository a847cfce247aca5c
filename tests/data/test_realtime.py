"""`realtime status` on a real, migrated PostgreSQL: the publication against the manifest."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from ops import db
from ops.data.realtime import compare, declared_tables, realtime_status


def _status(cli: Any, dsn: str) -> tuple[int, dict[str, Any]]:
    result = cli("realtime", "status", "--json", env={"DATABASE_URL": dsn})
    return result.exit_code, json.loads(result.stdout)


def _codes(payload: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(f["code"], f["severity"], f["subject"]) for f in payload["findings"]]


def _sql(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


def test_the_declared_tables_are_the_manifests() -> None:
    assert declared_tables() == [
        "public.notifications", "public.offers", "public.quiz_results", "public.users",
    ]  # fmt: skip


def test_compare_is_pure_policy() -> None:
    assert [f.code for f in compare(["a.t"], ["a.t"])] == ["REALTIME_OK"]
    assert [(f.code, f.subject) for f in compare(["a.t", "a.u"], ["a.t", "a.x"])] == [
        ("REALTIME_MISSING", "a.u"), ("REALTIME_EXTRA", "a.x"),
    ]  # fmt: skip
    assert [f.code for f in compare(["a.t"], None)] == ["REALTIME_NO_PUBLICATION"]
    assert [f.code for f in compare([], None)] == ["REALTIME_OK"]


def test_a_migrated_database_matches(cli: Any, migrated_db: str) -> None:
    code, payload = _status(cli, migrated_db)
    assert code == 0 and payload["ok"] is True
    assert _codes(payload) == [("REALTIME_OK", "ok", "supabase_realtime")]
    assert payload["data"]["published"] == declared_tables()
    shown = cli("realtime", "status", env={"DATABASE_URL": migrated_db})
    assert shown.exit_code == 0 and "public.notifications" in shown.stdout


def test_a_dropped_member_is_missing_and_an_undeclared_one_extra(
    cli: Any, migrated_db: str
) -> None:
    _sql(migrated_db, "alter publication supabase_realtime drop table public.notifications")
    code, payload = _status(cli, migrated_db)
    assert code == 0  # a warning: the status command reports, migrate check fails
    assert _codes(payload) == [("REALTIME_MISSING", "warning", "public.notifications")]
    assert payload["findings"][0]["runbook"] == "runbooks/REALTIME_MISSING.md"
    _sql(migrated_db, "alter publication supabase_realtime add table public.blogs")
    code, payload = _status(cli, migrated_db)
    assert code == 0
    assert _codes(payload) == [
        ("REALTIME_MISSING", "warning", "public.notifications"),
        ("REALTIME_EXTRA", "info", "public.blogs"),
    ]


def test_no_publication(cli: Any, migrated_db: str) -> None:
    _sql(migrated_db, "drop publication supabase_realtime")
    code, payload = _status(cli, migrated_db)
    assert code == 0
    assert _codes(payload) == [("REALTIME_NO_PUBLICATION", "warning", "supabase_realtime")]
    assert payload["data"]["exists"] is False and payload["data"]["published"] == []


@pytest.mark.parametrize("autocommit", [False, True])
def test_the_library_leaves_no_transaction_open(migrated_db: str, autocommit: bool) -> None:
    conn = db.connect(migrated_db, autocommit=autocommit)
    try:
        report = realtime_status(conn)
        assert report.exit_code == 0 and report.exists
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        conn.close()
