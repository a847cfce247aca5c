"""Encrypted snapshots: written 0600 with a names-only manifest, restored through the plan."""

from __future__ import annotations

import json
import os
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dotenv import dotenv_values

from ops.config import load_config
from ops.errors import ConfigError
from ops.secrets.errors import SecretMissing, SecretsCryptoError
from ops.secrets.model import fingerprint
from ops.secrets.snapshot import (
    SnapshotEntry,
    SnapshotInfo,
    SnapshotSettings,
    plan_rotation,
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


# -- never lose: no empty snapshot, rotation keeps the best, exclusive names -----------------
def day(d: int) -> datetime:
    return datetime(2026, 1, d, tzinfo=UTC)


def test_an_empty_snapshot_is_refused_and_rotates_nothing_out(tmp_path: Path) -> None:
    s = settings(tmp_path, keep=1)
    good = write_snapshot(s, VALUES, env="dev", now=day(1))
    with pytest.raises(SecretMissing, match="refusing to write an empty snapshot") as err:
        write_snapshot(s, {"EMPIRE_SNAPSHOT_PASSPHRASE": PASS}, env="dev", now=day(2))
    assert err.value.exit_code == 3 and "empire-ops.toml" in (err.value.hint or "")
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir()) == sorted(
        [good.path.name, good.manifest.name]
    )


def test_snapshot_from_another_folder_is_refused_through_the_cli(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "empire-ops.toml").write_text("[secrets.snapshot]\nkeep = 1\n")
    (project / ".env").write_text(
        f"API_TOKEN=tok-abcdef-123456\nEMPIRE_SNAPSHOT_PASSPHRASE='{PASS}'\n"
    )
    (project / ".env").chmod(0o600)
    snaps = project / ".empire" / "snapshots"
    monkeypatch.chdir(project)
    assert cli("secrets", "snapshot").exit_code == 0
    before = sorted(snaps.iterdir())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = cli(
        "secrets", "snapshot", "--to", str(snaps), env={"EMPIRE_SNAPSHOT_PASSPHRASE": PASS}
    )
    assert result.exit_code == 3, result.output
    assert "refusing to write an empty snapshot" in result.stderr
    assert sorted(snaps.iterdir()) == before


def entry(name: str, count: int, good: bool = True) -> SnapshotEntry:
    return SnapshotEntry(Path(name), good, count)


def test_rotation_policy_on_synthetic_lists() -> None:
    full = [entry(f"f{i}", 20) for i in range(3)]
    # The usual case: same size, oldest removed beyond keep.
    assert plan_rotation(full, 2) == ([full[0]], [])
    assert plan_rotation(full, 0) == ([], []) and plan_rotation(full, 3) == ([], [])
    # Three small snapshots after two full ones: the newest full one is held.
    small = [entry(f"s{i}", 2) for i in range(3)]
    remove, held = plan_rotation([*full[:2], *small], 2)
    assert held == [full[1]] and remove == [full[0], small[0]]
    # Failed ones (no manifest, sha mismatch) never push out a good one.
    failed = [entry(f"x{i}", 0, good=False) for i in range(2)]
    assert plan_rotation([full[0], *failed], 2) == ([], [full[0]])
    # Decreasing sizes: each is held only while no newer kept one is at least as full.
    steps = [entry("a", 30), entry("b", 20), entry("c", 25), entry("d", 10)]
    assert plan_rotation(steps, 1) == ([steps[1]], [steps[0], steps[2]])
    with pytest.raises(ConfigError, match="negative"):
        plan_rotation(full, -1)


def test_keep_holds_the_newest_full_snapshot_when_newer_ones_are_smaller(tmp_path: Path) -> None:
    s = settings(tmp_path, keep=2)
    full = [write_snapshot(s, VALUES, env="dev", now=day(d)) for d in (1, 2)]
    small_values = {"ONLY": "just-one-value", "EMPIRE_SNAPSHOT_PASSPHRASE": PASS}
    small = [write_snapshot(s, small_values, env="dev", now=day(d)) for d in (3, 4, 5)]
    left = sorted(p.name for p in (tmp_path / "snaps").glob("*.snap"))
    assert left == sorted(p.path.name for p in (full[1], small[1], small[2]))
    assert small[2].held == (full[1].path,) and full[0].path in small[0].removed
    assert read_snapshot(full[1].path, PASS)["WEIRD"] == VALUES["WEIRD"]
    # A failed snapshot (its manifest lost) does not count as a good one.
    small[2].manifest.unlink()
    again = write_snapshot(s, small_values, env="dev", now=day(6))
    assert full[1].path in again.held and full[1].path.exists()


def test_negative_keep_is_refused_in_code(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"secrets\.snapshot\.keep: -1 is negative"):
        settings(tmp_path, keep=-1)


def test_two_snapshots_in_the_same_second_get_two_files(tmp_path: Path) -> None:
    s = settings(tmp_path, keep=0)
    when = day(7)
    infos: list[SnapshotInfo] = []
    barrier = threading.Barrier(4)

    def snap() -> None:
        barrier.wait()
        infos.append(write_snapshot(s, VALUES, env="dev", now=when))

    threads = [threading.Thread(target=snap) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = sorted(i.path.name for i in infos)
    assert len(set(names)) == 4
    assert "secrets-20260107T000000Z.snap" in names
    for info in infos:
        assert read_snapshot(info.path, PASS)["SUPABASE_URL"] == VALUES["SUPABASE_URL"]
        assert json.loads(info.manifest.read_text())["file"] == info.path.name
    assert not [p for p in (tmp_path / "snaps").iterdir() if p.name.startswith(".")]
