"""The ``vault`` source: HashiCorp Vault KV v2 through hvac (imported only here, lazily).

Address, mount, path and namespace are configured (no auto-detection: that
needs ``sys/mounts``, which ordinary tokens cannot read). Auth is a token (from
the secret named by ``token_secret``, default ``VAULT_TOKEN``) or AppRole.
Before reading, ``sys/health`` is asked: sealed (503), standby (429/473) and
uninitialised (501) nodes count as unavailable, so the chain falls through.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from ops.secrets.errors import SourceAccessDenied, SourceNotFound, SourceUnavailable
from ops.secrets.sources.base import RawSecrets, SecretSource

T = TypeVar("T")
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
    def _client(self) -> Any:
        import hvac

        verify = self.options.get("verify", True)
        client = hvac.Client(
            url=self.address,
            namespace=self.options.get("namespace"),
            verify=verify,
            timeout=self.call_timeout(),
        )
        if self.options.get("auth", "token") == "approle":
            role_id = self.secret(self.options.get("role_id_secret") or "VAULT_ROLE_ID")
            secret_id = self.secret(self.options.get("secret_id_secret") or "VAULT_SECRET_ID")
            if not role_id or not secret_id:
                raise SourceAccessDenied(
                    "AppRole role_id/secret_id secrets are not set",
                    hint="set VAULT_ROLE_ID and VAULT_SECRET_ID (or the configured names)",
                )
            self._call(
                lambda: client.auth.approle.login(role_id=role_id, secret_id=secret_id), client
            )
        else:
            token_name = self.options.get("token_secret") or "VAULT_TOKEN"
            token = self.secret(token_name)
            if not token:
                raise SourceAccessDenied(
                    f"no Vault token: {token_name} is not set",
                    hint=f'export {token_name}=... or configure auth = "approle"',
                )
            client.token = token
        status = self._call(lambda: client.sys.read_health_status(method="HEAD"), client)
        code = getattr(status, "status_code", 200)
        if code in _HEALTH_UNAVAILABLE:
            raise SourceUnavailable(f"Vault is {_HEALTH_UNAVAILABLE[code]} (health {code})")
        return client

    def _call(self, fn: Callable[[], T], client: Any) -> T:
        """Run one hvac call within the remaining budget, mapping errors to source errors."""
        import requests
        from hvac import exceptions as hx

        client.adapter._kwargs["timeout"] = self.call_timeout()
        try:
            return fn()
        except (hx.Unauthorized, hx.Forbidden) as exc:
            raise SourceAccessDenied(
                f"Vault denied {self.mount}/{self.path} ({type(exc).__name__})",
                hint=f"check the token's policy: it needs read on {self.mount}/data/{self.path}",
            ) from None
        except hx.InvalidPath:
            raise SourceNotFound(f"no secret at {self.mount}/{self.path}") from None
        except (
            hx.VaultDown,
            hx.VaultNotInitialized,
            hx.InternalServerError,
            hx.BadGateway,
            hx.RateLimitExceeded,
            hx.UnexpectedError,
        ) as exc:
            raise SourceUnavailable(f"Vault answered {type(exc).__name__}") from None
        except hx.InvalidRequest as exc:
            raise SourceAccessDenied(f"Vault rejected the request ({type(exc).__name__})") from None
        except requests.exceptions.RequestException as exc:
            raise SourceUnavailable(f"cannot reach Vault ({type(exc).__name__})") from None

    def _read(self, client: Any) -> tuple[dict[str, Any], int]:
        answer = self._call(
            lambda: client.secrets.kv.v2.read_secret_version(
                self.path, mount_point=self.mount, raise_on_deleted_version=True
            ),
            client,
        )
        data = answer["data"]
        return dict(data.get("data") or {}), int(data["metadata"]["version"])

    def _fetch_raw(self) -> RawSecrets:
        client = self._client()
        data, version = self._read(client)
        detail = f"{self.mount}/{self.path}@v{version}"
        return {
            name: (value if isinstance(value, str) else json.dumps(value), detail)
            for name, value in data.items()
        }

    def _store(self, client: Any, data: dict[str, Any], version: int | None) -> None:
        self._call(
            lambda: client.secrets.kv.v2.create_or_update_secret(
                self.path, secret=data, cas=version, mount_point=self.mount
            ),
            client,
        )

    def _current(self, client: Any) -> tuple[dict[str, Any], int]:
        try:
            return self._read(client)
        except SourceNotFound:
            return {}, 0

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
