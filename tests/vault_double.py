"""An in-process HTTP double of HashiCorp Vault's KV v2 engine, for real ``hvac`` clients.

It serves the parts of the Vault HTTP API that empire-ops touches: KV v2 data, metadata and
delete/undelete/destroy routes; ``sys/health``; AppRole login; token lookup-self and
revoke-self; and path-glob ACL policies. Status codes and JSON bodies follow Vault 1.15,
so hvac raises the same exceptions it would against a real server. State lives in memory and
is lost on ``stop()``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import secrets
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs, unquote, urlsplit

Policy = dict[str, set[str]]
JSON = dict[str, Any]

VAULT_VERSION = "1.15.6"
DENIED = "permission denied"
ACL_DENIED = "1 error occurred:\n\t* permission denied\n\n"
CAS_MISMATCH = "check-and-set parameter did not match the current version"
RECORDED_HEADERS = ("X-Vault-Token", "Authorization", "X-Vault-Namespace", "X-Vault-Request")
DEFAULT_MAX_VERSIONS = 10
TOKEN_TTL = 2764800  # Vault's default 768h
# KV v2 route kind -> HTTP operation -> ACL capability ("write" = create or update by existence)
_KV_CAPS = {
    "data": {"GET": "read", "POST": "write", "PATCH": "patch", "DELETE": "delete"},
    "metadata": {"GET": "read", "LIST": "list", "POST": "write", "DELETE": "delete"},
    "delete": {"POST": "update"},
    "undelete": {"POST": "update"},
    "destroy": {"POST": "update"},
}
_ROUTE = {404: "path", 405: "operation"}
_VERSION_KEYS = ("created_time", "deletion_time", "destroyed")


def _now() -> str:
    """Return the current UTC time in Vault's RFC 3339 format."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _envelope(data: Any = None, auth: Any = None) -> JSON:
    """Wrap ``data`` in the response envelope Vault puts around every logical response."""
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": auth,
    }


def _truthy(value: str | None) -> bool:
    """Parse a query flag the way Go's strconv.ParseBool does."""
    return (value or "").lower() in ("1", "t", "true")


def _merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch (a ``None`` value removes the key)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _policy_priority(pattern: str) -> tuple[int, bool, int, int, str]:
    """Rank a policy path the way Vault does: later wildcard, no ``*``, fewer ``+``, longer."""
    wild = [i for i, c in enumerate(pattern) if c in "*+"]
    return (
        wild[0] if wild else len(pattern),
        not pattern.endswith("*"),
        -pattern.count("+"),
        len(pattern),
        pattern,
    )


def _policy_matches(pattern: str, path: str) -> bool:
    """True when ``path`` matches a Vault policy path (``+`` = one segment, trailing ``*``)."""
    glob = pattern.endswith("*")
    body = pattern[:-1] if glob else pattern
    parts = [r"[^/]+" if seg == "+" else re.escape(seg) for seg in body.split("/")]
    return re.fullmatch("/".join(parts) + (".*" if glob else ""), path) is not None


class RecordedRequest(NamedTuple):
    """One request the double received: method, raw path (with query) and Vault headers."""

    method: str
    path: str
    headers: dict[str, str]


class _Request(NamedTuple):
    query: dict[str, str]
    headers: Message
    body: JSON


class _HttpError(Exception):
    """Abort the current request with ``status`` and a Vault-style ``{"errors": [...]}`` body."""

    def __init__(self, status: int, *errors: str, body: JSON | None = None) -> None:
        super().__init__(status, errors)
        self.status = status
        self.body = body if body is not None else {"errors": list(errors)}


@dataclass
class _Version:
    data: JSON | None
    created_time: str
    deletion_time: str = ""
    destroyed: bool = False


@dataclass
class _Secret:
    created_time: str
    updated_time: str
    current_version: int = 0
    oldest_version: int = 0
    max_versions: int = 0
    cas_required: bool = False
    custom_metadata: dict[str, str] | None = None
    versions: dict[int, _Version] = field(default_factory=dict)


@dataclass
class KvMount:
    """A KV v2 mount: its engine config and every secret's version history."""

    max_versions: int = 0
    cas_required: bool = False
    secrets: dict[str, _Secret] = field(default_factory=dict)


