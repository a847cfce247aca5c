"""export and snapshot on awkward paths: an existing file, a folder, read-only, a full disk.

Each is an ordinary fault with its documented code (2, 2, 2, 1) and a hint,
never an internal error, and nothing partial is left behind. The read-only and
full disks are real tmpfs mounts (see tests/test_storage_faults.py), which stop
root too.
"""

from __future__ import annotations

import stat
from pathlib import Path

from dotenv import dotenv_values

from tests.helpers import assert_ordinary as _ordinary
from tests.helpers import tmpfs, write_env

PASS = "snapshot passphrase 0123456789"
BIG = "b" * 200_000  # larger than the 64 KiB disk below


def seed_env(folder: Path, **extra: str) -> None:
    lines = [f"API_TOKEN=tok-faults-0123456789\nEMPIRE_SNAPSHOT_PASSPHRASE='{PASS}'\n"]
    lines += [f"{k}={v}\n" for k, v in extra.items()]
    write_env(folder / ".env", "".join(lines))


def assert_ordinary(result, code: int, *words: str) -> None:
    _ordinary(result, code, *words, secret="tok-faults-0123456789")


def test_export_never_overwrites_without_force(tmp_path: Path, cli) -> None:
    seed_env(tmp_path)
    out = tmp_path / "out.env"
    out.write_text("KEEP=me\n")
    refused = cli("secrets", "export", "--out", "out.env")
    assert_ordinary(refused, 2, "already exists", "--force")
    assert out.read_text() == "KEEP=me\n"
    done = cli("secrets", "export", "--out", "out.env", "--force")
    assert done.exit_code == 0, done.output
    assert dotenv_values(out, interpolate=False)["API_TOKEN"] == "tok-faults-0123456789"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_export_to_a_folder_is_exit_2(tmp_path: Path, cli) -> None:
    seed_env(tmp_path)
    (tmp_path / "adir").mkdir()
    for flags in ([], ["--force"]):
        assert_ordinary(cli("secrets", "export", "--out", "adir", *flags), 2, "is a folder")
    assert list((tmp_path / "adir").iterdir()) == []


def test_export_into_a_read_only_folder_is_exit_2(tmp_path: Path, cli) -> None:
    seed_env(tmp_path)
    with tmpfs("ro,mode=0777") as mnt:
        result = cli("secrets", "export", "--out", str(mnt / "out.env"))
        assert_ordinary(result, 2, "read-only", str(mnt / "out.env"))
        assert list(mnt.iterdir()) == []


def test_export_on_a_full_disk_is_exit_1_and_leaves_nothing(tmp_path: Path, cli) -> None:
    seed_env(tmp_path, BIG_CERT=BIG)
    with tmpfs("size=64k,mode=0777") as mnt:
        for flags in ([], ["--force"]):
            result = cli("secrets", "export", "--out", str(mnt / "out.env"), *flags)
            assert_ordinary(result, 1, "disk is full", "free some space")
            assert list(mnt.iterdir()) == []


def test_snapshot_to_a_file_or_a_read_only_folder_is_exit_2(tmp_path: Path, cli) -> None:
    seed_env(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert_ordinary(cli("secrets", "snapshot", "--to", "afile"), 2, "not a folder", "afile")
    with tmpfs("ro,mode=0777") as mnt:
        result = cli("secrets", "snapshot", "--to", str(mnt / "snaps"))
        assert_ordinary(result, 2, "read-only")
        assert list(mnt.iterdir()) == []


def test_snapshot_on_a_full_disk_is_exit_1_and_keeps_the_old_ones(tmp_path: Path, cli) -> None:
    seed_env(tmp_path)
    with tmpfs("size=64k,mode=0777") as mnt:
        folder = mnt / "snaps"
        first = cli("secrets", "snapshot", "--to", str(folder))
        assert first.exit_code == 0, first.output
        before = sorted(p.name for p in folder.iterdir())
        assert len(before) == 2  # the snapshot and its manifest
        seed_env(tmp_path, BIG_CERT=BIG)
        result = cli("secrets", "snapshot", "--to", str(folder))
        assert_ordinary(result, 1, "disk is full")
        assert sorted(p.name for p in folder.iterdir()) == before  # nothing partial, no .tmp
