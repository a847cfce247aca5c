"""The vault source against the KV v2 double through real hvac: reads, auth, faults, cache."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ops.config import load_config
from ops.secrets import load_secrets
from ops.secrets.errors import SourceAccessDenied, SourceUnavailable
from ops.secrets.sources import source_from_url
from tests.secrets.conftest import AWKWARD, ROOT_TOKEN, vault_config, write_config
from tests.vault_double import VaultDouble

DATA = {"SMTP_PASSWORD": "smtp-from-vault-77", "EXTRA_API_TOKEN": "tok-vault-1234"}


@pytest.fixture
def seeded(vault: VaultDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VaultDouble:
    vault.put("secret", "empire/prod", DATA)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    write_config(tmp_path, vault_config(vault))
    return vault


def findings(loaded: object) -> dict[str, object]:
    return {f.code: f for f in loaded.findings}  # type: ignore[attr-defined]


def test_reads_kv2_with_version_provenance_and_namespace_header(
    vault: VaultDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.put("secret", "empire/prod", {"OLD": "x"})
    vault.put("secret", "empire/prod", DATA)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    write_config(tmp_path, vault_config(vault, extra='namespace = "team-a"\n'))
    loaded = load_secrets(load_config())
    assert loaded.secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]
    prov = loaded.secrets.provenance("EXTRA_API_TOKEN")
    assert (prov.source, prov.detail) == ("vault", "secret/empire/prod@v2")
    assert "vault: ok" in loaded.consulted
    reads = [r for r in vault.requests if "/data/" in r.path]
    assert reads and reads[0].headers["X-Vault-Token"] == ROOT_TOKEN
    assert reads[0].headers.get("X-Vault-Namespace") == "team-a"


def test_approle_login(vault: VaultDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.put("secret", "empire/prod", DATA)
    vault.add_approle("role-1", "secret-id-1", {"secret/data/empire/*": {"read"}})
    monkeypatch.setenv("VAULT_ROLE_ID", "role-1")
    monkeypatch.setenv("VAULT_SECRET_ID", "secret-id-1")
    write_config(tmp_path, vault_config(vault, extra='auth = "approle"\n'))
    assert load_secrets(load_config()).secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]


def test_tls_verification_with_a_ca_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with VaultDouble(root_token=ROOT_TOKEN, tls=True) as double:
        double.put("secret", "empire/prod", DATA)
        monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
        write_config(tmp_path, vault_config(double, extra=f'verify = "{double.ca_path}"\n'))
        assert load_secrets(load_config()).secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]
        # Without the CA the certificate does not verify: the token is never sent to it.
        write_config(tmp_path, vault_config(double) + "[secrets.cache]\nenabled = false\n")
        sent = len(double.requests)
        loaded = load_secrets(load_config())
        assert "SMTP_PASSWORD" not in loaded.secrets
        assert "vault: unavailable" in loaded.consulted
        assert len(double.requests) == sent


def test_sealed_vault_falls_through(seeded: VaultDouble, tmp_path: Path) -> None:
    seeded.sealed = True
    with pytest.raises(SourceUnavailable, match="sealed"):
        source_from_url("vault", load_config()).fetch()
    (tmp_path / ".env").write_text("SMTP_PASSWORD=from-dotenv-fallback\n")
    (tmp_path / ".env").chmod(0o600)
    loaded = load_secrets(load_config())
    assert loaded.secrets["SMTP_PASSWORD"] == "from-dotenv-fallback"
    assert "vault: unavailable" in loaded.consulted
    assert findings(loaded)["SECRETS_SOURCE_UNAVAILABLE"].severity.label == "warning"
    assert loaded.exit_code == 0


def test_standby_node_counts_as_unavailable(seeded: VaultDouble) -> None:
    seeded.standby = True
    with pytest.raises(SourceUnavailable, match="standby"):
        source_from_url("vault", load_config()).fetch()


def test_token_without_permission_is_exit_4_without_fall_through(
    seeded: VaultDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded.add_token("weak-token", {"secret/data/other/*": {"read"}})
    monkeypatch.setenv("VAULT_TOKEN", "weak-token")
    with pytest.raises(SourceAccessDenied):
        source_from_url("vault", load_config()).fetch()
    loaded = load_secrets(load_config())
    denied = findings(loaded)["SECRETS_SOURCE_DENIED"]
    assert denied.severity.label == "critical" and loaded.exit_code == 4
    assert "vault: denied" in loaded.consulted


def test_missing_secret_path_is_not_found(seeded: VaultDouble, tmp_path: Path) -> None:
    write_config(tmp_path, vault_config(seeded, path="empire/nowhere"))
    loaded = load_secrets(load_config())
    assert "SECRETS_SOURCE_NOT_FOUND" in findings(loaded)
    assert loaded.exit_code == 0


def test_unreachable_vault_with_required_secret_is_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_server: int
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    write_config(
        tmp_path,
        vault_config(f"http://127.0.0.1:{silent_server}")
        + '[secrets]\nremote_budget = "1s"\n[secrets.spec.SMTP_PASSWORD]\nrequired = true\n',
    )
    loaded = load_secrets(load_config())
    assert loaded.exit_code == 4
    missing = findings(loaded)["SECRETS_MISSING"]
    assert missing.effective_exit_code == 4 and "vault could not be reached" in missing.message
    assert findings(loaded)["SECRETS_SOURCE_UNAVAILABLE"].severity.label == "error"


def test_dead_vault_cannot_exceed_the_budget(tmp_path: Path, run_cli, silent_server: int) -> None:
    write_config(
        tmp_path,
        vault_config(f"http://127.0.0.1:{silent_server}").replace('"2s"', '"5s"')
        + '[secrets]\nremote_budget = "1500ms"\n',
    )
    started = time.monotonic()
    result = run_cli(
        "preflight", "--json",
        env={"VAULT_TOKEN": ROOT_TOKEN, "DATABASE_URL": "postgresql://a:b@127.0.0.1:1/x"},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.exit_code == 4  # the database on port 1 is unreachable
    assert '"SECRETS_SOURCE_UNAVAILABLE"' in result.stdout
    assert elapsed < 1.5 + 3, elapsed  # the budget plus interpreter start-up


def test_slow_vault_is_cut_by_the_budget_and_not_retried_past_it(
    seeded: VaultDouble, tmp_path: Path
) -> None:
    seeded.delay_seconds = 3
    write_config(tmp_path, vault_config(seeded) + '[secrets]\nremote_budget = "1s"\n')
    started = time.monotonic()
    loaded = load_secrets(load_config())
    assert time.monotonic() - started < 2
    assert "vault: unavailable" in loaded.consulted


def test_down_vault_uses_the_stale_cache_with_a_warning(
    seeded: VaultDouble, tmp_path: Path
) -> None:
    first = load_secrets(load_config())
    assert first.findings == []
    cache_file = tmp_path / ".empire" / "secrets" / "cache" / "vault.bin"
    assert cache_file.stat().st_mode & 0o777 == 0o600
    assert DATA["SMTP_PASSWORD"].encode() not in cache_file.read_bytes()
    seeded.sealed = True
    loaded = load_secrets(load_config())
    assert loaded.secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]
    stale = findings(loaded)["SECRETS_STALE_CACHE"]
    assert stale.severity.label == "warning" and loaded.exit_code == 0
    assert "vault: stale-cache" in loaded.consulted
    assert "(cached)" in loaded.secrets.provenance("SMTP_PASSWORD").detail


def test_offline_forces_the_cache_and_max_age_limits_it(
    seeded: VaultDouble, tmp_path: Path
) -> None:
    load_secrets(load_config())
    before = len(seeded.requests)
    loaded = load_secrets(load_config(), offline=True)
    assert len(seeded.requests) == before  # no network at all
    assert "SECRETS_STALE_CACHE" in findings(loaded)
    write_config(tmp_path, vault_config(seeded) + '[secrets.cache]\nmax_age = "1ms"\n')
    time.sleep(0.01)
    expired = load_secrets(load_config(), offline=True)
    assert "SMTP_PASSWORD" not in expired.secrets
    assert "vault: unavailable" in expired.consulted


def test_403_deletes_the_cache(
    seeded: VaultDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_secrets(load_config())
    cache_file = tmp_path / ".empire" / "secrets" / "cache" / "vault.bin"
    assert cache_file.exists()
    seeded.add_token("revoked", {})
    monkeypatch.setenv("VAULT_TOKEN", "revoked")
    loaded = load_secrets(load_config())
    assert loaded.exit_code == 4 and not cache_file.exists()
    assert "SMTP_PASSWORD" not in loaded.secrets


def test_awkward_values_round_trip_through_vault(seeded: VaultDouble) -> None:
    src = source_from_url("vault:secret/empire/awkward", load_config())
    src.write(AWKWARD)
    src.write({"LATER": "added-later"})
    got = {k: v.value for k, v in src.fetch().items()}
    assert got == {**AWKWARD, "LATER": "added-later"}
    src.delete(["LATER"])
    assert set(src.fetch()) == set(AWKWARD)
    assert seeded.get("secret", "empire/awkward") == AWKWARD
