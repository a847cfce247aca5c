"""`drill run` against the real servers: a clean backup passes with its RTO and a report
beside it; a corrupted one is BACKUP_CORRUPT and DRILL_FAILED; none is DRILL_NOT_RUN."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from tests.backup.test_backup_run import _config, _manifests, _seed

DRILL = '[backup.drill]\ndsn_secret = "DRILL_DATABASE_URL"\n'


def _env(source: str, pg: Any) -> dict[str, str]:
    return {"DATABASE_URL": source, "DRILL_DATABASE_URL": pg.dsn()}


def _databases(pg: Any) -> set[str]:
    with pg.admin() as conn:
        return {r[0] for r in conn.execute("select datname from pg_database").fetchall()}


def test_a_clean_backup_passes_its_drill_with_an_rto_and_a_report(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _seed(migrated_db)
    probe = (
        '[[backup.drill.probes]]\nname = "offers"\n'
        'sql = "select count(*) from public.offers"\nexpect = "300"\n'
    )
    _config(tmp_path, DRILL + probe)
    env = _env(migrated_db, pg)
    assert cli("backup", "run", env=env).exit_code == 0
    before = _databases(pg)
    with psycopg.connect(migrated_db) as conn:
        source_before = conn.execute("select count(*) from public.offers").fetchone()
    result = cli("drill", "run", "--json", env=env)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [f["code"] for f in payload["findings"]] == ["DRILL_PASSED"], payload["findings"]
    data = payload["data"]
    stages = {"prepare", "fetch_and_restore", "history", "verify", "checks"}
    assert data["rto_seconds"] > 0 and stages <= set(data["stages"])
    assert data["checks"]["probes_failed"] == [] and data["checks"]["schema"] == []
    assert data["checks"]["sequences_behind"] == [] and data["checks"]["tables"] > 30
    assert _databases(pg) == before  # the scratch database is gone
    with psycopg.connect(migrated_db) as conn:  # the source is untouched
        assert conn.execute("select count(*) from public.offers").fetchone() == source_before
    [manifest] = _manifests(tmp_path / "backups")
    reports = list((tmp_path / "backups" / manifest["backup_id"]).glob("drill-*.json"))
    assert len(reports) == 1
    assert json.loads(reports[0].read_text())["findings"][0]["code"] == "DRILL_PASSED"


def test_a_failing_probe_and_a_slow_drill_are_reported(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    probe = '[[backup.drill.probes]]\nname = "offers"\nsql = "select 1"\nexpect = "2"\n'
    _config(tmp_path, DRILL + probe)
    env = _env(migrated_db, pg)
    assert cli("backup", "run", env=env).exit_code == 0
    failed = json.loads(cli("drill", "run", "--json", env=env).stdout)
    assert [f["code"] for f in failed["findings"]] == ["DRILL_FAILED"]
    assert failed["data"]["checks"]["probes_failed"] == ["offers: got '1', expected '2'"]
    _config(tmp_path, DRILL + '\nrto_target = "1ms"\n')
    slow = cli("drill", "run", "--json", env=env)
    assert slow.exit_code == 0 and [f["code"] for f in json.loads(slow.stdout)["findings"]] == [
        "DRILL_SLOW"
    ]


def test_a_corrupted_backup_fails_its_drill_and_no_backup_is_not_a_pass(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _config(tmp_path, DRILL)
    env = _env(migrated_db, pg)
    none = cli("drill", "run", "--json", env=env)
    assert none.exit_code == 2 or none.exit_code == 1
    assert [f["code"] for f in json.loads(none.stdout)["findings"]] == ["DRILL_NOT_RUN"]
    assert cli("backup", "run", env=env).exit_code == 0
    [manifest] = _manifests(tmp_path / "backups")
    stored = tmp_path / "backups" / manifest["backup_id"] / manifest["artifacts"][0]["name"]
    blob = bytearray(stored.read_bytes())
    blob[len(blob) // 3] ^= 0xFF
    stored.write_bytes(bytes(blob))
    before = _databases(pg)
    bad = cli("drill", "run", "--json", env=env)
    assert bad.exit_code == 1
    assert [f["code"] for f in json.loads(bad.stdout)["findings"]] == [
        "BACKUP_CORRUPT",
        "DRILL_FAILED",
    ]
    assert _databases(pg) == before


def test_the_drill_compares_the_restored_grants_with_the_backups_and_the_schemas(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    """The drill server's default privileges (the bootstrap's, as Supabase's:
    everything to the API roles) are taken back by restore_grants: the grants
    match both the backup's record and the committed manifest."""
    _config(tmp_path, DRILL)
    env = _env(migrated_db, pg)
    assert cli("backup", "run", env=env).exit_code == 0
    result = cli("drill", "run", "--json", env=env)
    payload = json.loads(result.stdout)
    assert payload["data"]["checks"]["grants_compared"] is True
    assert [f["code"] for f in payload["findings"]] == ["DRILL_PASSED"], result.output
    assert "grants" in payload["data"]["stages"]


