"""The awssm source through real boto3 against moto's server on loopback."""

from __future__ import annotations

import json
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