@dataclass
class _Token:
    token: str
    policies: Policy
    policy_names: list[str]
    display_name: str
    root: bool = False
    accessor: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    created: int = field(default_factory=lambda: int(time.time()))


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
        status, body = self.server.double._dispatch(self.command, self.path, self.headers, raw)
        payload = b"" if body is None else json.dumps(body).encode()
        try:
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired during delay_seconds)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_LIST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""


class VaultDouble:
    """A Vault server stand-in with real HTTP (optionally HTTPS) on 127.0.0.1.

    Use as a context manager or call ``start()``/``stop()``; ``url`` is then the address for
    ``hvac.Client``. Attributes tests may flip at any time: ``sealed`` (503 for everything but
    sys/health), ``standby`` (health 429), ``initialized`` (health 501) and ``delay_seconds``
    (sleep before every answer). ``requests`` lists every request received, in order;
    ``mounts`` maps KV v2 mount names to their state; ``ca_path`` is the PEM to pass as
    ``verify=`` when built with ``tls=True``.
    """

    def __init__(
        self, root_token: str = "root-token", *, namespace: str | None = None, tls: bool = False
    ) -> None:
        """Configure (but do not start) a double; ``namespace`` makes it an Enterprise namespace."""
        self.root_token = root_token
        self.namespace = namespace.strip("/") if namespace else None
        self.tls = tls
        self.sealed = False
        self.standby = False
        self.initialized = True
        self.delay_seconds = 0.0
        self.requests: list[RecordedRequest] = []
        self.mounts: dict[str, KvMount] = {"secret": KvMount()}
        self.ca_path: str | None = None
        self._tokens: dict[str, _Token] = {}
        self._approles: dict[str, tuple[str, Policy, list[str]]] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tmpdir: str | None = None
        self._tokens[root_token] = _Token(root_token, {}, ["root"], "root", root=True)

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
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vault-double")])
        now = dt.datetime.now(dt.UTC)
        san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        self._tmpdir = tempfile.mkdtemp(prefix="vault-double-")
        cert_path, key_path = Path(self._tmpdir, "ca.pem"), Path(self._tmpdir, "key.pem")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.ca_path = str(cert_path)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_path, key_path)
        return ctx

    # ------------------------------------------------------------------ seeding helpers
    def add_mount(self, name: str, *, max_versions: int = 0, cas_required: bool = False) -> None:
        """Enable an empty KV v2 engine at ``name`` (replacing any existing mount of that name)."""
        with self._lock:
            self.mounts[name.strip("/")] = KvMount(max_versions, cas_required)

    def add_token(
        self, token: str, policies: Policy, *, policy_names: list[str] | None = None
    ) -> None:
        """Register a token allowed exactly ``policies`` (API path glob -> capabilities).

        Capabilities are Vault's: read, create, update, patch, delete, list and deny.
        """
        with self._lock:
            names = policy_names or ["default"]
            self._tokens[token] = _Token(token, copy.deepcopy(policies), names, "token")

    def add_approle(
        self,
        role_id: str,
        secret_id: str,
        policies: Policy,
        *,
        policy_names: list[str] | None = None,
    ) -> None:
        """Register AppRole credentials; each login issues a fresh token with ``policies``."""
        with self._lock:
            names = policy_names or ["default"]
            self._approles[role_id] = (secret_id, copy.deepcopy(policies), names)

    def put(self, mount: str, path: str, data: JSON) -> int:
        """Write a new version of ``path`` (no auth, no CAS); return its number.

        Raises KeyError for an unknown mount.
        """
        with self._lock:
            return self._write(self.mounts[mount], path, data, cas=None, force=True)

    def get(self, mount: str, path: str, version: int | None = None) -> JSON | None:
        """Return a copy of a version's data (default latest), or None if missing or deleted.

        Raises KeyError for an unknown mount.
        """
        with self._lock:
            secret = self.mounts[mount].secrets.get(path)
            found = secret and secret.versions.get(version or secret.current_version)
            if not found or found.deletion_time or found.destroyed:
                return None
            return copy.deepcopy(found.data)

    # ------------------------------------------------------------------ HTTP dispatch
    def _dispatch(
        self, method: str, raw_path: str, headers: Message, raw: bytes
    ) -> tuple[int, Any]:
        """Answer one request; returns (status, JSON body or None for an empty body)."""
        seen = {h: headers[h] for h in RECORDED_HEADERS if headers.get(h) is not None}
        with self._lock:
            self.requests.append(RecordedRequest(method, raw_path, seen))
        if self.delay_seconds > 0:
            self._stopping.wait(self.delay_seconds)
        try:
            with self._lock:
                return self._route(method, raw_path, headers, raw)
        except _HttpError as err:
            return err.status, err.body
        except Exception as exc:  # a bug or odd input: answer like Vault would, not hang up
            return 500, {"errors": [f"1 error occurred:\n\t* {type(exc).__name__}: {exc}\n\n"]}

    def _route(self, method: str, raw_path: str, headers: Message, raw: bytes) -> tuple[int, Any]:
        split = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        if not split.path.startswith("/v1/"):
            raise _HttpError(404)  # Vault serves its UI here; nothing an API client wants
        api = unquote(split.path[4:])
        op = {"PUT": "POST"}.get(method, method)
        if op == "GET" and _truthy(query.get("list")):
            op = "LIST"
        if api == "sys/health":
            return self._health(query)
        if self.sealed or not self.initialized:
            raise _HttpError(503, "Vault is sealed")
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise _HttpError(400, f"failed to parse JSON input: {exc}") from None
        if not isinstance(body, dict):
            raise _HttpError(400, "failed to parse JSON input: not an object")
        namespace = (headers.get("X-Vault-Namespace") or "").strip("/")
        if self.namespace and api.startswith(self.namespace + "/"):
            api, namespace = api[len(self.namespace) + 1 :], self.namespace
        if api == "auth/approle/login" and op == "POST":
            return 200, self._approle_login(body)
        presented = headers.get("X-Vault-Token") or ""
        bearer = headers.get("Authorization") or ""
        if not presented and bearer.lower().startswith("bearer "):
            presented = bearer[7:].strip()
        token = self._tokens.get(presented)
        if token is None:
            raise _HttpError(403, DENIED)
        if api == "auth/token/lookup-self" and op in ("GET", "POST"):
            return 200, _envelope(self._token_info(token))
        if api == "auth/token/revoke-self" and op == "POST":
            if not token.root:
                del self._tokens[token.token]
            return 204, None
        mount_name, _, rest = api.partition("/")
        in_namespace = self.namespace is None or namespace == self.namespace
        mount = self.mounts.get(mount_name) if in_namespace else None
        if mount is None:
            acl_op = {"GET": "read", "LIST": "list", "DELETE": "delete"}.get(op, "update")
            self._require(token, api, acl_op)
            raise _HttpError(404, f'no handler for route "{api}". route entry not found.')
        return self._kv(token, mount, mount_name, rest, op, _Request(query, headers, body))

    def _require(self, token: _Token, path: str, capability: str) -> None:
        """Raise 403 unless the token's best-matching policy path grants ``capability``."""
        if token.root:
            return
        matches = [p for p in token.policies if _policy_matches(p, path)]
        caps = token.policies[max(matches, key=_policy_priority)] if matches else set()
        if "deny" in caps or capability not in caps:
            raise _HttpError(403, ACL_DENIED)

    # ------------------------------------------------------------------ system & auth
    def _health(self, query: dict[str, str]) -> tuple[int, JSON]:
        def code(name: str, default: int) -> int:
            return int(query.get(name, default))

        if not self.initialized:
            status = code("uninitcode", 501)
        elif self.sealed:
            status = code("sealedcode", 503)
        elif self.standby:
            status = 200 if _truthy(query.get("standbyok")) else code("standbycode", 429)
        else:
            status = code("activecode", 200)
        sealed = self.sealed or not self.initialized
        body: JSON = {
            "initialized": self.initialized,
            "sealed": sealed,
            "standby": self.standby or sealed,
            "performance_standby": False,
            "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled",
            "server_time_utc": int(time.time()),
            "version": VAULT_VERSION,
        }
        if not sealed:
            body |= {"cluster_name": "vault-double", "cluster_id": "00000000-0000-double"}
        return status, body

    def _approle_login(self, body: JSON) -> JSON:
        role_id, secret_id = body.get("role_id"), body.get("secret_id")
        if not role_id:
            raise _HttpError(400, "missing role_id")
        role = self._approles.get(role_id)
        if role is None or not secret_id or not secrets.compare_digest(role[0], str(secret_id)):
            raise _HttpError(400, "invalid role or secret ID")
        issued = _Token(
            "hvs." + secrets.token_urlsafe(24), copy.deepcopy(role[1]), role[2], "approle"
        )
        self._tokens[issued.token] = issued
        auth = {
            "client_token": issued.token,
            "accessor": issued.accessor,
            "policies": issued.policy_names,
            "token_policies": issued.policy_names,
            "metadata": {"role_name": role_id},
            "lease_duration": TOKEN_TTL,
            "renewable": True,
            "entity_id": "",
            "token_type": "service",
            "orphan": True,
            "num_uses": 0,
        }
        return _envelope(None, auth)

    def _token_info(self, token: _Token) -> JSON:
        ttl = 0 if token.root else TOKEN_TTL
        return {
            "accessor": token.accessor,
            "creation_time": token.created,
            "creation_ttl": ttl,
            "display_name": token.display_name,
            "entity_id": "",
            "expire_time": None,
            "explicit_max_ttl": 0,
            "id": token.token,
            "meta": None,
            "num_uses": 0,
            "orphan": True,
            "path": "auth/token/root" if token.root else f"auth/{token.display_name}/login",
            "policies": token.policy_names,
            "renewable": not token.root,
            "ttl": ttl,
            "type": "service",
        }

    # ------------------------------------------------------------------ KV v2
    def _kv(
        self, token: _Token, mount: KvMount, name: str, rest: str, op: str, req: _Request
    ) -> tuple[int, Any]:
        kind, _, path = rest.partition("/")
        capability = _KV_CAPS.get(kind, {}).get(op)
        acl_path = f"{name}/{rest}" + ("/" if op == "LIST" and not rest.endswith("/") else "")
        if capability is None:
            self._require(token, acl_path, "read")
            status = 405 if kind in _KV_CAPS else 404
            raise _HttpError(status, f"1 error occurred:\n\t* unsupported {_ROUTE[status]}\n\n")
        if capability == "write":
            capability = "update" if path in mount.secrets else "create"
        self._require(token, acl_path, capability)
        if op in ("POST", "PATCH") and kind in ("data", "metadata") and not path:
            raise _HttpError(400, "missing path")
        secret, body = mount.secrets.get(path), req.body
        if kind == "data" and op == "GET":
            try:
                number = int(req.query.get("version") or 0)
            except ValueError:
                raise _HttpError(400, "invalid version") from None
            number = number if number > 0 else secret.current_version if secret else 0
            version = secret.versions.get(number) if secret else None
            if secret is None or version is None:
                raise _HttpError(404)
            meta = _version_meta(secret, number)
            if version.deletion_time or version.destroyed:
                raise _HttpError(404, body=_envelope({"data": None, "metadata": meta}))
            return 200, _envelope({"data": copy.deepcopy(version.data), "metadata": meta})
        if kind == "data" and op in ("POST", "PATCH"):
            data = body.get("data")
            if not isinstance(data, dict):
                raise _HttpError(400, "no data provided")
            cas = (body.get("options") or {}).get("cas")
            if op == "PATCH":
                data = self._patched(mount, secret, req, data, cas)
            number = self._write(mount, path, data, cas)
            return 200, _envelope(_version_meta(mount.secrets[path], number))
        if kind == "data":  # DELETE soft-deletes the latest version
            latest = secret.versions.get(secret.current_version) if secret else None
            if latest and not latest.deletion_time and not latest.destroyed:
                latest.deletion_time = _now()
            return 204, None
        if kind != "metadata":  # delete / undelete / destroy explicit versions
            numbers = body.get("versions") or []
            if not numbers:
                raise _HttpError(
                    400, f"{'n' if kind == 'destroy' else 'N'}o version number provided"
                )
            for number in numbers:
                version = secret.versions.get(int(number)) if secret else None
                if version is None or version.destroyed:
                    continue
                if kind == "delete" and not version.deletion_time:
                    version.deletion_time = _now()
                elif kind == "undelete":
                    version.deletion_time = ""
                elif kind == "destroy":
                    version.destroyed, version.data = True, None
            return 204, None
        if op == "LIST":
            prefix = path.strip("/") + "/" if path.strip("/") else ""
            keys = {
                head + slash
                for key in mount.secrets
                if key.startswith(prefix)
                for head, slash, _ in [key[len(prefix) :].partition("/")]
            }
            if not keys:
                raise _HttpError(404)
            return 200, _envelope({"keys": sorted(keys)})
        if op == "GET":
            if secret is None:
                raise _HttpError(404)
            return 200, _envelope(_metadata(secret))
        if op == "DELETE":
            mount.secrets.pop(path, None)
            return 204, None
        fields = ("max_versions", "cas_required", "custom_metadata")
        if any(f in body for f in fields):  # POST: create or update the key's settings
            if secret is None:
                secret = mount.secrets[path] = _Secret(created_time=_now(), updated_time=_now())
            secret.max_versions = int(body.get("max_versions", secret.max_versions))
            secret.cas_required = bool(body.get("cas_required", secret.cas_required))
            if "custom_metadata" in body:
                custom = body["custom_metadata"] or {}
                secret.custom_metadata = {str(k): str(v) for k, v in custom.items()}
        return 204, None

    def _patched(
        self, mount: KvMount, secret: _Secret | None, req: _Request, patch: JSON, cas: Any
    ) -> JSON:
        """Return the latest data merged with ``patch`` (RFC 7386), validating like Vault."""
        content_type = req.headers.get("Content-Type") or ""
        if content_type.split(";")[0].strip() != "application/merge-patch+json":
            raise _HttpError(
                415,
                f"PATCH requires Content-Type of application/merge-patch+json, "
                f"provided {content_type}",
            )
        if secret is None:
            raise _HttpError(404)
        self._check_cas(mount, secret, cas)
        latest = secret.versions.get(secret.current_version)
        if latest is None:
            raise _HttpError(404)
        if latest.deletion_time or latest.destroyed:
            raise _HttpError(404, body=_envelope(_version_meta(secret, secret.current_version)))
        return _merge_patch(latest.data, patch)

    @staticmethod
    def _check_cas(mount: KvMount, secret: _Secret | None, cas: Any) -> None:
        if cas is None:
            if mount.cas_required or (secret and secret.cas_required):
                raise _HttpError(400, "check-and-set parameter required for this call")
            return
        try:
            expected = int(cas)
        except (TypeError, ValueError):
            raise _HttpError(400, "error parsing check-and-set parameter") from None
        if expected != (secret.current_version if secret else 0):
            raise _HttpError(400, CAS_MISMATCH)

    def _write(self, mount: KvMount, path: str, data: JSON, cas: Any, force: bool = False) -> int:
        """Append a version (CAS-checked unless ``force``), trim old ones like Vault; return it."""
        secret = mount.secrets.get(path)
        if not force:
            self._check_cas(mount, secret, cas)
        now = _now()
        if secret is None:
            secret = mount.secrets[path] = _Secret(created_time=now, updated_time=now)
        secret.current_version += 1
        secret.versions[secret.current_version] = _Version(copy.deepcopy(data), now)
        secret.updated_time = now
        keep = secret.max_versions or mount.max_versions or DEFAULT_MAX_VERSIONS
        if secret.current_version - secret.oldest_version >= keep:
            doomed = secret.current_version - keep
            for number in range(secret.oldest_version, doomed + 1):
                secret.versions.pop(number, None)
            secret.oldest_version = doomed + 1
        return secret.current_version


def _version_meta(secret: _Secret, number: int) -> JSON:
    """The per-version metadata Vault returns from data reads and writes."""
    version = secret.versions[number]
    return {
        "created_time": version.created_time,
        "custom_metadata": copy.deepcopy(secret.custom_metadata),
        "deletion_time": version.deletion_time,
        "destroyed": version.destroyed,
        "version": number,
    }


def _metadata(secret: _Secret) -> JSON:
    """The key metadata Vault returns from ``GET <mount>/metadata/<path>``."""
    return {
        "cas_required": secret.cas_required,
        "created_time": secret.created_time,
        "current_version": secret.current_version,
        "custom_metadata": copy.deepcopy(secret.custom_metadata),
        "delete_version_after": "0s",
        "max_versions": secret.max_versions,
        "oldest_version": secret.oldest_version,
        "updated_time": secret.updated_time,
        "versions": {
            str(n): {k: v for k, v in _version_meta(secret, n).items() if k in _VERSION_KEYS}
            for n in sorted(secret.versions)
        },
    }