def test_without_restore_grants_the_drill_leaves_the_grants_uncompared(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _config(tmp_path, "[backup]\nrestore_grants = false\n" + DRILL)
    env = _env(migrated_db, pg)
    assert cli("backup", "run", env=env).exit_code == 0
    payload = json.loads(cli("drill", "run", "--json", env=env).stdout)
    assert payload["data"]["checks"]["grants_compared"] is False
    assert "grants" not in payload["data"]["stages"]


def test_freshness_counts_only_proven_backups_and_recent_drills() -> None:
    from datetime import UTC, datetime, timedelta

    from ops.backup.catalog import freshness
    from ops.backup.manifest import BackupManifest

    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def manifest(verified: datetime | None) -> BackupManifest:
        return BackupManifest(
            "20261201T000000Z-aaaaaa", "complete", {}, "18.6", "custom", "zstd", 3, [],
            "2026-12-01T00:00:00+00:00", "", 0.0, [], [], {}, None, "x",
            verified_at=verified.isoformat() if verified else None,
        )  # fmt: skip

    day = 86400.0

    def check(verified: datetime | None, drills: list[datetime]) -> list[str]:
        found = freshness(
            "r", [manifest(verified)], [d.isoformat() for d in drills],
            stale_after=day, drill_stale_after=8 * day, now=now,
        )  # fmt: skip
        return [f"{f.code}: {f.message}" for f in found]

    assert check(now - timedelta(hours=2), [now - timedelta(days=1)]) == []
    never = check(None, [])
    assert [f.split(":")[0] for f in never] == ["BACKUP_STALE", "DRILL_STALE"]
    old = check(now - timedelta(days=3), [now - timedelta(days=9)])
    assert [f.split(":")[0] for f in old] == ["BACKUP_STALE", "DRILL_STALE"]
    assert "72 h ago" in old[0]


def test_a_passed_drill_marks_the_backup_verified_and_list_sees_it_fresh(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _config(tmp_path, DRILL)
    env = _env(migrated_db, pg)
    assert cli("backup", "run", env=env).exit_code == 0
    stale = json.loads(cli("backup", "list", "--json", env=env).stdout)["findings"]
    assert {f["code"] for f in stale} == {"BACKUP_STALE", "DRILL_STALE"}
    assert cli("drill", "run", env=env).exit_code == 0
    [manifest] = _manifests(tmp_path / "backups")
    assert manifest["verified_at"]
    fresh = json.loads(cli("backup", "list", "--json", env=env).stdout)["findings"]
    assert fresh == []


def test_a_postgresql_15_backup_is_drilled_on_postgresql_18(
    pg15_source: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    """Across majors, with 15's own column options (15.20's pg_attver) in the source."""
    source = pg15_source
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("create table public.notes (id bigserial primary key, body text)")
        conn.execute(
            "insert into public.notes (body) select 'n' || g from generate_series(1, 700) g"
        )
    _config(tmp_path, DRILL)
    env = _env(source, pg)
    assert cli("backup", "run", env=env).exit_code == 0
    before = _databases(pg)
    result = cli("drill", "run", "--json", env=env)
    payload = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert [f["code"] for f in payload["findings"]] == ["DRILL_PASSED"]
    assert payload["data"]["checks"]["tables"] == 1
    assert payload["data"]["checks"]["sequences_behind"] == []
    assert _databases(pg) == before


def test_two_drills_of_one_backup_in_one_second_keep_both_reports(tmp_path: Path) -> None:
    """Reports are named to the microsecond; older ones (to the second) are still read."""
    from ops.backup.drill import DrillReport, _record
    from ops.backup.repo import open_repository

    repo = open_repository("local", f"file:{tmp_path / 'backups'}", {})
    backup_id = "20261207T171451Z-abcdef"
    for started in ("2026-12-07T17:14:52.100000+00:00", "2026-12-07T17:14:52.900000+00:00"):
        _record(repo, backup_id, DrillReport(backup_id=backup_id, started_at=started,
                                             rto_seconds=0.5))  # fmt: skip
    repo.write_file(backup_id, "drill-2026-12-07T171450Z.json", b'{"ok": true}')  # the old name
    reports = repo.drill_reports()
    assert [r["at"] for r in reports] == [
        "2026-12-07T17:14:52.900000+00:00",
        "2026-12-07T17:14:52.100000+00:00",
        "2026-12-07T17:14:50+00:00",
    ]
    assert sorted(repo.drill_times()) == sorted(r["at"] for r in reports)
