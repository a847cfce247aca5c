"""`backup run`, `list` and `info` against the real embedded PostgreSQL, with real pg_dump,
zstd, age and pg_restore: the stream, the manifest written last, the faults."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops import db
from ops.embedded import wheel_install_dir
from ops.migrate.files import SHIPPED_DIR, load_migrations

BIN = wheel_install_dir() / "bin"
CANARY_ROW = "canary-row-7f3a9c2e1b"
PG15_DUMP = Path("/usr/lib/postgresql/15/bin/pg_dump")


def _seed(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "insert into public.offers (type, slug, title, url) "
            "select 'affiliate', 'offer-' || g, %s || g, 'https://example.org/' || g "
            "from generate_series(1, 300) g",
            (CANARY_ROW,),
        )


def _config(tmp_path: Path, extra: str = "") -> None:
    (tmp_path / "empire-ops.toml").write_text(
        f'[backup.repos.local]\nurl = "file:backups"\n{extra}'
    )


def _need(tool: str) -> None:
    """Debian's ``age``/``zstd``: skipped with the reason on a laptop without them; CI has them."""
    import shutil

    from tests.conftest import require_service

    require_service(
        shutil.which(tool) is not None, f"`{tool}` is not installed (apt-get install {tool})"
    )


def _manifests(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/manifest.json"))]


def test_a_backup_streams_into_the_repository_with_exact_counts_and_restores_by_hand(
    migrated_db: str, pg: Any, tmp_path: Path, cli: Any
) -> None:
    _need("zstd")
    _seed(migrated_db)
    _config(tmp_path)
    result = cli("backup", "run", "--json", env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    [manifest] = _manifests(tmp_path / "backups")
    assert manifest["backup_id"] == data["backup_id"] and manifest["status"] == "complete"
    with psycopg.connect(migrated_db) as conn:
        offers = conn.execute("select count(*) from public.offers").fetchone()
    assert manifest["tables"]["public.offers"] == offers[0] == 300  # type: ignore[index]
    assert "auth" in manifest["excluded_schemas"] and "public" in manifest["schemas"]
    assert {"name": "vector", "schema": "extensions"}.items() <= next(
        e for e in manifest["extensions"] if e["name"] == "vector"
    ).items()
    [artifact] = manifest["artifacts"]
    stored = tmp_path / "backups" / manifest["backup_id"] / artifact["name"]
    blob = stored.read_bytes()
    import hashlib

    assert (len(blob), hashlib.sha256(blob).hexdigest()) == (artifact["size"], artifact["sha256"])
    assert artifact["name"] == "dump.pgc.zst" and blob[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame
    assert not list((tmp_path / "backups").glob("*/.tmp-*"))
    # By hand, with no empire-ops: zstd and bare pg_restore into a new database.
    with db.scratch_database(
        pg.dsn(), prefix="handrestore", purpose="a restore by hand"
    ) as scratch:
        # What a Supabase project already has and the dump leaves out (auth.uid(),
        # the API roles, the extensions schema): the Empire's bootstrap provides it.
        with psycopg.connect(scratch, autocommit=True) as conn:
            for mig in load_migrations([SHIPPED_DIR])[:2]:  # bootstrap, vector
                conn.execute(mig.up_sql)  # type: ignore[arg-type]
        pipeline = (
            f'zstd -dc {stored} | {BIN / "pg_restore"} --no-owner --no-privileges -d "$TARGET"'
        )
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", pipeline], env={**os.environ, "TARGET": scratch},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        # The one object a Supabase-like target already has: an expected, named error.
        errors = [ln.strip() for ln in done.stderr.splitlines() if "ERROR:" in ln]
        assert done.returncode == 0 or errors == [
            "pg_restore: error: could not execute query: ERROR:  publication "
            '"supabase_realtime" already exists'
        ], done.stderr
        with psycopg.connect(scratch) as conn:
            restored = conn.execute("select count(*) from public.offers").fetchone()
        assert restored == (300,)
    listed = json.loads(cli("backup", "list", "--json").stdout)["data"]["repositories"]
    assert [b["backup_id"] for b in listed["local"]["backups"]] == [manifest["backup_id"]]
    info = json.loads(cli("backup", "info", "latest", "--json").stdout)["data"]
    assert info["backup_id"] == manifest["backup_id"] and info["repository"] == "local"


def test_an_encrypted_backup_holds_no_plaintext_and_opens_only_with_its_identity(
    migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    from pyrage import x25519

    _need("age")
    _seed(migrated_db)
    identity, other = x25519.Identity.generate(), x25519.Identity.generate()
    _config(tmp_path, f'[backup]\nrecipients = ["{identity.to_public()}"]\n'
            'compression = "none"\n')  # fmt: skip
    result = cli("backup", "run", env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 0, result.output
    [manifest] = _manifests(tmp_path / "backups")
    stored = next((tmp_path / "backups" / manifest["backup_id"]).glob("dump.pgc.age"))
    blob = stored.read_bytes()
    assert CANARY_ROW.encode() not in blob and blob.startswith(b"age-encryption.org/v1")
    assert manifest["recipients"][0].startswith("age:") and str(identity.to_public()) not in (
        json.dumps(manifest)
    )
    key = tmp_path / "key.txt"
    key.write_text(str(identity) + "\n")
    opened = subprocess.run(["age", "-d", "-i", str(key), str(stored)], capture_output=True)
    assert opened.returncode == 0 and opened.stdout.startswith(b"PGDMP")
    key.write_text(str(other) + "\n")
    refused = subprocess.run(["age", "-d", "-i", str(key), str(stored)], capture_output=True)
    assert refused.returncode != 0 and b"no identity matched" in refused.stderr


def test_a_second_backup_of_the_database_exits_5_and_writes_nothing(
    migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    _config(tmp_path, '[backup]\nlock_timeout = "1s"\n')
    with db.connect(migrated_db, autocommit=True) as conn, db.advisory_lock(conn, "backup", 1):
        result = cli("backup", "run", env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 5, result.output
    assert not (tmp_path / "backups").exists() or not list((tmp_path / "backups").iterdir())


def test_a_broken_repository_fails_alone_and_the_other_keeps_its_copy(
    migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    (tmp_path / "blocked").write_text("a file where the repository's folder should be")
    _config(tmp_path, '[backup.repos.broken]\nurl = "file:blocked/backups"\n')
    result = cli("backup", "run", "--json", env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    assert payload["data"]["repositories"] == {"local": "complete", "broken": "failed"}
    codes = {(f["code"], f["subject"].split(":")[0]) for f in payload["findings"]}
    assert codes == {("BACKUP_TAKEN", "local"), ("BACKUP_FAILED", "broken")}
    [manifest] = _manifests(tmp_path / "backups")
    assert manifest["status"] == "complete"


@pytest.mark.skipif(not PG15_DUMP.exists(), reason="needs the system PostgreSQL 15 client")
def test_a_pg_dump_older_than_the_server_is_refused(
    migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    _config(tmp_path, f'[backup]\npg_dump = "{PG15_DUMP}"\n')
    result = cli("backup", "run", env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 2
    assert "older than the server" in result.stderr and "postgresql-client-18" in result.stderr
    assert not (tmp_path / "backups").exists() or not _manifests(tmp_path / "backups")


@pytest.mark.parametrize("bad", ["../etc", "..", "20261202T000000Z-abc/../x", "", "x\n"])
def test_a_backup_id_with_path_tricks_is_refused(bad: str, tmp_path: Path, cli: Any) -> None:
    _config(tmp_path)
    result = cli("backup", "info", bad)
    assert result.exit_code == 2 and "is not a backup id" in result.stderr


def test_the_dsn_password_appears_nowhere(
    pg: Any, migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    canary = "pw#canary/9f8e7d@x"
    dbname = db.parse_dsn(migrated_db).dbname
    dsn = pg.login_role("backup_canary", "superuser", dbname=dbname, password=canary)
    _config(tmp_path)
    result = cli("--debug", "backup", "run", "--json", env={"DATABASE_URL": dsn})
    assert result.exit_code == 0, result.output
    written = b"".join(p.read_bytes() for p in (tmp_path / "backups").rglob("*") if p.is_file())
    for form in (canary, canary.replace("#", "%23").replace("/", "%2F").replace("@", "%40")):
        assert form not in result.stdout and form not in result.stderr
        assert form.encode() not in written
    conninfo, env = db.tool_conninfo(dsn)
    assert canary not in conninfo and env == {"PGPASSWORD": canary}


def _take(cli: Any, dsn: str) -> dict[str, Any]:
    result = cli("backup", "run", "--json", env={"DATABASE_URL": dsn})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["data"]


def test_verify_proves_a_backup_and_records_it_and_a_flipped_byte_is_corrupt(
    migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    _seed(migrated_db)
    _config(tmp_path)
    backup_id = _take(cli, migrated_db)["backup_id"]
    ok = cli("backup", "verify", "latest", "--json")
    assert ok.exit_code == 0, ok.output
    assert [f["code"] for f in json.loads(ok.stdout)["findings"]] == ["BACKUP_VERIFIED"]
    [manifest] = _manifests(tmp_path / "backups")
    assert manifest["verified_at"]
    stored = tmp_path / "backups" / backup_id / manifest["artifacts"][0]["name"]
    blob = bytearray(stored.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    stored.write_bytes(bytes(blob))
    bad = cli("backup", "verify", backup_id, "--json")
    findings = json.loads(bad.stdout)["findings"]
    assert bad.exit_code == 1 and [f["code"] for f in findings] == ["BACKUP_CORRUPT"]
    assert "differs from its manifest" in findings[0]["message"]


def test_verify_of_an_encrypted_backup_needs_the_right_identity(
    migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    from pyrage import x25519

    identity, other = x25519.Identity.generate(), x25519.Identity.generate()
    _config(tmp_path, f'[backup]\nrecipients = ["{identity.to_public()}"]\n')
    _take(cli, migrated_db)
    missing = cli("backup", "verify", "latest")
    assert missing.exit_code == 3 and "BACKUP_AGE_IDENTITY" in missing.stdout
    wrong = cli("backup", "verify", "latest", "--json", env={"BACKUP_AGE_IDENTITY": str(other)})
    assert wrong.exit_code == 3 and "not one of this backup's recipients" in wrong.stdout
    assert str(other) not in wrong.stdout + wrong.stderr
    right = cli("backup", "verify", "latest", "--json", env={"BACKUP_AGE_IDENTITY": str(identity)})
    assert right.exit_code == 0, right.output
    assert str(identity) not in right.stdout + right.stderr


def test_a_secrets_snapshot_is_stored_beside_the_backup_encrypted(
    migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    from ops.secrets.snapshot import read_snapshot

    canary = "canary-secret-value-5e4d3c2b1a"
    passphrase = "a long snapshot passphrase 42"
    (tmp_path / ".env").write_text(
        f"API_TOKEN={canary}\nEMPIRE_SNAPSHOT_PASSPHRASE='{passphrase}'\n"
    )
    (tmp_path / ".env").chmod(0o600)
    _config(tmp_path, "[backup]\nsecrets_snapshot = true\n")
    result = cli("backup", "run", "--json", env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 0, result.output
    [manifest] = _manifests(tmp_path / "backups")
    [secrets] = [a for a in manifest["artifacts"] if a["kind"] == "secrets"]
    stored = tmp_path / "backups" / manifest["backup_id"] / secrets["name"]
    assert canary.encode() not in stored.read_bytes()
    assert read_snapshot(stored, passphrase)["API_TOKEN"] == canary
    for text in (result.stdout, result.stderr, json.dumps(manifest)):
        assert canary not in text and passphrase not in text


def test_without_its_passphrase_the_backup_completes_and_says_the_snapshot_is_missing(
    migrated_db: str, tmp_path: Path, cli: Any
) -> None:
    _config(tmp_path, "[backup]\nsecrets_snapshot = true\n")
    result = cli("backup", "run", "--json", env={"DATABASE_URL": migrated_db})
    codes = [f["code"] for f in json.loads(result.stdout)["findings"]]
    assert result.exit_code == 0 and codes == ["BACKUP_SECRETS_SNAPSHOT_FAILED", "BACKUP_TAKEN"]
