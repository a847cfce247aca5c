"""Atomic writes: all or nothing, with the mode asked for."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ops.errors import DiskFull
from ops.fsutil import atomic_write_bytes, atomic_write_text


def test_writes_with_mode_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "private" / "key.bin"
    atomic_write_bytes(target, b"abc", mode=0o600)
    assert target.read_bytes() == b"abc"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert os.listdir(target.parent) == ["key.bin"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    target = tmp_path / "state.json"
    atomic_write_text(target, "old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # The disk fills up while the new content is being flushed.
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFull) as info:
        atomic_write_text(target, "new")
    assert info.value.exit_code == 1 and isinstance(info.value, OSError)
    assert str(target) in info.value.message and "disk is full" in info.value.message
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]
