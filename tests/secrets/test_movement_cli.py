"""The sync, diff, export, snapshot, restore-snapshot and scan commands, end to end in-process."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from dotenv import dotenv_values

from tests.helpers import git, make_repo, write_env

PASS = "snapshot passphrase 0123456789"
TOKEN = "dotenv-token-ab12cd34ef"


def seed_env(tmp_path: Path) -> None:
    write_env(
        tmp_path / ".env",
        f"API_TOKEN={TOKEN}\nMULTI=\"a\\nb $c 'd' ü\"\nEMPIRE_SNAPSHOT_PASSPHRASE='{PASS}'\n",
    )


def test_export_needs_out_or_stdout(tmp_path: Path, cli) -> None:
    seed_env(tmp_path)
    refused = cli("secrets", "export", "--format", "json")
    assert refused.exit_code == 2 and "--stdout" in refused.stderr
    assert TOKEN not in refused.output
    printed = cli("secrets", "export", "--format", "json", "--stdout")
    assert printed.exit_code == 0 and json.loads(printed.stdout)["API_TOKEN"] == TOKEN
    done = cli("secrets", "export", "--format", "dotenv", "--out", "out/x.env")
    assert done.exit_code == 0, done.output
    assert TOKEN not in done.output and "mode 0600" in done.stdout
    out = tmp_path / "out" / "x.env"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert dict(dotenv_values(out, interpolate=False)) == dict(
        dotenv_values(".env", interpolate=False)
    )


def test_sync_and_diff_commands(tmp_path: Path, cli) -> None:
    seed_env(tmp_path)
    (tmp_path / "b.env").write_text("API_TOKEN=other-value-123\nONLY_B=zzzzzz\n")
    diff = cli("secrets", "diff", "dotenv:.env", "dotenv:b.env", "--json")
    assert diff.exit_code == 1
    body = json.loads(diff.stdout)["data"]
    assert [r["name"] for r in body["differ"]] == ["API_TOKEN"]
    assert [r["name"] for r in body["only_b"]] == ["ONLY_B"]
    dry = cli("secrets", "sync", "--from", "dotenv:.env", "--to", "dotenv:b.env", "--dry-run")
    assert dry.exit_code == 0 and "nothing applied" in dry.stdout and "ONLY_B" in dry.stdout
    sync = cli(
        "secrets", "sync", "--from", "dotenv:.env", "--to", "dotenv:b.env", "--prune", "--json"
    )
    assert sync.exit_code == 0, sync.output
    plan = json.loads(sync.stdout)["data"]
    assert plan["applied"] and [r["name"] for r in plan["plan"]["delete"]] == ["ONLY_B"]
    same = cli("secrets", "diff", "dotenv:.env", "dotenv:b.env")
    assert same.exit_code == 0, same.output
    for result in (diff, dry, sync, same):
        assert TOKEN not in result.output and "other-value-123" not in result.output
    read_only = cli("secrets", "sync", "--from", "dotenv:.env", "--to", "env:")
    assert read_only.exit_code == 2 and "read-only" in read_only.stderr


def test_snapshot_and_restore_commands(tmp_path: Path, cli) -> None:
    seed_env(tmp_path)
    snap = cli("secrets", "snapshot", "--json")
    assert snap.exit_code == 0, snap.output
    info = json.loads(snap.stdout)["data"]
    path = Path(info["path"])
    assert path.parent == tmp_path / ".empire" / "snapshots" and info["count"] == 2
    assert TOKEN not in snap.output and TOKEN.encode() not in path.read_bytes()
    restored = cli("secrets", "restore-snapshot", str(path), "--to", "dotenv:restored.env")
    assert restored.exit_code == 0, restored.output
    want = {
        k: v
        for k, v in dotenv_values(".env", interpolate=False).items()
        if k != "EMPIRE_SNAPSHOT_PASSPHRASE"
    }
    assert dotenv_values("restored.env", interpolate=False) == want
    wrong = cli(
        "secrets", "restore-snapshot", str(path), "--to", "dotenv:other.env",
        env={"EMPIRE_SNAPSHOT_PASSPHRASE": "the wrong passphrase"},
    )  # fmt: skip
    assert wrong.exit_code == 3 and "wrong passphrase" in wrong.stderr
    assert not (tmp_path / "other.env").exists()


def test_snapshot_without_passphrase_exits_3(tmp_path: Path, cli) -> None:
    (tmp_path / ".env").write_text(f"API_TOKEN={TOKEN}\n")
    result = cli("secrets", "snapshot")
    assert result.exit_code == 3 and "EMPIRE_SNAPSHOT_PASSPHRASE" in result.stderr


def test_scan_command_finds_a_committed_secret(tmp_path: Path, cli) -> None:
    seed_env(tmp_path)
    make_repo(tmp_path)
    clean = cli("secrets", "scan", "--history")
    assert clean.exit_code == 0, clean.output
    (tmp_path / "settings.py").write_text(f"TOKEN = '{TOKEN}'\n")
    git(tmp_path, "add", "settings.py")
    git(tmp_path, "commit", "-q", "-m", "leak")
    hit = cli("secrets", "scan", "--json")
    assert hit.exit_code == 1
    body = json.loads(hit.stdout)["data"]
    assert body["hits"] == [{"name": "API_TOKEN", "path": "settings.py", "line": 1, "commit": None}]
    assert TOKEN not in hit.output
    text = cli("secrets", "scan")
    assert "SECRETS_LEAK" in text.stdout and "settings.py:1" in text.stdout
