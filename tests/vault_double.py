"""An in-process HTTP double of Vault's KV v2 API, only for faults a real server cannot show.

The Vault source is tested against a real OpenBao server (tests/openbao.py): KV v2,
tokens and policies, AppRole, namespaces, TLS, sealing, an uninitialised server, 403,
check-and-set conflicts and deleted versions all come from the real thing. This double
remains for what a real single server cannot be made to do, each a flag tests may flip at
any time:

- ``standby``: health 429, as a standby node of an HA cluster answers;
- ``fault = (status, body)``: every request but ``sys/health`` gets that raw answer: a
  500 or 502, a 401 (OpenBao answers a bad token with 403; some proxies and plugins
  answer 401), a rate limit, or a body that is not JSON (a captive portal or a proxy);
- ``delay_seconds``: a slow server (the source's time budget must cut it);
- ``initialized = False``: health 501, without starting a second server.

What it serves is the part of the API those tests pass through, with Vault's status
codes and JSON bodies so hvac raises what it would against a real server: ``sys/health``,
and KV v2 ``data`` reads and writes with versions and check-and-set, for the root token
only (any other token gets 403). ``TestKvContract`` in tests/test_vault_double.py runs the
same checks on the double and on OpenBao, so the two cannot drift apart. State lives in
memory and is lost on ``stop()``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
import ssl
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs, unquote, urlsplit

JSON = dict[str, Any]

VAULT_VERSION = "2.7.2"
DENIED = "permission denied"
CAS_MISMATCH = "check-and-set parameter did not match the current version"
RECORDED_HEADERS = ("X-Vault-Token", "X-Vault-Namespace", "X-Vault-Request")


def _now() -> str:
    """Return the current UTC time in Vault's RFC 3339 format."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _envelope(data: Any = None) -> JSON:
    """Wrap ``data`` in the response envelope Vault puts around every logical response."""
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": None,
    }


class RecordedRequest(NamedTuple):
    """One request the double received: method, raw path (with query) and Vault headers."""

    method: str
    path: str
    headers: dict[str, str]


class _HttpError(Exception):
    """Abort the current request with ``status`` and a Vault-style ``{"errors": [...]}`` body."""

    def __init__(self, status: int, *errors: str, body: JSON | None = None) -> None:
        super().__init__(status, errors)
        self.status = status
        self.body = body if body is not None else {"errors": list(errors)}


@dataclass
class _Version:
    data: JSON
    created_time: str


@dataclass
class KvMount:
    """A KV v2 mount: every secret's version history (path -> version number -> data)."""

    secrets: dict[str, dict[int, _Version]] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # stop() joins every handler thread
    double: VaultDouble

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hang up (timeouts, rejected TLS handshakes)."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 5  # idle client sockets cannot pin a handler thread forever

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, payload = self.server.double._dispatch(self.command, self.path, self.headers, raw)
        try:
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired during delay_seconds)

    do_GET = do_HEAD = do_POST = do_PUT = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""


