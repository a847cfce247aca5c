"""The awssm source through real boto3 against moto's server on loopback."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from ops.config import load_config
from ops.secrets import load_secrets
from ops.secrets.errors import SourceAccessDenied, SourceNotFound
from ops.secrets.sources import source_from_url
from tests.secrets.conftest import AWKWARD, Moto, aws_config, write_config

DATA = {"SMTP_PASSWORD": "smtp-from-aws-9911", "API_TOKEN": "tok-aws-5678"}


def test_json_secret_with_provenance(aws: Moto, tmp_path: Path) -> None:
    aws.client().create_secret(Name="empire/prod", SecretString=json.dumps(DATA))
    write_config(tmp_path, aws_config(aws))
    loaded = load_secrets(load_config())
    assert loaded.secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]
    prov = loaded.secrets.provenance("API_TOKEN")
    assert prov.source == "awssm" and prov.detail.startswith("empire/prod@")
    assert "awssm: ok" in loaded.consulted
    assert (tmp_path / ".empire/secrets/cache/awssm.bin").exists()


def test_one_secret_per_key(aws: Moto, tmp_path: Path) -> None:
    client = aws.client()
    for name, value in DATA.items():
        client.create_secret(Name=f"empire/stage/{name}", SecretString=value)
    client.create_secret(Name="empire/other/X", SecretString="not-mine")
    write_config(
        tmp_path,
        f'[secrets.sources.awssm]\nmode = "per-key"\nprefix = "empire/stage/"\n'
        f'region = "us-east-1"\nendpoint_url = "{aws.endpoint}"\n',
    )
    loaded = load_secrets(load_config())
    assert {k: loaded.secrets[k] for k in DATA} == DATA
    assert "X" not in loaded.secrets


def test_secret_that_does_not_exist(aws: Moto, tmp_path: Path) -> None:
    write_config(tmp_path, aws_config(aws, "empire/missing"))
    with pytest.raises(SourceNotFound, match="empire/missing does not exist"):
        source_from_url("awssm", load_config()).fetch()
    loaded = load_secrets(load_config())
    assert [f.code for f in loaded.findings] == ["SECRETS_SOURCE_NOT_FOUND"]
    assert "awssm: not-found" in loaded.consulted


def test_access_denied_is_exit_4_and_drops_the_cache(aws: Moto, tmp_path: Path) -> None:
    aws.client().create_secret(Name="empire/prod", SecretString=json.dumps(DATA))
    write_config(tmp_path, aws_config(aws))
    load_secrets(load_config())
    cache = tmp_path / ".empire/secrets/cache/awssm.bin"
    assert cache.exists()
    aws.require_auth(True)  # our dummy key is unknown to moto's IAM now
    with pytest.raises(SourceAccessDenied, match="AWS denied access"):
        source_from_url("awssm", load_config()).fetch()
    loaded = load_secrets(load_config())
    assert loaded.exit_code == 4 and not cache.exists()
    assert [f.code for f in loaded.findings] == ["SECRETS_SOURCE_DENIED"]


def test_unreachable_endpoint_falls_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEMPIREOPSTEST001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x" * 20)
    write_config(
        tmp_path,
        '[secrets.sources.awssm]\nsecret_id = "s"\nregion = "us-east-1"\n'
        'endpoint_url = "http://127.0.0.1:1"\ntimeout = "1s"\n',
    )
    loaded = load_secrets(load_config())
    assert "awssm: unavailable" in loaded.consulted and loaded.exit_code == 0


@pytest.mark.parametrize("mode", ["json", "per-key"])
def test_awkward_values_round_trip(aws: Moto, tmp_path: Path, mode: str) -> None:
    write_config(tmp_path, aws_config(aws))
    url = "awssm:empire/awk" if mode == "json" else "awssm:empire/awk/?mode=per-key"
    src = source_from_url(url, load_config())
    src.write(AWKWARD)
    src.write({"LATER": "added-later"})
    assert {k: v.value for k, v in src.fetch().items()} == {**AWKWARD, "LATER": "added-later"}
    src.delete(["LATER"])
    assert {k: v.value for k, v in src.fetch().items()} == AWKWARD


def per_key_source(aws: Moto, tmp_path: Path, extra: str = "") -> str:
    write_config(
        tmp_path,
        f'[secrets.sources.awssm]\nmode = "per-key"\nprefix = "empire/pk/"\n'
        f'region = "us-east-1"\nendpoint_url = "{aws.endpoint}"\n{extra}',
    )
    return "awssm"


@pytest.mark.parametrize("window, days", [("", 7), ('recovery_window = "30d"\n', 30)])
def test_prune_schedules_deletion_with_a_recovery_window_and_can_be_restored(
    aws: Moto, tmp_path: Path, cli, window: str, days: int
) -> None:
    client = aws.client()
    for name, value in DATA.items():
        client.create_secret(Name=f"empire/pk/{name}", SecretString=value)
    per_key_source(aws, tmp_path, window)
    (tmp_path / "keep.env").write_text(f"API_TOKEN={DATA['API_TOKEN']}\n")
    result = cli("secrets", "sync", "--from", "dotenv:keep.env", "--to", "awssm", "--prune")
    assert result.exit_code == 0, result.output
    assert "1 to delete" in result.stdout
    gone = client.describe_secret(SecretId="empire/pk/SMTP_PASSWORD")
    assert "DeletedDate" in gone  # scheduled, not destroyed
    left = gone["DeletedDate"] - datetime.now(gone["DeletedDate"].tzinfo)
    assert abs(left.total_seconds() - days * 86400) < 600
    # The source no longer lists it, and nothing else was touched.
    loaded = load_secrets(load_config())
    assert "SMTP_PASSWORD" not in loaded.secrets
    assert loaded.secrets["API_TOKEN"] == DATA["API_TOKEN"]
    # Within the window it comes back with its value.
    client.restore_secret(SecretId="empire/pk/SMTP_PASSWORD")
    restored = client.get_secret_value(SecretId="empire/pk/SMTP_PASSWORD")
    assert restored["SecretString"] == DATA["SMTP_PASSWORD"]


def test_writing_a_pruned_name_again_restores_it_first(aws: Moto, tmp_path: Path, cli) -> None:
    client = aws.client()
    for name, value in DATA.items():
        client.create_secret(Name=f"empire/pk/{name}", SecretString=value)
    per_key_source(aws, tmp_path)
    (tmp_path / "one.env").write_text(f"API_TOKEN={DATA['API_TOKEN']}\n")
    assert (
        cli("secrets", "sync", "--from", "dotenv:one.env", "--to", "awssm", "--prune").exit_code
        == 0
    )
    (tmp_path / "back.env").write_text("SMTP_PASSWORD=smtp-new-value-42\n")
    again = cli("secrets", "sync", "--from", "dotenv:back.env", "--to", "awssm")
    assert again.exit_code == 0, again.output
    answer = client.describe_secret(SecretId="empire/pk/SMTP_PASSWORD")
    assert "DeletedDate" not in answer
    value = client.get_secret_value(SecretId="empire/pk/SMTP_PASSWORD")["SecretString"]
    assert value == "smtp-new-value-42"


@pytest.mark.parametrize("window", ["3d", "31d", "36h"])
def test_a_recovery_window_outside_aws_range_is_a_config_error(
    tmp_path: Path, cli, window: str
) -> None:
    write_config(
        tmp_path, f'[secrets.sources.awssm]\nsecret_id = "x"\nrecovery_window = "{window}"\n'
    )
    result = cli("config", "validate")
    assert result.exit_code == 2
    assert "secrets.sources.awssm.recovery_window" in result.output and "7d to 30d" in result.output


def test_no_force_delete_is_ever_sent() -> None:
    source = Path(__file__).parents[2] / "ops" / "secrets" / "sources" / "awssm.py"
    assert "ForceDeleteWithoutRecovery" not in source.read_text()
