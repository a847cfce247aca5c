"""The HTTP double through real hvac clients, checked against a real OpenBao server.

``TestKvContract`` runs every check on the double and on OpenBao (tests/openbao.py), so
what the double answers cannot drift from what a real server answers. The tests after it
cover what only the double does: the faults a real server cannot be made to show.
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

from tests.openbao import OpenBao
from tests.vault_double import VaultDouble

ROOT = "root-token"


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
    """Where the contract tests point: the server, a root client, and a per-test prefix."""

    server: VaultDouble | OpenBao
    client: hvac.Client
    prefix: str
    mount: str = "secret"

    def write(self, key: str, data: dict[str, object], cas: int | None = None) -> dict:
        return self.client.secrets.kv.v2.create_or_update_secret(
            f"{self.prefix}/{key}", data, cas=cas, mount_point=self.mount
        )

    def read(self, key: str, version: int | None = None) -> dict:
        return self.client.secrets.kv.v2.read_secret_version(
            f"{self.prefix}/{key}",
            version=version,
            mount_point=self.mount,
            raise_on_deleted_version=True,
        )

    def other(self, token: str | None) -> hvac.Client:
        return hvac.Client(url=self.client.url, token=token)


@pytest.fixture(params=["double", "openbao"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    prefix = f"contract-{uuid.uuid4().hex[:10]}"
    if request.param == "double":
        with VaultDouble(root_token=ROOT) as double:
            yield Backend(double, client(double), prefix)
        return
    server: OpenBao = request.getfixturevalue("openbao")
    yield Backend(server, server.root, prefix)


class TestKvContract:
    """What the double must answer exactly as a real server does."""

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
        assert backend.server.get("secret", f"{backend.prefix}/app") == latest["data"]["data"]

    def test_check_and_set(self, backend: Backend) -> None:
        backend.write("app", {"v": 1}, cas=0)
        with pytest.raises(exceptions.InvalidRequest, match="check-and-set parameter did not"):
            backend.write("app", {"v": 2}, cas=0)
        with pytest.raises(exceptions.InvalidRequest):
            backend.write("app", {"v": 2}, cas=5)
        assert backend.write("app", {"v": 2}, cas=1)["data"]["version"] == 2
        assert backend.read("app")["data"]["data"] == {"v": 2}

    def test_missing_secret_and_unknown_mount_are_invalid_path(self, backend: Backend) -> None:
        with pytest.raises(exceptions.InvalidPath) as info:
            backend.read("nope")
        assert info.value.json == {"errors": []}
        with pytest.raises(exceptions.InvalidPath, match="no handler for route"):
            backend.client.secrets.kv.v2.read_secret_version(
                "x", mount_point="nope", raise_on_deleted_version=True
            )

    def test_unknown_token_is_forbidden(self, backend: Backend) -> None:
        backend.write("app", {"a": 1})
        with pytest.raises(exceptions.Forbidden) as info:
            backend.other("bogus").secrets.kv.v2.read_secret_version(
                f"{backend.prefix}/app", raise_on_deleted_version=True
            )
        assert info.value.json == {"errors": ["permission denied"]}

    def test_sealed_and_health(self, backend: Backend) -> None:
        health = backend.client.sys.read_health_status(method="GET")
        assert health["sealed"] is False and health["initialized"] is True
        backend.server.sealed = True
        with pytest.raises(exceptions.VaultDown) as info:
            backend.read("x")
        assert info.value.json == {"errors": ["Vault is sealed"]}
        sealed = backend.client.sys.read_health_status(method="GET")
        assert isinstance(sealed, requests.Response)
        assert sealed.status_code == 503 and sealed.json()["sealed"] is True
        assert backend.client.sys.read_health_status(method="HEAD").status_code == 503
        backend.server.sealed = False


# --------------------------------------------------------------------------- double only
def test_standby_and_uninitialised_health(vault: VaultDouble) -> None:
    root = client(vault)
    vault.standby = True
    assert root.sys.read_health_status(method="GET").status_code == 429
    assert root.sys.read_health_status(method="GET", standby_ok=True)["standby"] is True
    vault.standby, vault.initialized = False, False
    assert root.sys.read_health_status(method="HEAD").status_code == 501


@pytest.mark.parametrize(
    ("status", "body", "raised"),
    [
        (500, b'{"errors":["internal error"]}', exceptions.InternalServerError),
        (502, b'{"errors":["bad gateway"]}', exceptions.BadGateway),
        (401, b'{"errors":["unauthorized"]}', exceptions.Unauthorized),
        (429, b'{"errors":["rate limited"]}', exceptions.RateLimitExceeded),
    ],
)
def test_fault_answers_every_request_but_health(
    vault: VaultDouble, status: int, body: bytes, raised: type[Exception]
) -> None:
    vault.put("secret", "app", {"a": 1})
    vault.fault = (status, body)
    with pytest.raises(raised):
        client(vault).secrets.kv.v2.read_secret_version("app", raise_on_deleted_version=True)
    assert client(vault).sys.read_health_status(method="GET")["sealed"] is False
    vault.fault = None
    assert client(vault).secrets.kv.v2.read_secret_version("app", raise_on_deleted_version=True)


def test_a_body_that_is_not_json_comes_back_raw(vault: VaultDouble) -> None:
    vault.fault = (200, b"<html>a captive portal</html>")
    answer = client(vault).secrets.kv.v2.read_secret_version("app", raise_on_deleted_version=True)
    assert isinstance(answer, requests.Response)  # what hvac does with a body it cannot parse
    assert answer.text == "<html>a captive portal</html>"


def test_requests_are_recorded_with_vault_headers(vault: VaultDouble) -> None:
    client(vault, namespace="team-a").secrets.kv.v2.create_or_update_secret("dir/a", {"a": 1})
    method, path, headers = vault.requests[-1]
    assert (method, path) == ("POST", "/v1/secret/data/dir/a")
    assert headers["X-Vault-Token"] == ROOT
    assert headers["X-Vault-Request"] == "true"
    assert headers["X-Vault-Namespace"] == "team-a"


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
    vault.add_mount("kv-apps")
    kv.create_or_update_secret("x", {"a": 1}, mount_point="kv-apps")
    assert vault.get("kv-apps", "x") == {"a": 1}


def test_tls_with_private_ca() -> None:
    """The HTTPS fallback's test server reuses this certificate (tests/secrets/conftest.py)."""
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
