"""`secrets sync` never empties a store by accident: through the CLI, real files and moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values

from tests.helpers import write_env
from tests.secrets.conftest import Moto

DST = {"KEEP_A": "value-a-0123456", "KEEP_B": "value-b-0123456"}


@pytest.fixture
def aws_json(aws: Moto) -> str:
    """An AWS secret (json mode) already holding DST; its sync URL."""
    aws.client().create_secret(Name="empire/guard", SecretString=json.dumps(DST))
    return f"awssm:empire/guard?region=us-east-1&endpoint_url={aws.endpoint}"


def data(stdout: str) -> dict[str, Any]:
    """The command's own data, inside the --json envelope (or the whole body before it)."""
    body: dict[str, Any] = json.loads(stdout)
    return body.get("data", body)


def aws_values(aws: Moto) -> dict[str, str]:
    return json.loads(aws.client().get_secret_value(SecretId="empire/guard")["SecretString"])


@pytest.mark.parametrize("prune", [True, False])
def test_a_missing_source_is_an_error_and_the_destination_is_untouched(
    tmp_path: Path, cli, aws: Moto, aws_json: str, prune: bool
) -> None:
    dst = write_env(tmp_path / "dst.env", DST)
    flags = ["--prune"] if prune else []
    for target in (f"dotenv:{dst}", aws_json):
        result = cli("secrets", "sync", "--from", "dotenv:no-such.env", "--to", target, *flags)
        assert result.exit_code == 3, result.output
        assert "no-such.env does not exist" in result.stderr and "hint:" in result.stderr
    assert dotenv_values(dst, interpolate=False) == DST
    assert aws_values(aws) == DST


def test_a_source_with_no_secrets_needs_allow_empty_source(
    tmp_path: Path, cli, aws: Moto, aws_json: str
) -> None:
    (tmp_path / "empty.env").write_text("# nothing here yet\n")
    dst = write_env(tmp_path / "dst.env", DST)
    for target in (f"dotenv:{dst}", aws_json):
        for extra in ([], ["--dry-run"]):
            refused = cli(
                "secrets", "sync", "--from", "dotenv:empty.env", "--to", target, "--prune", *extra
            )
            assert refused.exit_code == 3, refused.output
            assert "resolves no secrets" in refused.stderr
            assert "--prune would delete every secret there" in refused.stderr
            assert "--allow-empty-source" in refused.stderr
    assert dotenv_values(dst, interpolate=False) == DST and aws_values(aws) == DST
    for target in (f"dotenv:{dst}", aws_json):
        meant = cli(
            "secrets", "sync", "--from", "dotenv:empty.env", "--to", target,
            "--prune", "--allow-empty-source", "--json",
        )  # fmt: skip
        assert meant.exit_code == 0, meant.output
        assert [r["name"] for r in data(meant.stdout)["plan"]["delete"]] == sorted(DST)
    assert dotenv_values(dst, interpolate=False) == {} and aws_values(aws) == {}


def test_prune_refuses_to_replace_every_name_at_the_destination(
    tmp_path: Path, cli, aws: Moto, aws_json: str
) -> None:
    write_env(tmp_path / "other.env", {"UNRELATED": "unrelated-value-1"})
    dst = write_env(tmp_path / "dst.env", DST)
    for target in (f"dotenv:{dst}", aws_json):
        for extra in ([], ["--dry-run"]):
            refused = cli(
                "secrets", "sync", "--from", "dotenv:other.env", "--to", target, "--prune", *extra
            )
            assert refused.exit_code == 2, refused.output
            assert "--prune would delete all 2 secrets" in refused.stderr
        # Without --prune the extra names are kept, so nothing is at risk.
        kept = cli("secrets", "sync", "--from", "dotenv:other.env", "--to", target)
        assert kept.exit_code == 0, kept.output
    assert dotenv_values(dst, interpolate=False) == {**DST, "UNRELATED": "unrelated-value-1"}
    assert aws_values(aws) == {**DST, "UNRELATED": "unrelated-value-1"}
    # A prune that keeps a name deletes the rest, as asked.
    write_env(tmp_path / "one.env", {"KEEP_A": DST["KEEP_A"]})
    partial = cli("secrets", "sync", "--from", "dotenv:one.env", "--to", aws_json, "--prune")
    assert partial.exit_code == 0, partial.output
    assert aws_values(aws) == {"KEEP_A": DST["KEEP_A"]}


def test_a_missing_aws_source_is_an_error_too(tmp_path: Path, cli, aws: Moto) -> None:
    dst = write_env(tmp_path / "dst.env", DST)
    url = f"awssm:empire/nothing-here?region=us-east-1&endpoint_url={aws.endpoint}"
    result = cli("secrets", "sync", "--from", url, "--to", f"dotenv:{dst}", "--prune")
    assert result.exit_code == 3, result.output
    assert "does not exist" in result.stderr
    assert dotenv_values(dst, interpolate=False) == DST


def test_diff_with_a_missing_side_is_an_error(tmp_path: Path, cli) -> None:
    write_env(tmp_path / "a.env", DST)
    result = cli("secrets", "diff", "dotenv:a.env", "dotenv:typo.env")
    assert result.exit_code == 3 and "typo.env does not exist" in result.stderr


def test_restore_of_an_empty_snapshot_is_refused(tmp_path: Path, cli) -> None:
    from datetime import UTC, datetime

    from ops.secrets.snapshot import SnapshotSettings, write_snapshot

    # Snapshots written before empty ones were refused may still hold nothing.
    settings = SnapshotSettings("EMPIRE_SNAPSHOT_PASSPHRASE", tmp_path / "snaps", 10)
    pw = {"EMPIRE_SNAPSHOT_PASSPHRASE": "a passphrase 0123456789"}
    info = write_snapshot(settings, {**pw, "ONLY": "x" * 12}, env="dev", now=datetime.now(UTC))
    dst = write_env(tmp_path / "dst.env", DST)
    refused = cli(
        "secrets", "restore-snapshot", str(info.path), "--to", f"dotenv:{dst}", "--prune", env=pw
    )
    assert refused.exit_code == 2, refused.output
    assert "--prune would delete all 2 secrets" in refused.stderr
    assert dotenv_values(dst, interpolate=False) == DST
