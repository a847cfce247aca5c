"""The vault source against a real OpenBao server through real hvac: reads, auth, faults, cache.

Every test runs on the real server (tests/openbao.py) except the few faults a real server
cannot be made to show, which use the HTTP double and say so: a standby node, a 401, a 5xx,
a body that is not JSON, and a slow answer.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ops.config import load_config
from ops.secrets import load_secrets
from ops.secrets.errors import (
    SourceAccessDenied,
    SourceCredentialMissing,
    SourceNotFound,
    SourceUnavailable,
    SourceWriteRejected,
)
from ops.secrets.sources import source_from_url
from ops.secrets.sources.vault import VaultSource
from tests.openbao import OpenBao
from tests.secrets.conftest import AWKWARD, ROOT_TOKEN, vault_config, write_config
from tests.vault_double import VaultDouble

DATA = {"SMTP_PASSWORD": "smtp-from-vault-77", "EXTRA_API_TOKEN": "tok-vault-1234"}
CACHE = Path(".empire/secrets/cache/vault.bin")


@pytest.fixture
def seeded(vault: OpenBao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpenBao:
    vault.put("secret", "empire/prod", DATA)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    write_config(tmp_path, vault_config(vault))
    return vault


@pytest.fixture
def double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VaultDouble:
    """The HTTP double, seeded like ``seeded``: only for faults OpenBao cannot show."""
    with VaultDouble(root_token=ROOT_TOKEN) as fake:
        fake.put("secret", "empire/prod", DATA)
        monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
        write_config(tmp_path, vault_config(fake))
        yield fake


def findings(loaded: object) -> dict[str, object]:
    return {f.code: f for f in loaded.findings}  # type: ignore[attr-defined]


def kv_reads(server: OpenBao) -> list[str]:
    return [a.path for a in server.audited() if "/data/" in a.path]


# ---------------------------------------------------------------------- reads and auth
def test_reads_kv2_with_version_provenance(
    vault: OpenBao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.put("secret", "empire/prod", {"OLD": "x"})
    vault.put("secret", "empire/prod", DATA)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    write_config(tmp_path, vault_config(vault))
    loaded = load_secrets(load_config())
    assert loaded.secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]
    assert "OLD" not in loaded.secrets  # the latest version only
    prov = loaded.secrets.provenance("EXTRA_API_TOKEN")
    assert (prov.source, prov.detail) == ("vault", "secret/empire/prod@v2")
    assert "vault: ok" in loaded.consulted


def test_namespace_option_reads_inside_that_namespace(seeded: OpenBao, tmp_path: Path) -> None:
    inside = seeded.namespace("team-a")
    inside.secrets.kv.v2.create_or_update_secret("empire/prod", {"SMTP_PASSWORD": "team-a-pw-1"})
    write_config(tmp_path, vault_config(seeded, extra='namespace = "team-a"\n'))
    assert load_secrets(load_config()).secrets["SMTP_PASSWORD"] == "team-a-pw-1"
    assert seeded.audited()[-1].namespace == "team-a/"
    write_config(tmp_path, vault_config(seeded))  # the root namespace holds the other value
    assert load_secrets(load_config()).secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]


def test_approle_login(vault: OpenBao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.put("secret", "empire/prod", DATA)
    vault.add_approle("role-1", "secret-id-1", {"secret/data/empire/*": {"read"}})
    monkeypatch.setenv("VAULT_ROLE_ID", "role-1")
    monkeypatch.setenv("VAULT_SECRET_ID", "secret-id-1")
    write_config(tmp_path, vault_config(vault, extra='auth = "approle"\n'))
    assert load_secrets(load_config()).secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]
    paths = [a.path for a in vault.audited()]
    assert paths[-2:] == ["auth/approle/login", "secret/data/empire/prod"]


def test_approle_with_a_refused_secret_id_is_denied_and_drops_the_cache(
    vault: OpenBao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AppRole answers a wrong secret_id with 400: the server refusing our credential."""
    vault.put("secret", "empire/prod", DATA)
    vault.add_approle("role-1", "secret-id-1", {"secret/data/empire/*": {"read"}})
    monkeypatch.setenv("VAULT_ROLE_ID", "role-1")
    monkeypatch.setenv("VAULT_SECRET_ID", "secret-id-1")
    write_config(tmp_path, vault_config(vault, extra='auth = "approle"\n'))
    load_secrets(load_config())
    assert CACHE.exists()
    monkeypatch.setenv("VAULT_SECRET_ID", "revoked-secret-id")
    with pytest.raises(SourceAccessDenied, match="AppRole login") as info:
        source_from_url("vault", load_config()).fetch()
    assert "VAULT_SECRET_ID" in (info.value.hint or "")
    loaded = load_secrets(load_config())
    assert loaded.exit_code == 4 and "vault: denied" in loaded.consulted
    assert not CACHE.exists()


