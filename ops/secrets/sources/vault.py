"""The ``vault`` source: HashiCorp Vault KV v2 through hvac (imported only here, lazily).

Address, mount, path and namespace are configured (no auto-detection: that
needs ``sys/mounts``, which ordinary tokens cannot read). Auth is a token (from
the secret named by ``token_secret``, default ``VAULT_TOKEN``) or AppRole.

How answers are read (docs/decisions/0002):

- a credential that is not set is a configuration problem, found before any
  request: SourceCredentialMissing, and the cache is kept;
- ``sys/health`` is asked first: sealed (503), standby (429/473) and
  uninitialised (501) nodes count as unavailable, so the chain falls through;
- only the server's 401 or 403 means denied (and deletes the cache); the
  AppRole login endpoint answers a refused role_id/secret_id with 400, which
  is the same refusal and is read as denied too;
- any other 400 is not denied: on a write (a check-and-set conflict during
  ``sync``) it is SourceWriteRejected with a hint, on a read SourceInvalid;
- 404, or a latest version that is soft-deleted or destroyed, is not found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from ops.secrets.errors import (
    SourceAccessDenied,
    SourceCredentialMissing,
    SourceInvalid,
    SourceNotFound,
    SourceUnavailable,
    SourceWriteRejected,
)
from ops.secrets.sources.base import RawSecrets, SecretSource

T = TypeVar("T")
Action = Literal["read", "write", "login"]
_HEALTH_UNAVAILABLE = {
    429: "standby",
    473: "performance standby",
    501: "not initialised",
    503: "sealed",
}


class VaultSource(SecretSource):
    """One KV v2 secret (``mount``/``path``) whose keys are the secret names."""

    type = "vault"
    remote = True
    writable = True

    @property
    def address(self) -> str:
        return str(self.options.get("address") or os.environ.get("VAULT_ADDR", ""))

    @property
    def mount(self) -> str:
        return str(self.options.get("mount") or "secret").strip("/")

    @property
    def path(self) -> str:
        return str(self.options.get("path") or "").strip("/")

    @property
    def configured(self) -> bool:
        return bool(self.address and self.path)

    def describe(self) -> str:
        return (
            f"{self.mount}/{self.path} at {self.address}" if self.configured else "not configured"
        )

    # ------------------------------------------------------------------ I/O
    def _credentials(self) -> tuple[str, str] | str:
        """The token, or the AppRole (role_id, secret_id); asks no server.

        Raises SourceCredentialMissing naming the unset secret(s) and how to set them.
        """
        if self.options.get("auth", "token") == "approle":
            names = (
                str(self.options.get("role_id_secret") or "VAULT_ROLE_ID"),
                str(self.options.get("secret_id_secret") or "VAULT_SECRET_ID"),
            )
            role_id, secret_id = (self.secret(n) for n in names)
            if role_id and secret_id:
                return role_id, secret_id
            unset = [n for n, v in zip(names, (role_id, secret_id), strict=True) if not v]
            raise SourceCredentialMissing(
                f"AppRole login needs {' and '.join(unset)}, not set; no request was made "
                f"(export {unset[0]}=... or put it in .env)",
                hint=f"set {' and '.join(unset)} in the environment or .env",
            )
        token_name = str(self.options.get("token_secret") or "VAULT_TOKEN")
        token = self.secret(token_name)
        if not token:
            raise SourceCredentialMissing(
                f"no Vault token: {token_name} is not set; no request was made "
                f'(export {token_name}=..., put it in .env, or configure auth = "approle")',
                hint=f'export {token_name}=... or configure auth = "approle"',
            )
        return token

    def _client(self) -> Any:
        import hvac

        credentials = self._credentials()
        client = hvac.Client(
            url=self.address,
            # hvac falls back to VAULT_TOKEN and ~/.vault-token for token=None: send only
            # the credential this source was configured with.
            token=credentials if isinstance(credentials, str) else "",
            namespace=self.options.get("namespace"),
            verify=self.options.get("verify", True),
            timeout=self.call_timeout(),
        )
        status = self._call(lambda: client.sys.read_health_status(method="HEAD"), client)
        code = getattr(status, "status_code", 200)
        if code in _HEALTH_UNAVAILABLE:
            raise SourceUnavailable(f"Vault is {_HEALTH_UNAVAILABLE[code]} (health {code})")
        if isinstance(credentials, tuple):
            role_id, secret_id = credentials
            self._call(
                lambda: client.auth.approle.login(role_id=role_id, secret_id=secret_id),
                client,
                "login",
            )
        return client

    def _call(self, fn: Callable[[], T], client: Any, action: Action = "read") -> T:
        """Run one hvac call within the remaining budget, mapping errors to source errors."""
        import requests
        from hvac import exceptions as hx

        where = f"{self.mount}/{self.path}"
        client.adapter._kwargs["timeout"] = self.call_timeout()
        try:
            return fn()
        except (hx.Unauthorized, hx.Forbidden) as exc:
            raise SourceAccessDenied(
                f"Vault denied {'the AppRole login' if action == 'login' else where} "
                f"({type(exc).__name__})",
                hint=_DENIED_HINT[action].format(data=f"{self.mount}/data/{self.path}"),
            ) from None
        except hx.InvalidRequest:
            # The server's error text is not repeated: it may quote what was sent.
            if action == "login":  # AppRole answers a refused role_id/secret_id with 400
                raise SourceAccessDenied(
                    "Vault refused the AppRole login (invalid role_id or secret_id)",
                    hint=_DENIED_HINT["login"],
                ) from None
            if action == "write":
                raise SourceWriteRejected(
                    f"Vault rejected the write to {where} (400): usually a check-and-set "
                    "conflict, the secret changed after it was read",
                    hint="run the command again: it re-reads the current version and "
                    "re-plans; if it keeps failing, check the mount is KV v2 "
                    f"(`vault secrets list -detailed`) and its settings (`vault read "
                    f"{self.mount}/config`)",
                ) from None
            raise SourceInvalid(
                f"Vault rejected the read of {where} as a bad request (400)",
                hint=f"check that {self.mount} is a KV v2 mount: `vault secrets list -detailed`",
            ) from None
        except hx.InvalidPath:
            raise SourceNotFound(f"no secret at {where}") from None
        except (
            hx.VaultDown,
            hx.VaultNotInitialized,
            hx.InternalServerError,
            hx.BadGateway,
            hx.RateLimitExceeded,
            hx.PreconditionFailed,
            hx.UnexpectedError,
        ) as exc:
            raise SourceUnavailable(f"Vault answered {type(exc).__name__}") from None
        except requests.exceptions.JSONDecodeError:
            # requests counts a bad body as a RequestException: name it for what it is.
            raise SourceUnavailable("Vault's answer is not valid JSON") from None
        except requests.exceptions.RequestException as exc:
            raise SourceUnavailable(f"cannot reach Vault ({type(exc).__name__})") from None

    def _read(self, client: Any) -> tuple[dict[str, Any] | None, int]:
        """The latest version's data and number; data is None when it is deleted or destroyed.

        Raises SourceNotFound when the path has no version at all.
        """
        from hvac import exceptions as hx

        def read() -> Any:
            try:
                return client.secrets.kv.v2.read_secret_version(
                    self.path, mount_point=self.mount, raise_on_deleted_version=True
                )
            except hx.InvalidPath as exc:
                # A soft-deleted or destroyed latest version is a 404 that still carries its
                # metadata; a write must then check-and-set against that version, not 0.
                body = exc.json if isinstance(exc.json, dict) else {}
                meta = (body.get("data") or {}).get("metadata")
                if isinstance(meta, dict) and "version" in meta:
                    return {"data": {"data": None, "metadata": meta}}
                raise

        answer = self._call(read, client)
        if not isinstance(answer, dict):  # hvac hands back the raw response it could not parse
            raise SourceUnavailable("Vault's answer is not valid JSON (a proxy in the way?)")
        try:
            data = answer["data"]
            values = data["data"]
            version = int(data["metadata"]["version"])
        except (KeyError, TypeError, ValueError):
            raise SourceInvalid(
                f"Vault's answer for {self.mount}/{self.path} is not a KV v2 read",
                hint=f"check that {self.mount} is a KV v2 mount: `vault secrets list -detailed`",
            ) from None
        if values is not None and not isinstance(values, dict):
            raise SourceInvalid(f"Vault's answer for {self.mount}/{self.path} is not a KV v2 read")
        return (dict(values) if values is not None else None), version

    def _fetch_raw(self) -> RawSecrets:
        client = self._client()
        data, version = self._read(client)
        where = f"{self.mount}/{self.path}"
        if data is None:
            raise SourceNotFound(
                f"the latest version (v{version}) of {where} is deleted or destroyed",
                hint=f"undelete it (`vault kv undelete -mount={self.mount} -versions={version} "
                f"{self.path}`) or write a new version",
            )
        detail = f"{where}@v{version}"
        return {
            name: (value if isinstance(value, str) else json.dumps(value), detail)
            for name, value in data.items()
        }

    def _store(self, client: Any, data: dict[str, Any], version: int) -> None:
        # Always check-and-set against the version just read: a concurrent writer makes
        # this fail (SourceWriteRejected) instead of being silently overwritten.
        self._call(
            lambda: client.secrets.kv.v2.create_or_update_secret(
                self.path, secret=data, cas=version, mount_point=self.mount
            ),
            client,
            "write",
        )

    def _current(self, client: Any) -> tuple[dict[str, Any], int]:
        """What a write merges with: the live data (none if deleted) and the version to CAS."""
        try:
            data, version = self._read(client)
        except SourceNotFound:
            return {}, 0
        return data or {}, version

    def _write_raw(self, values: dict[str, str]) -> None:
        client = self._client()
        data, version = self._current(client)
        self._store(client, {**data, **values}, version)

    def _delete_raw(self, names: list[str]) -> None:
        client = self._client()
        data, version = self._current(client)
        if not any(n in data for n in names):
            return
        self._store(client, {k: v for k, v in data.items() if k not in names}, version)


_DENIED_HINT: dict[str, str] = {
    "read": "check the token's policy: it needs read on {data}",
    "write": "check the token's policy: it needs create and update on {data}",
    "login": "check VAULT_ROLE_ID and VAULT_SECRET_ID (or the configured names): the "
    "secret_id may have expired or been revoked",
}
