"""`plan_sync` as a pure policy, and sync/diff between real dotenv files."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from ops.config import load_config
from ops.errors import UsageError
from ops.secrets.model import fingerprint
from ops.secrets.sync import diff_sources, diff_values, plan_sync, sync_sources
from tests.helpers import write_env

SRC = {"A": "alpha-value", "B": "bravo-new", "C": "charlie-same"}
DST = {"B": "bravo-old", "C": "charlie-same", "D": "delta-extra"}


def test_plan_without_prune_keeps_extra_names() -> None:
    plan = plan_sync(SRC, DST)
    assert (plan.create, plan.update, plan.unchanged, plan.delete, plan.kept) == (
        ("A",),
        ("B",),
        ("C",),
        (),
        ("D",),
    )
    assert plan.to_write() == {"A": "alpha-value", "B": "bravo-new"}
    assert plan.has_changes


def test_plan_with_prune_deletes_extra_names() -> None:
    plan = plan_sync(SRC, DST, prune=True)
    assert plan.delete == ("D",) and plan.kept == ()


def test_plan_shows_names_and_fingerprints_never_values() -> None:
    plan = plan_sync(SRC, DST, prune=True)
    shown = plan.render() + repr(plan) + str(plan.to_dict())
    for value in {*SRC.values(), *DST.values()}:
        assert value not in shown
    assert fingerprint("bravo-new") in shown and fingerprint("bravo-old") in shown
    assert plan.to_dict()["update"] == [
        {"name": "B", "from": fingerprint("bravo-new"), "to": fingerprint("bravo-old")}
    ]
    assert "1 to create, 1 to update, 1 to delete, 1 unchanged" in plan.render()


def test_identical_sets_need_no_change() -> None:
    plan = plan_sync(SRC, dict(SRC), prune=True)
    assert not plan.has_changes and plan.unchanged == ("A", "B", "C")


def test_diff_values_reports_both_sides() -> None:
    diff = diff_values(SRC, DST, "a", "b")
    assert (diff.only_a, diff.only_b, diff.differ, diff.same) == (("A",), ("D",), ("B",), ("C",))
    assert diff.differs and "bravo" not in diff.render()
    assert not diff_values(SRC, dict(SRC), "a", "b").differs


def test_sync_between_dotenv_files_applies_and_prunes(tmp_path: Path) -> None:
    config = load_config()
    write_env(tmp_path / "src.env", SRC)
    dst = write_env(tmp_path / "dst.env", DST)
    dry = sync_sources(config, f"dotenv:{tmp_path}/src.env", f"dotenv:{dst}", dry_run=True)
    assert not dry.applied and dry.plan.create == ("A",)
    assert dotenv_values(dst, interpolate=False) == DST
    result = sync_sources(config, f"dotenv:{tmp_path}/src.env", f"dotenv:{dst}")
    assert result.applied
    assert dotenv_values(dst, interpolate=False) == {**DST, **SRC}
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600
    pruned = sync_sources(config, f"dotenv:{tmp_path}/src.env", f"dotenv:{dst}", prune=True)
    assert pruned.plan.delete == ("D",)
    assert dotenv_values(dst, interpolate=False) == SRC
    again = sync_sources(config, f"dotenv:{tmp_path}/src.env", f"dotenv:{dst}", prune=True)
    assert not again.applied and not again.plan.has_changes


def test_sync_creates_a_missing_destination_file(tmp_path: Path) -> None:
    write_env(tmp_path / "src.env", SRC)
    new = tmp_path / "new.env"
    sync_sources(load_config(), f"dotenv:{tmp_path}/src.env", f"dotenv:{new}")
    assert dotenv_values(new, interpolate=False) == SRC
    assert stat.S_IMODE(new.stat().st_mode) == 0o600


def test_read_only_destination_is_refused(tmp_path: Path) -> None:
    write_env(tmp_path / "src.env", SRC)
    with pytest.raises(UsageError, match="read-only"):
        sync_sources(load_config(), f"dotenv:{tmp_path}/src.env", "env:")


def test_diff_sources_between_dotenv_files(tmp_path: Path) -> None:
    a = write_env(tmp_path / "a.env", SRC)
    b = write_env(tmp_path / "b.env", DST)
    diff = diff_sources(load_config(), f"dotenv:{a}", f"dotenv:{b}")
    assert (diff.only_a, diff.only_b, diff.differ) == (("A",), ("D",), ("B",))
