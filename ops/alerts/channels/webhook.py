"""Webhook alerts: Slack-compatible JSON (``{"text": …}``) posted with httpx.

The URL is a secret (``[alerts.webhook] url_secret``, default
``ALERT_WEBHOOK_URL``): a Slack incoming-webhook URL is a credential, so it is
read at send time and shown only as its scheme and host. The stable message
id travels in ``X-Empire-Ops-Message-Id`` (and ``Idempotency-Key``) so a
receiver can drop a retry it already has.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ops.alerts.channels.base import AlertChannel, OutgoingMessage
from ops.config import parse_duration


class WebhookChannel(AlertChannel):
    name = "webhook"

    @classmethod
    def is_on(cls, config: Any, secrets: Mapping[str, str]) -> bool:
        name = config.get("alerts.webhook.url_secret")
        return bool(config.get("alerts.webhook.enabled") and secrets.get(name, "").strip())

    @property
    def url(self) -> str:
        return self.secrets[self.config.get("alerts.webhook.url_secret")].strip()

    def describe(self) -> str:
        parts = urlsplit(self.url)
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # a port that is not one: said by the failure, not here
            port = ":?"
        return f"{parts.scheme or '?'}://{parts.hostname or '?'}{port}"

    def _send(self, message: OutgoingMessage) -> None:
        import httpx

        timeout = parse_duration(self.config.get("alerts.webhook.timeout"))
        try:
            response = self._post(httpx, message, timeout)
        except httpx.HTTPError as exc:
            # httpx's messages may quote the URL, which is the secret: say only what failed.
            raise RuntimeError(f"{type(exc).__name__} reaching {self.describe()}") from None
        if response.status_code // 100 != 2:
            raise RuntimeError(f"the webhook answered HTTP {response.status_code}")

    def _post(self, httpx: Any, message: OutgoingMessage, timeout: float) -> Any:
        # httpx logs every request's full URL at INFO, and this URL is a secret.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        return httpx.post(
            self.url,
            content=message.payload.encode("utf-8"),
            headers={
                "Content-Type": "application/json",
                "X-Empire-Ops-Message-Id": message.message_id,
                "Idempotency-Key": message.message_id,
            },
            timeout=timeout,
            follow_redirects=False,
        )