class VaultDouble:
    """A Vault server stand-in with real HTTP (optionally HTTPS) on 127.0.0.1.

    Use as a context manager or call ``start()``/``stop()``; ``url`` is then the address for
    ``hvac.Client``. The fault flags (module docstring) may be flipped at any time;
    ``sealed`` answers 503 like a sealed server. ``requests`` lists every request received,
    in order; ``ca_path`` is the PEM to pass as ``verify=`` when built with ``tls=True``.
    """

    def __init__(self, root_token: str = "root-token", *, tls: bool = False) -> None:
        """Configure (but do not start) a double with one KV v2 mount, ``secret``."""
        self.root_token = root_token
        self.tls = tls
        self.sealed = False
        self.standby = False
        self.initialized = True
        self.delay_seconds = 0.0
        self.fault: tuple[int, bytes] | None = None
        self.requests: list[RecordedRequest] = []
        self.mounts: dict[str, KvMount] = {"secret": KvMount()}
        self.ca_path: str | None = None
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """Base URL to hand to ``hvac.Client(url=...)``; valid only while started."""
        if self._server is None:
            raise RuntimeError("VaultDouble is not started")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        """Bind a free port and serve in a background thread; returns ``self``."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.double = self
        if self.tls:
            server.socket = self._tls_context().wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake delayed handlers, join all threads and close sockets/temp files."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join()
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _tls_context(self) -> ssl.SSLContext:
        """Write a throwaway self-signed cert for 127.0.0.1/localhost; expose it as ca_path."""
        from tests.helpers import make_certificate

        self._tmpdir = tempfile.mkdtemp(prefix="vault-double-")
        cert_path, key_path = make_certificate(Path(self._tmpdir), "vault-double")
        self.ca_path = str(cert_path)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
        return ctx

    # ------------------------------------------------------------------ seeding helpers
    def add_mount(self, name: str) -> None:
        """Enable an empty KV v2 engine at ``name`` (replacing any mount of that name)."""
        with self._lock:
            self.mounts[name.strip("/")] = KvMount()

    def put(self, mount: str, path: str, data: JSON) -> int:
        """Write a new version of ``path`` (no auth, no CAS); return its number.

        Raises KeyError for an unknown mount.
        """
        with self._lock:
            return self._write(self.mounts[mount], path, data, cas=None)

    def get(self, mount: str, path: str, version: int | None = None) -> JSON | None:
        """Return a copy of a version's data (default latest), or None if missing.

        Raises KeyError for an unknown mount.
        """
        with self._lock:
            versions = self.mounts[mount].secrets.get(path) or {}
            found = versions.get(version or max(versions, default=0))
            return copy.deepcopy(found.data) if found else None

    # ------------------------------------------------------------------ HTTP dispatch
    def _dispatch(
        self, method: str, raw_path: str, headers: Message, raw: bytes
    ) -> tuple[int, bytes]:
        """Answer one request; returns (status, raw body, empty for none)."""
        seen = {h: headers[h] for h in RECORDED_HEADERS if headers.get(h) is not None}
        with self._lock:
            self.requests.append(RecordedRequest(method, raw_path, seen))
        if self.delay_seconds > 0:
            self._stopping.wait(self.delay_seconds)
        fault = self.fault
        if fault is not None and not urlsplit(raw_path).path.startswith("/v1/sys/health"):
            return fault
        try:
            with self._lock:
                status, body = self._route(method, raw_path, headers, raw)
        except _HttpError as err:
            status, body = err.status, err.body
        except Exception as exc:  # a bug or odd input: answer like Vault would, not hang up
            status = 500
            body = {"errors": [f"1 error occurred:\n\t* {type(exc).__name__}: {exc}\n\n"]}
        return status, b"" if body is None else json.dumps(body).encode()

    def _route(self, method: str, raw_path: str, headers: Message, raw: bytes) -> tuple[int, Any]:
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        if not split.path.startswith("/v1/"):
            raise _HttpError(404)  # Vault serves its UI here; nothing an API client wants
        api = unquote(split.path[4:])
        if api == "sys/health":
            return self._health(query)
        if self.sealed or not self.initialized:
            raise _HttpError(503, "Vault is sealed")
        if (headers.get("X-Vault-Token") or "") != self.root_token:
            raise _HttpError(403, DENIED)
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise _HttpError(400, f"failed to parse JSON input: {exc}") from None
        mount_name, _, rest = api.partition("/")
        kind, _, path = rest.partition("/")
        mount = self.mounts.get(mount_name)
        if mount is None or kind != "data" or not path:
            raise _HttpError(404, f'no handler for route "{api}". route entry not found.')
        op = {"PUT": "POST"}.get(method, method)
        if op == "GET":
            versions = mount.secrets.get(path) or {}
            number = int(query.get("version") or 0) or max(versions, default=0)
            if number not in versions:
                raise _HttpError(404)
            meta = _version_meta(versions[number], number)
            return 200, _envelope({"data": copy.deepcopy(versions[number].data), "metadata": meta})
        if op == "POST":
            data = body.get("data") if isinstance(body, dict) else None
            if not isinstance(data, dict):
                raise _HttpError(400, "no data provided")
            number = self._write(mount, path, data, (body.get("options") or {}).get("cas"))
            return 200, _envelope(_version_meta(mount.secrets[path][number], number))
        raise _HttpError(405, "1 error occurred:\n\t* unsupported operation\n\n")

    def _health(self, query: dict[str, str]) -> tuple[int, JSON]:
        if not self.initialized:
            status = int(query.get("uninitcode", 501))
        elif self.sealed:
            status = int(query.get("sealedcode", 503))
        elif self.standby:
            ok = (query.get("standbyok") or "").lower() in ("1", "t", "true")
            status = 200 if ok else int(query.get("standbycode", 429))
        else:
            status = int(query.get("activecode", 200))
        sealed = self.sealed or not self.initialized
        return status, {
            "initialized": self.initialized,
            "sealed": sealed,
            "standby": self.standby or sealed,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "version": VAULT_VERSION,
        }

    @staticmethod
    def _write(mount: KvMount, path: str, data: JSON, cas: Any) -> int:
        """Append a version, check-and-set against the latest when ``cas`` is given."""
        versions = mount.secrets.setdefault(path, {})
        current = max(versions, default=0)
        if cas is not None:
            try:
                expected = int(cas)
            except (TypeError, ValueError):
                raise _HttpError(400, "error parsing check-and-set parameter") from None
            if expected != current:
                raise _HttpError(400, CAS_MISMATCH)
        versions[current + 1] = _Version(copy.deepcopy(data), _now())
        return current + 1


def _version_meta(version: _Version, number: int) -> JSON:
    """The per-version metadata Vault returns from data reads and writes."""
    return {
        "created_time": version.created_time,
        "custom_metadata": None,
        "deletion_time": "",
        "destroyed": False,
        "version": number,
    }