def test_tls_verification_with_a_ca_path(
    openbao_tls: OpenBao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    openbao_tls.put("secret", "empire/tls", DATA)
    monkeypatch.setenv("VAULT_TOKEN", openbao_tls.root_token)
    ca = f'verify = "{openbao_tls.ca_path}"\n'
    write_config(tmp_path, vault_config(openbao_tls, "empire/tls", extra=ca))
    assert load_secrets(load_config()).secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]
    # Without the CA the certificate does not verify: the token is never sent to it.
    write_config(
        tmp_path, vault_config(openbao_tls, "empire/tls") + "[secrets.cache]\nenabled = false\n"
    )
    sent = len(openbao_tls.audited())
    loaded = load_secrets(load_config())
    assert "SMTP_PASSWORD" not in loaded.secrets
    assert "vault: unavailable" in loaded.consulted
    assert "SSLError" in findings(loaded)["SECRETS_SOURCE_UNAVAILABLE"].message  # type: ignore[attr-defined]
    assert len(openbao_tls.audited()) == sent


# ---------------------------------------------------------------------- server states
def test_sealed_vault_falls_through(seeded: OpenBao, tmp_path: Path) -> None:
    seeded.seal()
    with pytest.raises(SourceUnavailable, match="sealed"):
        source_from_url("vault", load_config()).fetch()
    (tmp_path / ".env").write_text("SMTP_PASSWORD=from-dotenv-fallback\n")
    (tmp_path / ".env").chmod(0o600)
    loaded = load_secrets(load_config())
    assert loaded.secrets["SMTP_PASSWORD"] == "from-dotenv-fallback"
    assert "vault: unavailable" in loaded.consulted
    assert findings(loaded)["SECRETS_SOURCE_UNAVAILABLE"].severity.label == "warning"
    assert loaded.exit_code == 0


def test_uninitialised_vault_is_unavailable(
    openbao_uninitialised: OpenBao, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "any-token")
    write_config(tmp_path, vault_config(openbao_uninitialised))
    with pytest.raises(SourceUnavailable, match="not initialised"):
        source_from_url("vault", load_config()).fetch()


def test_standby_node_counts_as_unavailable(double: VaultDouble) -> None:
    """Double: a standby (health 429) needs an HA cluster of several servers."""
    double.standby = True
    with pytest.raises(SourceUnavailable, match="standby"):
        source_from_url("vault", load_config()).fetch()


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (500, b'{"errors":["internal error"]}', "InternalServerError"),
        (502, b'{"errors":["bad gateway"]}', "BadGateway"),
        (200, b"<html>a captive portal</html>", "not valid JSON"),
    ],
)
def test_server_faults_fall_back_to_the_cache(
    double: VaultDouble, status: int, body: bytes, why: str
) -> None:
    """Double: a real server cannot be made to answer 5xx or a body that is not JSON."""
    assert load_secrets(load_config()).findings == []
    double.fault = (status, body)
    with pytest.raises(SourceUnavailable, match=why):
        source_from_url("vault", load_config()).fetch()
    loaded = load_secrets(load_config())
    assert loaded.secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]
    assert "vault: stale-cache" in loaded.consulted and CACHE.exists()


def test_401_is_denied_and_deletes_the_cache(double: VaultDouble) -> None:
    """Double: OpenBao answers a bad token with 403; some proxies and plugins answer 401."""
    load_secrets(load_config())
    assert CACHE.exists()
    double.fault = (401, b'{"errors":["unauthorized"]}')
    loaded = load_secrets(load_config())
    assert loaded.exit_code == 4 and "vault: denied" in loaded.consulted
    assert not CACHE.exists()


