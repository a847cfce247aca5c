"""Fixtures of the secrets tests: a real OpenBao (Vault API), moto's AWS server, HTTP(S).

All are real servers on 127.0.0.1 reached through the real SDKs (hvac, boto3,
httpx). Helpers build config files, JWTs and the awkward values every source
must round-trip.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

# Re-exported: the secrets tests import it from here.
from tests.helpers import write_config as write_config
from tests.openbao import OpenBao
from tests.vault_double import VaultDouble

ROOT_TOKEN = "root-token-for-tests"
AWS_KEY_ID = "AKIAEMPIREOPSTEST001"
AWS_SECRET = "empire-ops-test-secret-key-0001"
REF = "abcdefghijklmnopqrst"
SUPABASE_URL = f"https://{REF}.supabase.co"
JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters"

# Values that break naive quoting: newline, both quotes, $, backslash, non-ASCII.
AWKWARD = {
    "AWK_NEWLINE": "line one\nline two",
    "AWK_QUOTES": 'it\'s "quoted" here',
    "AWK_DOLLAR": "pa$$w0rd${HOME}$x",
    "AWK_UNICODE": "pässwörd-密码-🔑",
    "AWK_BACKSLASH": "back\\slash\\n-not-newline",
}


def make_jwt(payload: dict[str, Any], secret: str = JWT_SECRET, alg: str = "HS256") -> str:
    """A compact HS256 JWT (what Supabase's legacy keys are)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(payload).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def supabase_key(role: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": "supabase", "ref": REF, "role": role, "iat": now, "exp": now + 86400 * 3650}
    payload.update(claims)
    return make_jwt(payload)


ANON_KEY = supabase_key("anon")
SERVICE_KEY = supabase_key("service_role")


# -- Vault -------------------------------------------------------------------------------
@pytest.fixture
def vault(openbao: OpenBao) -> OpenBao:
    """The real OpenBao dev server (tests/openbao.py), KV v2 at ``secret``; ROOT_TOKEN is root.

    Emptied after each test. The HTTP double is only for faults a real server cannot show.
    """
    openbao.add_token(ROOT_TOKEN, None)
    return openbao


def vault_config(
    double: OpenBao | VaultDouble | str, path: str = "empire/prod", extra: str = ""
) -> str:
    address = double if isinstance(double, str) else double.url
    return (
        f'[secrets.sources.vault]\naddress = "{address}"\nmount = "secret"\npath = "{path}"\n'
        f'timeout = "2s"\n{extra}'
    )


# -- AWS (moto server) ---------------------------------------------------------------------
@dataclass
class Moto:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "secretsmanager",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=AWS_KEY_ID,
            aws_secret_access_key=AWS_SECRET,
        )

    def reset(self) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        ).read()

    def require_auth(self, on: bool) -> None:
        """Make moto check IAM (unknown keys and missing policies get AccessDenied)."""
        count = b"0" if on else b"inf"
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=count,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(req).read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield Moto(f"http://{host}:{port}")
    server.stop()


@pytest.fixture
def aws(moto_server: Moto, monkeypatch: pytest.MonkeyPatch) -> Iterator[Moto]:
    """moto with a clean state and dummy credentials in the environment."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    moto_server.reset()
    yield moto_server
    moto_server.require_auth(False)


def aws_config(moto: Moto, secret_id: str = "empire/prod", extra: str = "") -> str:
    return (
        f'[secrets.sources.awssm]\nsecret_id = "{secret_id}"\nregion = "us-east-1"\n'
        f'endpoint_url = "{moto.endpoint}"\ntimeout = "2s"\n{extra}'
    )


# -- HTTP(S) fallback server ----------------------------------------------------------------
@dataclass
class DocServer:
    """Serves ``routes[path] = (status, body)``; records each request's headers."""

    url: str = ""
    routes: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)
    ca_path: str | None = None


def _serve(tls: bool) -> Iterator[DocServer]:
    doc = DocServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            doc.seen.append(dict(self.headers.items()))
            status, body = doc.routes.get(self.path, (404, b"not found"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    helper = None
    if tls:
        # Reuse the Vault double's throwaway self-signed certificate for 127.0.0.1.
        helper = VaultDouble(tls=True)
        server.socket = helper._tls_context().wrap_socket(server.socket, server_side=True)
        doc.ca_path = helper.ca_path
    doc.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield doc
    server.shutdown()
    server.server_close()
    thread.join()
    if helper is not None and helper._tmpdir:
        shutil.rmtree(helper._tmpdir, ignore_errors=True)


@pytest.fixture
def http_doc() -> Iterator[DocServer]:
    """A plain HTTP server on loopback (allowed for the https source)."""
    yield from _serve(tls=False)


@pytest.fixture
def https_doc() -> Iterator[DocServer]:
    """An HTTPS server with a self-signed certificate (``ca_path`` verifies it)."""
    yield from _serve(tls=True)
