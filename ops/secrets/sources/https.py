"""The ``https`` source: a fallback document (JSON object or dotenv) fetched with httpx.

HTTPS is required; plain HTTP is accepted only for loopback addresses. An
optional bearer token is read from another secret (``bearer_secret``), and an
optional ``sha256`` pins the exact document. Read-only.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

from ops.errors import ConfigError
from ops.netutil import is_loopback
from ops.secrets.errors import (
    SourceAccessDenied,
    SourceInvalid,
    SourceNotFound,
    SourceUnavailable,
)
from ops.secrets.sources.base import RawSecrets, SecretSource


class HttpsSource(SecretSource):
    """A JSON or dotenv document at an HTTPS URL."""

    type = "https"
    remote = True

    @property
    def url(self) -> str:
        return str(self.options.get("url") or "")

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def describe(self) -> str:
        if not self.url:
            return "not configured"
        parts = urlsplit(self.url)
        # Never show a query string or user info: they may carry tokens.
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"

    def _check_url(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and is_loopback(parts.hostname or ""):
            return
        raise ConfigError(
            f"secrets source {self.name}: {self.describe()} must use https "
            "(plain http only to loopback)",
            hint="use an https:// URL",
        )

    def _fetch_raw(self) -> RawSecrets:
        import httpx

        self._check_url()
        headers = {"Accept": "application/json, text/plain"}
        bearer_name = self.options.get("bearer_secret")
        if bearer_name:
            token = self.secret(bearer_name)
            if not token:
                raise SourceAccessDenied(f"bearer token secret {bearer_name} is not set")
            headers["Authorization"] = f"Bearer {token}"
        verify = self.options.get("verify", True)
        if isinstance(verify, str):
            import ssl

            verify = ssl.create_default_context(cafile=verify)
        try:
            response = httpx.get(
                self.url,
                headers=headers,
                timeout=httpx.Timeout(self.call_timeout()),
                verify=verify,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            raise SourceUnavailable(
                f"cannot fetch {self.describe()} ({type(exc).__name__})"
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise SourceAccessDenied(f"{self.describe()} answered {status}")
        if status == 404:
            raise SourceNotFound(f"{self.describe()} answered 404")
        if status >= 500 or status == 429:
            raise SourceUnavailable(f"{self.describe()} answered {status}")
        if status != 200:
            raise SourceInvalid(f"{self.describe()} answered {status}, expected 200")
        body = response.content
        pin = str(self.options.get("sha256") or "").lower()
        if pin and hashlib.sha256(body).hexdigest() != pin:
            raise SourceInvalid(
                f"{self.describe()}: document sha256 does not match the pinned sha256",
                hint="the document changed: review it, then update sha256 in config",
            )
        return self._parse(body)

    def _parse(self, body: bytes) -> RawSecrets:
        where = self.describe()
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SourceInvalid(f"{where}: the document is not UTF-8") from None
        if self.options.get("format", "json") == "dotenv":
            from ops.secrets.sources.dotenv import parse_dotenv_text

            found, _ = parse_dotenv_text(text, where)
            return {k: (v, f"{where}:{line}") for k, (v, line) in found.items()}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise SourceInvalid(
                f"{where}: invalid JSON at line {getattr(exc, 'lineno', '?')}",
                hint='serve a JSON object of NAME: value, or set format = "dotenv"',
            ) from None
        if not isinstance(data, dict):
            raise SourceInvalid(f"{where}: the JSON document is not an object of NAME: value")
        return {k: (v if isinstance(v, str) else json.dumps(v), where) for k, v in data.items()}
