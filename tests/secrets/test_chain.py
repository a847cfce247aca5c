"""Precedence, provenance, aliases and the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.config import load_config
from ops.errors import ConfigError
from ops.logs import redact
from ops.secrets import load_secrets
from ops.secrets.sources import source_from_url
from ops.secrets.sources.awssm import AwsSecretsManagerSource
from ops.secrets.sources.dotenv import DotenvSource
from ops.secrets.sources.env import EnvSource
from ops.secrets.sources.https import HttpsSource
from ops.secrets.sources.vault import VaultSource
from tests.secrets.conftest import AWKWARD, write_config


def test_first_hit_wins_in_chain_order_with_provenance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("SMTP_PASSWORD=from-dotenv-1\nEXTRA_TOKEN=only-in-dotenv\n")
    (tmp_path / ".env").chmod(0o600)
    monkeypatch.setenv("SMTP_PASSWORD", "from-env-0001")
    monkeypatch.setenv("UNDECLARED_THING", "not-a-secret-path")
    loaded = load_secrets(load_config())
    assert loaded.secrets["SMTP_PASSWORD"] == "from-env-0001"
    assert loaded.secrets.provenance("SMTP_PASSWORD").source == "env"
    assert loaded.secrets.provenance("EXTRA_TOKEN").detail == ".env:2"
    assert "UNDECLARED_THING" not in loaded.secrets  # env contributes declared names only
    assert loaded.consulted == [
        "env: ok", "dotenv: ok", "vault: skipped", "awssm: skipped", "https: skipped"
    ]  # fmt: skip
    # Every loaded value is registered for redaction.
    assert redact("x from-dotenv-1 only-in-dotenv") == "x [REDACTED] [REDACTED]"


def test_chain_order_comes_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, '[secrets]\nchain = ["dotenv", "env"]\n')
    (tmp_path / ".env").write_text("SMTP_PASSWORD=from-dotenv-1\n")
    (tmp_path / ".env").chmod(0o600)
    monkeypatch.setenv("SMTP_PASSWORD", "from-env-0001")
    assert load_secrets(load_config()).secrets["SMTP_PASSWORD"] == "from-dotenv-1"


def test_alias_fills_the_canonical_name_only_when_it_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", "postgresql://a:b@127.0.0.1:5/x")
    loaded = load_secrets(load_config())
    assert loaded.secrets["DATABASE_URL"] == "postgresql://a:b@127.0.0.1:5/x"
    assert "alias SUPABASE_DB_URL" in loaded.secrets.provenance("DATABASE_URL").detail
    monkeypatch.setenv("DATABASE_URL", "postgresql://c:d@127.0.0.1:6/y")
    assert load_secrets(load_config()).secrets["DATABASE_URL"].endswith(":6/y")


def test_registry_urls_and_unknown_scheme(tmp_path: Path) -> None:
    cfg = load_config()
    assert isinstance(source_from_url("env:", cfg), EnvSource)
    assert isinstance(source_from_url("dotenv:x.env", cfg), DotenvSource)
    vault = source_from_url("vault:kv/empire/prod", cfg)
    assert isinstance(vault, VaultSource) and (vault.mount, vault.path) == ("kv", "empire/prod")
    aws = source_from_url("awssm:empire/prod?region=eu-west-1", cfg)
    assert isinstance(aws, AwsSecretsManagerSource) and aws.options["region"] == "eu-west-1"
    per_key = source_from_url("awssm:empire/?mode=per-key", cfg)
    assert isinstance(per_key, AwsSecretsManagerSource) and per_key.prefix == "empire/"
    assert isinstance(source_from_url("https://example.com/doc.json", cfg), HttpsSource)
    assert isinstance(source_from_url("dotenv", cfg), DotenvSource)  # a configured name
    with pytest.raises(ConfigError, match="unknown secrets source scheme") as err:
        source_from_url("gcpsm:foo", cfg)
    assert "vault:MOUNT/PATH" in (err.value.hint or "")
    with pytest.raises(ConfigError, match="unknown secrets source 'nope'") as err2:
        source_from_url("nope", cfg)
    assert "awssm" in (err2.value.hint or "")


def test_unknown_source_in_chain_and_bad_source_options(tmp_path: Path) -> None:
    write_config(tmp_path, '[secrets]\nchain = ["env", "consul"]\n')
    # Caught when the config loads, before any source is asked.
    with pytest.raises(ConfigError, match=r"secrets\.chain\[1\]: unknown source 'consul'"):
        load_config()
    write_config(tmp_path, '[secrets.sources.x]\ntype = "consul"\nmode = "xml"\n')
    with pytest.raises(ConfigError) as err:
        load_config()
    assert "secrets.sources.x.type: 'consul' is not a source type" in str(err.value)
    write_config(tmp_path, '[secrets.sources.x]\ntype = "dotenv"\nmount = "kv"\n')
    with pytest.raises(ConfigError) as err:
        load_config()
    assert "secrets.sources.x.mount: an option of vault sources" in str(err.value)


def test_plain_http_is_refused_except_to_loopback(tmp_path: Path) -> None:
    write_config(tmp_path, '[secrets.sources.https]\nurl = "http://example.com/secrets.json"\n')
    with pytest.raises(ConfigError, match="must use https"):
        load_secrets(load_config())


def test_awkward_values_round_trip_through_the_env_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = "".join(f'[secrets.spec.{name}]\nkind = "string"\n' for name in AWKWARD)
    write_config(tmp_path, spec)
    for name, value in AWKWARD.items():
        monkeypatch.setenv(name, value)
    loaded = load_secrets(load_config())
    assert {n: loaded.secrets[n] for n in AWKWARD} == AWKWARD
    assert {loaded.secrets.provenance(n).source for n in AWKWARD} == {"env"}