def test_token_without_permission_is_exit_4_without_fall_through(
    seeded: OpenBao, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded.add_token("weak-token", {"secret/data/other/*": {"read"}})
    monkeypatch.setenv("VAULT_TOKEN", "weak-token")
    with pytest.raises(SourceAccessDenied, match="denied secret/empire/prod") as info:
        source_from_url("vault", load_config()).fetch()
    assert "read on secret/data/empire/prod" in (info.value.hint or "")
    loaded = load_secrets(load_config())
    denied = findings(loaded)["SECRETS_SOURCE_DENIED"]
    assert denied.severity.label == "critical" and loaded.exit_code == 4
    assert "vault: denied" in loaded.consulted


def test_missing_secret_path_is_not_found(seeded: OpenBao, tmp_path: Path) -> None:
    write_config(tmp_path, vault_config(seeded, path="empire/nowhere"))
    loaded = load_secrets(load_config())
    assert "SECRETS_SOURCE_NOT_FOUND" in findings(loaded)
    assert loaded.exit_code == 0


def test_soft_deleted_or_destroyed_latest_version_is_not_found_and_writes_go_on(
    seeded: OpenBao,
) -> None:
    kv = seeded.root.secrets.kv.v2
    kv.delete_latest_version_of_secret("empire/prod")
    src = source_from_url("vault", load_config())
    with pytest.raises(SourceNotFound, match=r"v1\) of secret/empire/prod is deleted") as info:
        src.fetch()
    assert "vault kv undelete -mount=secret -versions=1 empire/prod" in (info.value.hint or "")
    # A write checks-and-sets against the deleted version, and does not revive its data.
    src.write({"NEW": "written-after-delete"})
    assert seeded.get("secret", "empire/prod") == {"NEW": "written-after-delete"}
    kv.destroy_secret_versions("empire/prod", versions=[2])
    with pytest.raises(SourceNotFound, match="v2"):
        src.fetch()
    src.write({"AGAIN": "written-after-destroy"})
    assert seeded.get("secret", "empire/prod") == {"AGAIN": "written-after-destroy"}
    assert {k: v.value for k, v in src.fetch().items()} == {"AGAIN": "written-after-destroy"}


# ---------------------------------------------------------------------- budget
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
    double: VaultDouble, tmp_path: Path
) -> None:
    """Double: a real server cannot be made to answer slowly."""
    double.delay_seconds = 3
    write_config(tmp_path, vault_config(double) + '[secrets]\nremote_budget = "1s"\n')
    started = time.monotonic()
    loaded = load_secrets(load_config())
    assert time.monotonic() - started < 2
    assert "vault: unavailable" in loaded.consulted


# ---------------------------------------------------------------------- the cache
def test_down_vault_uses_the_stale_cache_with_a_warning(seeded: OpenBao) -> None:
    first = load_secrets(load_config())
    assert first.findings == []
    assert CACHE.stat().st_mode & 0o777 == 0o600
    assert DATA["SMTP_PASSWORD"].encode() not in CACHE.read_bytes()
    seeded.seal()
    loaded = load_secrets(load_config())
    assert loaded.secrets["SMTP_PASSWORD"] == DATA["SMTP_PASSWORD"]
    stale = findings(loaded)["SECRETS_STALE_CACHE"]
    assert stale.severity.label == "warning" and loaded.exit_code == 0
    assert "vault: stale-cache" in loaded.consulted
    assert "(cached)" in loaded.secrets.provenance("SMTP_PASSWORD").detail


def test_offline_forces_the_cache_and_max_age_limits_it(seeded: OpenBao, tmp_path: Path) -> None:
    load_secrets(load_config())
    before = seeded.audited()
    loaded = load_secrets(load_config(), offline=True)
    assert seeded.audited() == before  # no request at all
    assert "SECRETS_STALE_CACHE" in findings(loaded)
    write_config(tmp_path, vault_config(seeded) + '[secrets.cache]\nmax_age = "1ms"\n')
    time.sleep(0.01)
    expired = load_secrets(load_config(), offline=True)
    assert "SMTP_PASSWORD" not in expired.secrets
    assert "vault: unavailable" in expired.consulted


def test_403_deletes_the_cache(seeded: OpenBao, monkeypatch: pytest.MonkeyPatch) -> None:
    load_secrets(load_config())
    assert CACHE.exists()
    seeded.add_token("revoked", {})
    monkeypatch.setenv("VAULT_TOKEN", "revoked")
    loaded = load_secrets(load_config())
    assert loaded.exit_code == 4 and not CACHE.exists()
    assert "SMTP_PASSWORD" not in loaded.secrets
    assert "permission denied" in seeded.audited()[-1].error  # the server said so


