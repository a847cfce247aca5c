"""The committed expected-schema manifest is exactly what the migrations produce."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ops import db
from ops.migrate.manifest import (
    MANIFEST_PATH,
    diff,
    dumps,
    load_manifest,
    manifest_of,
    write_snapshot,
)


def test_snapshot_is_current(migrated_db: str) -> None:
    with db.connect(migrated_db, autocommit=True) as conn:
        produced = manifest_of(conn)
    committed = load_manifest()
    changes = diff(committed, produced)
    assert not changes, (
        "ops/migrate/expected_schema.json is stale; run `empire-ops migrate snapshot` and "
        "commit it. Differences:\n" + "\n".join(changes[:40])
    )
    # Byte for byte: the file is the deterministic rendering, so diffs stay reviewable.
    assert MANIFEST_PATH.read_text() == dumps(produced)


def test_manifest_covers_what_the_issue_asks_for() -> None:
    m = load_manifest()
    users = m["tables"]["public.users"]
    assert users["rls_enabled"] is True
    assert users["columns"]["meta"] == {
        "type": "jsonb",
        "not_null": True,
        "default": "'{}'::jsonb",
    }
    assert users["triggers"]["set_updated_at"]["enabled"] == "enabled"
    assert users["policies"]["own_rows_select"]["using"] == "(( SELECT auth.uid() AS uid) = id)"
    # No TRUNCATE, TRIGGER or REFERENCES for the API; no credentials in public.users.
    assert users["grants"]["anon"] == ["DELETE", "INSERT", "SELECT", "UPDATE"]
    assert not {"password_hash", "session_tokens"} & set(users["columns"])
    credentials = m["tables"]["empire_private.user_credentials"]
    assert credentials["grants"] == {} and "password_hash" in credentials["columns"]
    assert m["tables"]["public.admin_logs"]["grants"] == {"service_role": ["INSERT", "SELECT"]}
    assert users["constraints"]["users_pkey"]["validated"] is True
    assert m["tables"]["public.blogs"]["indexes"]["idx_blogs_vector_embedding"]["valid"] is True
    assert m["publications"]["supabase_realtime"] == [
        "public.notifications",
        "public.offers",
        "public.quiz_results",
        "public.users",
    ]
    assert m["extensions"]["vector"] == "extensions"
    assert {"auth", "extensions", "public"} <= set(m["schemas"])
    assert m["functions"]["auth.uid()"] is None  # existence only
    assert "public.analytics_events_default" in m["tables"]
    assert not [t for t in m["tables"] if t.rsplit("_p", 1)[-1].isdigit()]


def test_manifest_does_not_change_as_months_pass(migrated_db: str) -> None:
    with db.connect(migrated_db, autocommit=True) as conn:
        before = manifest_of(conn)
        # What the monthly job does, far ahead: new _pYYYYMM partitions appear.
        conn.execute("select public.create_event_partitions(14)")
        conn.execute(
            "create table public.error_logs_p203001 partition of public.error_logs "
            "for values from ('2030-01-01') to ('2030-02-01')"
        )
        after = manifest_of(conn)
    assert diff(before, after) == []


def test_write_snapshot_uses_a_scratch_database_and_drops_it(pg: Any, tmp_path: Path) -> None:
    out = tmp_path / "expected.json"
    result = write_snapshot(pg.dsn("postgres"), out)
    assert result.path == out and result.tables == len(load_manifest()["tables"])
    assert json.loads(out.read_text()) == load_manifest()
    with db.connect(pg.dsn("postgres"), autocommit=True) as admin:
        left = db.run_query(
            admin, "select datname from pg_database where datname like 'empire_ops_snapshot_%'"
        )
    assert left == []
    # A second run changes nothing.
    assert write_snapshot(pg.dsn("postgres"), out).changes == []


def test_snapshot_command(pg: Any, tmp_path: Path, cli: Any) -> None:
    out = tmp_path / "m.json"
    result = cli("migrate", "snapshot", "--output", str(out), env={"DATABASE_URL": pg.dsn()})
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: {len(load_manifest()['tables'])} tables" in result.stdout
    assert out.read_text() == MANIFEST_PATH.read_text()


def test_snapshot_without_createdb_says_how_to_fix_it(pg: Any, cli: Any) -> None:
    dsn = pg.login_role("no_createdb")
    result = cli("migrate", "snapshot", "--output", "m.json", env={"DATABASE_URL": dsn})
    assert result.exit_code == 1
    assert "cannot create the scratch database" in result.stderr
    assert "hint: the snapshot needs CREATEDB" in result.stderr
    assert not Path("m.json").exists()


def test_a_missing_manifest_fails_with_a_hint(tmp_path: Path) -> None:
    from ops.migrate.manifest import ManifestError

    with pytest.raises(ManifestError) as err:
        load_manifest(tmp_path / "missing.json")
    assert err.value.hint and "migrate snapshot" in err.value.hint
