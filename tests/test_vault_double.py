"""Drive VaultDouble through real hvac clients; the core KV contract also runs on real Vault.

Set VAULT_ADDR and VAULT_TOKEN (optionally VAULT_KV_MOUNT, default "secret", which must be a
KV v2 mount) to run ``TestKvContract`` against a real server as well as the double.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hvac
import pytest
import requests
from hvac import exceptions

try:  # importable as a package if tests/ ever gains an __init__.py, else as a plain module
    from tests.vault_double import VaultDouble
except ImportError:
    from vault_double import VaultDouble

ROOT = "root-token"
REAL_VAULT = os.environ.get("VAULT_ADDR") and os.environ.get("VAULT_TOKEN")


@pytest.fixture
def vault() -> Iterator[VaultDouble]:
    with VaultDouble(root_token=ROOT) as double:
        yield double


def client(double: VaultDouble, token: str | None = ROOT, **kwargs: Any) -> hvac.Client:
    """A real hvac client pointed at ``double`` (extra kwargs go to ``hvac.Client``)."""
    return hvac.Client(url=double.url, token=token, **kwargs)


# --------------------------------------------------------------------------- contract
@dataclass
class Backend:
    """Where the contract tests point: a client, the KV v2 mount and a per-test key prefix."""

    client: hvac.Client
    mount: str
    prefix: str

    def write(self, key: str, data: dict[str, object], cas: int | None = None) -> dict:
        return self.client.secrets.kv.v2.create_or_update_secret(
            f"{self.prefix}/{key}", data, cas=cas, mount_point=self.mount
        )

    def read(self, key: str, version: int | None = None, raise_on_deleted: bool = True) -> dict:
        return self.client.secrets.kv.v2.read_secret_version(
            f"{self.prefix}/{key}",
            version=version,
            mount_point=self.mount,
            raise_on_deleted_version=raise_on_deleted,
        )


@pytest.fixture(
    params=[
        "double",
        pytest.param(
            "real-vault",
            marks=pytest.mark.skipif(
                not REAL_VAULT, reason="VAULT_ADDR/VAULT_TOKEN unset: no real Vault to check"
            ),
        ),
    ]
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    prefix = f"contract-{uuid.uuid4().hex[:10]}"
    if request.param == "double":
        with VaultDouble(root_token=ROOT) as double:
            yield Backend(client(double), "secret", prefix)
        return
    real = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"])
    mount = os.environ.get("VAULT_KV_MOUNT", "secret")
    yield Backend(real, mount, prefix)
    # every key the contract tests may create, so a real Vault is left clean
    for key in ("app", "folder/one", "folder/two", "folder/deep/three", "gone", "patched"):
        try:
            real.secrets.kv.v2.delete_metadata_and_all_versions(f"{prefix}/{key}", mount)
        except exceptions.VaultError:
            pass


class TestKvContract:
    """Behaviour the double must share with a real Vault KV v2 mount."""

    def test_write_read_and_versions(self, backend: Backend) -> None:
        first = backend.write("app", {"password": "one"})
        assert first["data"]["version"] == 1
        assert first["data"]["deletion_time"] == ""
        backend.write("app", {"password": "two", "user": "svc"})
        latest = backend.read("app")
        assert latest["data"]["data"] == {"password": "two", "user": "svc"}
        assert latest["data"]["metadata"]["version"] == 2
        assert latest["data"]["metadata"]["destroyed"] is False
        assert latest["data"]["metadata"]["created_time"].endswith("Z")
        assert backend.read("app", version=1)["data"]["data"] == {"password": "one"}

    def test_check_and_set(self, backend: Backend) -> None:
        backend.write("app", {"v": 1}, cas=0)
        with pytest.raises(exceptions.InvalidRequest, match="check-and-set parameter did not"):
            backend.write("app", {"v": 2}, cas=0)
        with pytest.raises(exceptions.InvalidRequest):
            backend.write("app", {"v": 2}, cas=5)
        assert backend.write("app", {"v": 2}, cas=1)["data"]["version"] == 2
        assert backend.read("app")["data"]["data"] == {"v": 2}

    def test_missing_secret_is_invalid_path(self, backend: Backend) -> None:
        with pytest.raises(exceptions.InvalidPath) as info:
            backend.read("nope")
        assert info.value.json == {"errors": []}

    def test_list_immediate_children(self, backend: Backend) -> None:
        for key in ("folder/one", "folder/two", "folder/deep/three"):
            backend.write(key, {"k": key})
        listed = backend.client.secrets.kv.v2.list_secrets(
            f"{backend.prefix}/folder", mount_point=backend.mount
        )
        assert listed["data"]["keys"] == ["deep/", "one", "two"]
        top = backend.client.secrets.kv.v2.list_secrets(backend.prefix, mount_point=backend.mount)
        assert top["data"]["keys"] == ["folder/"]
        with pytest.raises(exceptions.InvalidPath):
            backend.client.secrets.kv.v2.list_secrets(
                f"{backend.prefix}/empty", mount_point=backend.mount
            )
        # strict_http clients send GET ?list=true instead of the LIST verb
        strict = hvac.Client(url=backend.client.url, token=backend.client.token, strict_http=True)
        again = strict.secrets.kv.v2.list_secrets(f"{backend.prefix}/folder", backend.mount)
        assert again["data"]["keys"] == ["deep/", "one", "two"]

    def test_soft_delete_undelete_destroy(self, backend: Backend) -> None:
        path = f"{backend.prefix}/gone"
        kv = backend.client.secrets.kv.v2
        backend.write("gone", {"a": 1})
        backend.write("gone", {"a": 2})
        kv.delete_latest_version_of_secret(path, mount_point=backend.mount)
        with pytest.raises(exceptions.InvalidPath):
            backend.read("gone")
        deleted = backend.read("gone", raise_on_deleted=False)
        assert deleted["data"]["data"] is None
        assert deleted["data"]["metadata"]["deletion_time"] != ""
        kv.undelete_secret_versions(path, versions=[2], mount_point=backend.mount)
        assert backend.read("gone")["data"]["data"] == {"a": 2}
        kv.destroy_secret_versions(path, versions=[1], mount_point=backend.mount)
        with pytest.raises(exceptions.InvalidPath) as info:  # destroyed: no deletion_time
            backend.read("gone", version=1, raise_on_deleted=False)
        assert info.value.json["data"]["data"] is None
        assert info.value.json["data"]["metadata"]["destroyed"] is True
        kv.delete_secret_versions(path, versions=[2], mount_point=backend.mount)
        with pytest.raises(exceptions.InvalidPath):
            backend.read("gone", version=2)

    @pytest.mark.filterwarnings("ignore:The raise_on_deleted_version:DeprecationWarning")
    def test_patch(self, backend: Backend) -> None:
        backend.write("patched", {"keep": "x", "change": "old", "drop": "y"})
        kv = backend.client.secrets.kv.v2
        kv.patch(f"{backend.prefix}/patched", {"change": "new"}, mount_point=backend.mount)
        assert backend.read("patched")["data"]["data"] == {
            "keep": "x",
            "change": "new",
            "drop": "y",
        }
        merge = backend.client.adapter.request(
            "PATCH",
            f"/v1/{backend.mount}/data/{backend.prefix}/patched",
            json={"data": {"drop": None, "added": "z"}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert merge["data"]["version"] == 3
        with pytest.raises(exceptions.UnexpectedError, match="merge-patch"):  # HTTP 415
            backend.client.adapter.request(
                "PATCH", f"/v1/{backend.mount}/data/{backend.prefix}/patched", json={"data": {}}
            )
        assert backend.read("patched")["data"]["data"] == {
            "keep": "x",
            "change": "new",
            "added": "z",
        }

    def test_metadata_read_and_delete(self, backend: Backend) -> None:
        path = f"{backend.prefix}/app"
        kv = backend.client.secrets.kv.v2
        backend.write("app", {"a": 1})
        backend.write("app", {"a": 2})
        kv.update_metadata(path, custom_metadata={"owner": "ops"}, mount_point=backend.mount)
        meta = kv.read_secret_metadata(path, mount_point=backend.mount)["data"]
        assert meta["current_version"] == 2
        assert sorted(meta["versions"]) == ["1", "2"]
        assert meta["custom_metadata"] == {"owner": "ops"}
        assert backend.read("app")["data"]["metadata"]["custom_metadata"] == {"owner": "ops"}
        kv.delete_metadata_and_all_versions(path, mount_point=backend.mount)
        with pytest.raises(exceptions.InvalidPath):
            kv.read_secret_metadata(path, mount_point=backend.mount)
        with pytest.raises(exceptions.InvalidPath):
            backend.read("app")


# --------------------------------------------------------------------------- double only
def test_max_versions_trims_oldest(vault: VaultDouble) -> None:
    kv = client(vault).secrets.kv.v2
    kv.update_metadata("trim", max_versions=2)
    for n in range(4):
        kv.create_or_update_secret("trim", {"n": n})
    meta = kv.read_secret_metadata("trim")["data"]
    assert (meta["current_version"], meta["oldest_version"]) == (4, 3)
    assert sorted(meta["versions"]) == ["3", "4"]
    with pytest.raises(exceptions.InvalidPath):
        kv.read_secret_version("trim", version=1, raise_on_deleted_version=True)


def test_cas_required_mount(vault: VaultDouble) -> None:
    vault.add_mount("strict", cas_required=True)
    kv = client(vault).secrets.kv.v2
    with pytest.raises(exceptions.InvalidRequest, match="check-and-set parameter required"):
        kv.create_or_update_secret("k", {"a": 1}, mount_point="strict")
    assert kv.create_or_update_secret("k", {"a": 1}, cas=0, mount_point="strict")["data"]


def test_requests_are_recorded_with_vault_headers(vault: VaultDouble) -> None:
    vault.put("secret", "dir/a", {"a": 1})
    client(vault).secrets.kv.v2.list_secrets("dir")
    method, path, headers = vault.requests[-1]
    assert (method, path) == ("LIST", "/v1/secret/metadata/dir")
    assert headers["X-Vault-Token"] == ROOT
    assert headers["X-Vault-Request"] == "true"


def test_seed_and_inspect_helpers(vault: VaultDouble) -> None:
    assert vault.put("secret", "seeded", {"a": 1}) == 1
    kv = client(vault).secrets.kv.v2
    assert kv.read_secret_version("seeded", raise_on_deleted_version=True)["data"]["data"] == {
        "a": 1
    }
    kv.create_or_update_secret("seeded", {"a": 2})
    assert vault.get("secret", "seeded") == {"a": 2}
    assert vault.get("secret", "seeded", version=1) == {"a": 1}
    assert vault.get("secret", "absent") is None


def test_extra_mount_and_unknown_mount(vault: VaultDouble) -> None:
    vault.add_mount("kv-apps")
    root = client(vault)
    root.secrets.kv.v2.create_or_update_secret("x", {"a": 1}, mount_point="kv-apps")
    assert vault.get("kv-apps", "x") == {"a": 1}
    with pytest.raises(exceptions.InvalidPath, match="no handler for route"):
        root.secrets.kv.v2.read_secret_version(
            "x", mount_point="nope", raise_on_deleted_version=True
        )
    vault.add_token("limited", {"secret/data/*": {"read"}})
    with pytest.raises(exceptions.Forbidden):
        client(vault, "limited").secrets.kv.v2.read_secret_version(
            "x", mount_point="nope", raise_on_deleted_version=True
        )


def test_sealed_and_health(vault: VaultDouble) -> None:
    root = client(vault)
    health = root.sys.read_health_status(method="GET")
    assert health["sealed"] is False and health["initialized"] is True
    vault.sealed = True
    with pytest.raises(exceptions.VaultDown) as info:
        root.secrets.kv.v2.read_secret_version("x", raise_on_deleted_version=True)
    assert info.value.json == {"errors": ["Vault is sealed"]}
    sealed = root.sys.read_health_status(method="GET")
    assert isinstance(sealed, requests.Response)
    assert sealed.status_code == 503 and sealed.json()["sealed"] is True
    assert root.sys.read_health_status(method="HEAD").status_code == 503
    vault.sealed, vault.standby = False, True
    assert root.sys.read_health_status(method="GET").status_code == 429
    assert root.sys.read_health_status(method="GET", standby_ok=True)["standby"] is True
    vault.standby, vault.initialized = False, False
    assert root.sys.read_health_status(method="HEAD").status_code == 501


def test_tokens_and_acl(vault: VaultDouble) -> None:
    vault.put("secret", "app/db", {"pw": "x"})
    vault.put("secret", "other", {"pw": "y"})
    vault.add_token("reader", {"secret/data/app/*": {"read"}, "secret/metadata/app/*": {"list"}})
    reader = client(vault, "reader").secrets.kv.v2
    assert reader.read_secret_version("app/db", raise_on_deleted_version=True)["data"]["data"]
    assert reader.list_secrets("app")["data"]["keys"] == ["db"]
    with pytest.raises(exceptions.Forbidden) as info:
        reader.read_secret_version("other", raise_on_deleted_version=True)
    assert info.value.json == {"errors": ["1 error occurred:\n\t* permission denied\n\n"]}
    with pytest.raises(exceptions.Forbidden):
        reader.create_or_update_secret("app/db", {"pw": "hacked"})
    # create vs update are distinct capabilities, chosen by whether the key exists
    vault.add_token("creator", {"secret/data/app/*": {"create"}})
    creator = client(vault, "creator").secrets.kv.v2
    creator.create_or_update_secret("app/new", {"a": 1})
    with pytest.raises(exceptions.Forbidden):
        creator.create_or_update_secret("app/new", {"a": 2})
    assert client(vault, "reader").is_authenticated() is True
    assert client(vault, "bogus").is_authenticated() is False
    with pytest.raises(exceptions.Forbidden) as info:
        client(vault, None).secrets.kv.v2.read_secret_version(
            "other", raise_on_deleted_version=True
        )
    assert info.value.json == {"errors": ["permission denied"]}


def test_bearer_authorization_header(vault: VaultDouble) -> None:
    vault.put("secret", "app", {"a": 1})
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {ROOT}"
    bearer = hvac.Client(url=vault.url, session=session)
    assert bearer.secrets.kv.v2.read_secret_version("app", raise_on_deleted_version=True)


def test_approle_login(vault: VaultDouble) -> None:
    vault.put("secret", "app/db", {"pw": "x"})
    vault.put("secret", "admin", {"pw": "y"})
    vault.add_approle("role-1", "s3cret", {"secret/data/app/*": {"read"}}, policy_names=["app"])
    app = hvac.Client(url=vault.url)
    with pytest.raises(exceptions.InvalidRequest, match="invalid role or secret ID"):
        app.auth.approle.login(role_id="role-1", secret_id="wrong")
    login = app.auth.approle.login(role_id="role-1", secret_id="s3cret")
    assert login["auth"]["token_policies"] == ["app"]
    assert app.token == login["auth"]["client_token"] != ROOT
    assert app.is_authenticated()
    assert app.lookup_token()["data"]["policies"] == ["app"]
    kv = app.secrets.kv.v2
    assert kv.read_secret_version("app/db", raise_on_deleted_version=True)["data"]["data"]
    with pytest.raises(exceptions.Forbidden):
        kv.read_secret_version("admin", raise_on_deleted_version=True)
    app.logout(revoke_token=True)
    assert (
        hvac.Client(url=vault.url, token=login["auth"]["client_token"]).is_authenticated() is False
    )


def test_namespace_header_recorded_and_enforced() -> None:
    with VaultDouble(root_token=ROOT, namespace="team-a") as double:
        double.put("secret", "app", {"a": 1})
        scoped = client(double, namespace="team-a")
        assert scoped.secrets.kv.v2.read_secret_version("app", raise_on_deleted_version=True)
        method, path, headers = double.requests[-1]
        assert (method, path) == ("GET", "/v1/secret/data/app")
        assert headers["X-Vault-Namespace"] == "team-a"
        for other in (client(double), client(double, namespace="team-b")):
            with pytest.raises(exceptions.InvalidPath):
                other.secrets.kv.v2.read_secret_version("app", raise_on_deleted_version=True)


def test_tls_with_private_ca() -> None:
    with VaultDouble(root_token=ROOT, tls=True) as double:
        assert double.url.startswith("https://127.0.0.1:")
        assert double.ca_path and os.path.exists(double.ca_path)
        secure = client(double, verify=double.ca_path)
        secure.secrets.kv.v2.create_or_update_secret("tls", {"ok": True})
        assert secure.sys.read_health_status(method="GET")["initialized"] is True
        with pytest.raises(requests.exceptions.SSLError):
            client(double, verify=True).sys.read_health_status(method="GET")
        ca_path = double.ca_path
    assert not os.path.exists(ca_path)


def test_slow_server_times_out_client(vault: VaultDouble) -> None:
    vault.delay_seconds = 5.0
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        client(vault, timeout=0.3).secrets.kv.v2.read_secret_version(
            "x", raise_on_deleted_version=True
        )
    assert time.monotonic() - started < 2


def test_stop_releases_threads_and_port() -> None:
    before = threading.active_count()
    double = VaultDouble(root_token=ROOT).start()
    url = double.url
    double.delay_seconds = 30  # a handler parked in the delay must not block stop()
    answers: list[int] = []
    parked = threading.Thread(
        target=lambda: answers.append(client(double).sys.read_health_status().status_code)
    )
    parked.start()
    time.sleep(0.2)
    started = time.monotonic()
    double.stop()
    parked.join(5)
    assert time.monotonic() - started < 2
    assert answers == [200]  # the parked request was answered, not abandoned
    assert threading.active_count() == before
    with pytest.raises(requests.exceptions.ConnectionError):
        hvac.Client(url=url, timeout=1).sys.read_health_status(method="GET")
