"""Encrypted snapshots: written 0600 with a names-only manifest, restored through the plan."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dotenv import dotenv_values

from ops.config import load_config
from ops.errors import ConfigError
from ops.secrets.errors import SecretMissing, SecretsCryptoError
from ops.secrets.model import fingerprint
from ops.secrets.snapshot import (
    SnapshotSettings,
    read_snapshot,
    restore_snapshot,
    write_snapshot,
)

PASS = "correct horse battery staple"
VALUES = {
    "SUPABASE_URL": "https://abcdefghijklmnopqrst.supabase.co",
    "WEIRD": 'multi\nline "quoted" $dollar ünïcode',
    "EMPIRE_SNAPSHOT_PASSPHRASE": PASS,
}


def settings(tmp_path: Path, keep: int = 10) -> SnapshotSettings:
    return SnapshotSettings("EMPIRE_SNAPSHOT_PASSPHRASE", tmp_path / "snaps", keep)


def test_snapshot_is_encrypted_0600_with_a_names_only_manifest(tmp_path: Path) -> None:
    when = datetime(2026, 11, 28, 7, 5, 9, tzinfo=UTC)
    info = write_snapshot(settings(tmp_path), VALUES, env="dev", now=when)
    assert info.path.name == "secrets-20261128T070509Z.snap"
    assert info.manifest.name == "secrets-20261128T070509Z.manifest.json"
    for path in (info.path, info.manifest):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    blob = info.path.read_bytes()
    manifest_text = info.manifest.read_text()
    for value in VALUES.values():
        for line in value.splitlines():
            assert line.encode() not in blob and line not in manifest_text
    manifest = json.loads(manifest_text)
    assert manifest["count"] == 2 and manifest["created_at"] == "2026-11-28T07:05:09Z"
    assert manifest["secrets"] == [
        {"name": "SUPABASE_URL", "fingerprint": fingerprint(VALUES["SUPABASE_URL"])},
        {"name": "WEIRD", "fingerprint": fingerprint(VALUES["WEIRD"])},
    ]
    # The passphrase is not stored inside what it encrypts.
    assert read_snapshot(info.path, PASS) == {k: v for k, v in VALUES.items() if "PASS" not in k}


def test_keep_removes_the_oldest_snapshots(tmp_path: Path) -> None:
    infos = [
        write_snapshot(
            settings(tmp_path, keep=2), VALUES, env="dev", now=datetime(2026, 1, d, tzinfo=UTC)
        )
        for d in (1, 2, 3)
    ]
    left = sorted(p.name for p in (tmp_path / "snaps").iterdir())
    assert left == sorted(
        [infos[1].path.name, infos[1].manifest.name, infos[2].path.name, infos[2].manifest.name]
    )
    assert infos[2].removed == (infos[0].path,)


def test_missing_passphrase_is_a_secrets_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMPIRE_SNAPSHOT_PASSPHRASE", raising=False)
    with pytest.raises(SecretMissing) as err:
        write_snapshot(settings(tmp_path), {"A": "x" * 10}, env="dev")
    assert err.value.exit_code == 3 and "EMPIRE_SNAPSHOT_PASSPHRASE" in err.value.message
    assert not (tmp_path / "snaps").exists() or not list((tmp_path / "snaps").iterdir())


def test_wrong_passphrase_and_corruption_are_clear_errors(tmp_path: Path) -> None:
    info = write_snapshot(settings(tmp_path), VALUES, env="dev")
    with pytest.raises(SecretsCryptoError, match="wrong passphrase"):
        read_snapshot(info.path, "not the passphrase")
    blob = bytearray(info.path.read_bytes())
    blob[-3] ^= 0xFF
    info.path.write_bytes(bytes(blob))
    with pytest.raises(SecretsCryptoError, match="manifest"):
        read_snapshot(info.path, PASS)
    info.manifest.unlink()
    with pytest.raises(SecretsCryptoError) as err:
        read_snapshot(info.path, PASS)
    assert err.value.exit_code == 3
    with pytest.raises(SecretMissing):
        read_snapshot(tmp_path / "nope.snap", PASS)


def test_restore_into_a_dotenv_file_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empire-ops.toml").write_text("")
    config = load_config()
    info = write_snapshot(settings(tmp_path), VALUES, env="dev")
    monkeypatch.setenv("EMPIRE_SNAPSHOT_PASSPHRASE", PASS)
    target = tmp_path / "restored.env"
    dry = restore_snapshot(config, info.path, f"dotenv:{target}", dry_run=True)
    assert dry.plan.create == ("SUPABASE_URL", "WEIRD") and not target.exists()
    result = restore_snapshot(config, info.path, f"dotenv:{target}")
    assert result.applied
    assert dotenv_values(target, interpolate=False) == {
        k: v for k, v in VALUES.items() if "PASS" not in k
    }
    monkeypatch.setenv("EMPIRE_SNAPSHOT_PASSPHRASE", "wrong passphrase!")
    other = tmp_path / "other.env"
    with pytest.raises(SecretsCryptoError):
        restore_snapshot(config, info.path, f"dotenv:{other}")
    assert not other.exists()
    assert os.environ["EMPIRE_SNAPSHOT_PASSPHRASE"] == "wrong passphrase!"


def test_settings_come_from_the_snapshot_section(tmp_path: Path) -> None:
    (tmp_path / "empire-ops.toml").write_text(
        '[project]\nstate_dir = "st"\n\n[secrets.snapshot]\n'
        'passphrase_secret = "MY_PASS"\nlocation = "backups/secrets"\nkeep = 3\n'
    )
    got = SnapshotSettings.from_config(load_config())
    assert got == SnapshotSettings("MY_PASS", tmp_path / "backups" / "secrets", 3)
    (tmp_path / "empire-ops.toml").write_text('[project]\nstate_dir = "st"\n')
    default = SnapshotSettings.from_config(load_config())
    assert default == SnapshotSettings(
        "EMPIRE_SNAPSHOT_PASSPHRASE", tmp_path / "st" / "snapshots", 10
    )
    (tmp_path / "empire-ops.toml").write_text('[secrets.snapshot]\npassphrase_secret = "lower"\n')
    with pytest.raises(ConfigError, match=r"secrets\.snapshot\.passphrase_secret"):
        load_config()
