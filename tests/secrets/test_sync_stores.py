"""sync and diff through real stores: .env -> Vault (double, real hvac) -> AWS (moto) -> .env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dotenv import dotenv_values

from ops.secrets.export import render_dotenv
from ops.secrets.model import fingerprint
from tests.openbao import OpenBao
from tests.secrets.conftest import AWKWARD, ROOT_TOKEN, Moto, vault_config

VALUES = {**AWKWARD, "API_TOKEN": "tok-0123456789abcdef", "SHORT": "abc"}


@pytest.fixture
def stores(
    tmp_path: Path, vault: OpenBao, aws: Moto, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    (tmp_path / "src.env").write_text(render_dotenv(VALUES))
    (tmp_path / "src.env").chmod(0o600)
    return {
        "src": "dotenv:src.env",
        "vault": "vault:secret/empire/sync-test",
        "aws": f"awssm:empire/sync-test?region=us-east-1&endpoint_url={aws.endpoint}",
        "back": "dotenv:back.env",
    }


def test_env_to_vault_to_aws_and_back_loses_nothing(
    stores: dict[str, str], cli, vault: OpenBao
) -> None:
    assert dotenv_values("src.env", interpolate=False) == VALUES  # the fixture quoted correctly
    hops = [("src", "vault"), ("vault", "aws"), ("aws", "back")]
    for src, dst in hops:
        result = cli("secrets", "sync", "--from", stores[src], "--to", stores[dst], "--json")
        assert result.exit_code == 0, result.output
        plan = json.loads(result.stdout)["data"]
        assert plan["applied"] and len(plan["plan"]["create"]) == len(VALUES)
        for value in VALUES.values():
            if len(value) >= 6:
                assert value not in result.output
    assert vault.get("secret", "empire/sync-test") == VALUES
    back = dict(dotenv_values("back.env", interpolate=False))
    assert {k: fingerprint(v or "") for k, v in back.items()} == {
        k: fingerprint(v) for k, v in VALUES.items()
    }
    for a, b in [("src", "vault"), ("vault", "aws"), ("aws", "back"), ("src", "back")]:
        same = cli("secrets", "diff", stores[a], stores[b])
        assert same.exit_code == 0, same.output
    again = cli("secrets", "sync", "--from", stores["src"], "--to", stores["aws"], "--json")
    assert json.loads(again.stdout)["data"]["applied"] is False


def test_update_and_prune_in_vault_and_aws(stores: dict[str, str], cli, vault: OpenBao) -> None:
    for dst in ("vault", "aws"):
        assert cli("secrets", "sync", "--from", stores["src"], "--to", stores[dst]).exit_code == 0
    Path("small.env").write_text("API_TOKEN='tok-CHANGED-9876543210'\n")
    for dst in ("vault", "aws"):
        diff = cli("secrets", "diff", "dotenv:small.env", stores[dst], "--json")
        assert diff.exit_code == 1
        body = json.loads(diff.stdout)["data"]
        assert [r["name"] for r in body["differ"]] == ["API_TOKEN"]
        assert len(body["only_b"]) == len(VALUES) - 1
        kept = cli("secrets", "sync", "--from", "dotenv:small.env", "--to", stores[dst], "--json")
        plan = json.loads(kept.stdout)["data"]["plan"]
        assert [r["name"] for r in plan["update"]] == ["API_TOKEN"] and plan["delete"] == []
        pruned = cli(
            "secrets", "sync", "--from", "dotenv:small.env", "--to", stores[dst], "--prune"
        )
        assert pruned.exit_code == 0, pruned.output
        assert "1 unchanged" in pruned.stdout and f"{len(VALUES) - 1} to delete" in pruned.stdout
        assert cli("secrets", "diff", "dotenv:small.env", stores[dst]).exit_code == 0
    assert vault.get("secret", "empire/sync-test") == {"API_TOKEN": "tok-CHANGED-9876543210"}


def test_restore_snapshot_into_vault(
    stores: dict[str, str], cli, vault: OpenBao, tmp_path: Path
) -> None:
    Path(".env").write_text(
        Path("src.env").read_text() + "EMPIRE_SNAPSHOT_PASSPHRASE='a long passphrase 42'\n"
    )
    Path(".env").chmod(0o600)
    snap = cli("secrets", "snapshot", "--to", "snaps", "--json")
    assert snap.exit_code == 0, snap.output
    path = json.loads(snap.stdout)["data"]["path"]
    dry = cli("secrets", "restore-snapshot", path, "--to", stores["vault"], "--dry-run")
    assert dry.exit_code == 0 and vault.get("secret", "empire/sync-test") is None
    done = cli("secrets", "restore-snapshot", path, "--to", stores["vault"])
    assert done.exit_code == 0, done.output
    # Also the AWS keys the env source found (declared names); never the passphrase.
    restored = vault.get("secret", "empire/sync-test") or {}
    assert {k: restored[k] for k in VALUES} == VALUES
    assert "EMPIRE_SNAPSHOT_PASSPHRASE" not in restored


def test_export_and_snapshot_refuse_while_a_source_is_down(
    stores: dict[str, str], cli, vault: OpenBao, tmp_path: Path
) -> None:
    (tmp_path / "empire-ops.toml").write_text(vault_config(vault, "empire/sync-test"))
    Path(".env").write_text("EMPIRE_SNAPSHOT_PASSPHRASE='a long passphrase 42'\n")
    assert cli("secrets", "sync", "--from", stores["src"], "--to", stores["vault"]).exit_code == 0
    assert cli("secrets", "export", "--out", "out.env").exit_code == 0  # fills the cache too
    vault.sealed = True
    for args in (("export", "--out", "again.env"), ("snapshot",)):
        result = cli("secrets", *args)
        assert result.exit_code == 4, result.output
        assert "vault (stale-cache)" in result.stderr
    assert not Path("again.env").exists() and not Path(".empire/snapshots").exists()