@pytest.mark.parametrize(
    ("extra", "unset", "named"),
    [
        ("", ["VAULT_TOKEN"], "VAULT_TOKEN is not set"),
        ('auth = "approle"\n', ["VAULT_SECRET_ID"], "needs VAULT_SECRET_ID, not set"),
        ('token_secret = "APP_VAULT_TOKEN"\n', [], "APP_VAULT_TOKEN is not set"),
    ],
)
def test_a_missing_credential_asks_nothing_and_keeps_the_cache(
    seeded: OpenBao,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: str,
    unset: list[str],
    named: str,
) -> None:
    load_secrets(load_config())  # fills the cache with the root token
    assert CACHE.exists()
    monkeypatch.setenv("VAULT_ROLE_ID", "role-1")
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    write_config(tmp_path, vault_config(seeded, extra=extra))
    before = seeded.audited()
    with pytest.raises(SourceCredentialMissing, match=named) as info:
        source_from_url("vault", load_config()).fetch()
    assert info.value.exit_code == 3 and info.value.hint
    loaded = load_secrets(load_config())
    assert seeded.audited() == before  # no request was made
    invalid = findings(loaded)["SECRETS_SOURCE_INVALID"]
    assert "no request was made" in invalid.message and named in invalid.message  # type: ignore[attr-defined]
    assert "vault: invalid" in loaded.consulted and loaded.exit_code == 3
    assert "SECRETS_SOURCE_DENIED" not in findings(loaded)
    assert CACHE.exists()  # a configuration problem is not a refusal
    write_config(tmp_path, vault_config(seeded))
    assert (
        load_secrets(load_config(), offline=True).secrets["SMTP_PASSWORD"]
        == (DATA["SMTP_PASSWORD"])
    )


# ---------------------------------------------------------------------- writes
def test_awkward_values_round_trip_through_vault(seeded: OpenBao) -> None:
    src = source_from_url("vault:secret/empire/awkward", load_config())
    src.write(AWKWARD)
    src.write({"LATER": "added-later"})
    got = {k: v.value for k, v in src.fetch().items()}
    assert got == {**AWKWARD, "LATER": "added-later"}
    src.delete(["LATER"])
    assert set(src.fetch()) == set(AWKWARD)
    assert seeded.get("secret", "empire/awkward") == AWKWARD


def test_writes_work_on_a_mount_that_requires_check_and_set(seeded: OpenBao) -> None:
    seeded.add_mount("strict", cas_required=True)
    src = source_from_url("vault:strict/empire/prod", load_config())
    src.write({"A": "first-value"})
    src.write({"B": "second-value"})
    src.delete(["A"])
    assert seeded.get("strict", "empire/prod") == {"B": "second-value"}


def _race(seeded: OpenBao, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Make another writer update the secret between the source's read and its write.

    Returns a switch: clear it to stop the racing writer.
    """
    current, racing = VaultSource._current, [True]

    def read_then_someone_writes(self: VaultSource, client: object) -> tuple[dict, int]:
        found = current(self, client)
        if racing:
            seeded.put("secret", self.path, {"OTHER": "written-meanwhile"})
        return found

    monkeypatch.setattr(VaultSource, "_current", read_then_someone_writes)
    return racing


def test_a_check_and_set_conflict_is_a_write_error_not_denied(
    seeded: OpenBao, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = source_from_url("vault", load_config())
    _race(seeded, monkeypatch)
    with pytest.raises(SourceWriteRejected, match="check-and-set conflict") as info:
        src.write({"SMTP_PASSWORD": "new-password-1"})
    assert info.value.exit_code == 1 and "run the command again" in (info.value.hint or "")
    assert seeded.get("secret", "empire/prod") == {"OTHER": "written-meanwhile"}  # not clobbered


def test_sync_reports_a_check_and_set_conflict_and_keeps_the_cache(
    seeded: OpenBao, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_secrets(load_config())
    assert CACHE.exists()
    (tmp_path / "src.env").write_text("SMTP_PASSWORD=changed-in-dotenv-1\n")
    (tmp_path / "src.env").chmod(0o600)
    racing = _race(seeded, monkeypatch)
    result = cli("secrets", "sync", "--from", "dotenv:src.env", "--to", "vault", "--json")
    assert result.exit_code == 1, result.output
    assert "check-and-set conflict" in result.stderr and "run the command again" in result.stderr
    assert "denied" not in result.stderr.lower() and CACHE.exists()
    assert "changed-in-dotenv-1" not in result.output
    racing.clear()  # no more racing writer: the rerun the hint asks for succeeds
    again = cli("secrets", "sync", "--from", "dotenv:src.env", "--to", "vault")
    assert again.exit_code == 0, again.output
    assert seeded.get("secret", "empire/prod") == {
        "OTHER": "written-meanwhile",
        "SMTP_PASSWORD": "changed-in-dotenv-1",
    }
