"""The shape every alert channel shares: one public ``deliver``, one small ``_send``.

A channel is on when its settings resolve from the secrets (e-mail:
``SMTP_HOST`` and ``ALERT_TO``; webhook: its URL secret) and config does not
turn it off. :meth:`AlertChannel.deliver` logs, times and translates every
failure into :class:`AlertDeliveryFailed` (naming the channel and the kind of
failure, never a value); ``_send`` only does the I/O.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ops.errors import AlertError

log = logging.getLogger("ops.alerts")


class AlertDeliveryFailed(AlertError):
    """A channel could not deliver a message (server down, refused, timed out)."""


@dataclass(frozen=True)
class OutgoingMessage:
    """A spooled message as a channel sends it. ``message_id`` is stable across retries."""

    message_id: str
    kind: str
    severity: str
    title: str
    text: str
    html: str
    payload: str
    extra_to: tuple[str, ...] = ()


class AlertChannel(ABC):
    """One way of reaching people. Subclasses set ``name`` and implement the two hooks."""

    name: ClassVar[str]

    def __init__(self, config: Any, secrets: Mapping[str, str]) -> None:
        self.config = config
        self.secrets = secrets

    @classmethod
    @abstractmethod
    def is_on(cls, config: Any, secrets: Mapping[str, str]) -> bool:
        """True when the secrets hold what this channel needs and config leaves it on."""

    @abstractmethod
    def describe(self) -> str:
        """Where it sends, for reports: no secret (a host and port, a URL's host)."""

    def deliver(self, message: OutgoingMessage) -> None:
        """Send ``message`` once. Raises AlertDeliveryFailed for any failure of the I/O."""
        from ops.logs import redact

        started = time.monotonic()
        try:
            self._send(message)
        except AlertDeliveryFailed:
            raise
        except Exception as exc:  # every failure of the I/O is a retry later, never a crash
            reason = " ".join(redact(str(exc)).split())[:300] or type(exc).__name__
            raise AlertDeliveryFailed(
                f"{self.name} to {self.describe()}: {type(exc).__name__}: {reason}",
                hint="the message stays in the spool and is retried; "
                "`empire-ops alerts status` shows it",
            ) from None
        log.info(
            "alert %s sent by %s to %s in %.2fs",
            message.message_id, self.name, self.describe(), time.monotonic() - started,
        )  # fmt: skip

    @abstractmethod
    def _send(self, message: OutgoingMessage) -> None:
        """Deliver ``message``; raise any exception on failure (it is translated by deliver)."""
