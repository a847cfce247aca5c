"""E-mail alerts through smtplib: STARTTLS or implicit TLS, AUTH from the secrets.

Settings come from the secrets chain: ``SMTP_HOST``, ``SMTP_PORT`` (default
587 for STARTTLS, 465 for TLS, 25 for none), ``SMTP_USER`` and
``SMTP_PASSWORD`` (AUTH when both are set), ``ALERT_FROM`` (default
``empire-ops@<host>``) and ``ALERT_TO`` (comma-separated). ``[alerts.email]``
picks the TLS mode, the timeout and a CA bundle. Every message carries its
stable ``Message-ID``, so a retry after a crash between sending and
recording can be recognised by the receiving side.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from ops.alerts.channels.base import AlertChannel, OutgoingMessage
from ops.config import parse_duration
from ops.netutil import is_loopback

_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


def split_addresses(value: str) -> list[str]:
    """The addresses of a comma-separated list, stripped, without empties."""
    return [a.strip() for a in value.replace(";", ",").split(",") if a.strip()]


class EmailChannel(AlertChannel):
    name = "email"

    @classmethod
    def is_on(cls, config: Any, secrets: Mapping[str, str]) -> bool:
        return bool(
            config.get("alerts.email.enabled")
            and secrets.get("SMTP_HOST", "").strip()
            and split_addresses(secrets.get("ALERT_TO", ""))
        )

    @property
    def host(self) -> str:
        return self.secrets["SMTP_HOST"].strip()

    @property
    def tls(self) -> str:
        return str(self.config.get("alerts.email.tls"))

    @property
    def port(self) -> int:
        value = self.secrets.get("SMTP_PORT", "").strip()
        return int(value) if value.isdigit() else _DEFAULT_PORTS[self.tls]

    def describe(self) -> str:
        return f"{self.host}:{self.port} ({self.tls})"

    def recipients(self, message: OutgoingMessage) -> list[str]:
        """ALERT_TO, then the rules' extra addresses for this message, each once."""
        seen: dict[str, None] = {}
        for address in [*split_addresses(self.secrets.get("ALERT_TO", "")), *message.extra_to]:
            seen.setdefault(address.lower(), None)
        return list(seen)

    def build(self, message: OutgoingMessage) -> EmailMessage:
        """The e-mail of ``message``: text and HTML parts, its stable Message-ID."""
        mail = EmailMessage()
        sender = self.secrets.get("ALERT_FROM", "").strip() or f"empire-ops@{socket.getfqdn()}"
        mail["From"] = sender
        mail["To"] = ", ".join(self.recipients(message))
        mail["Subject"] = message.title
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = message.message_id
        mail["X-Empire-Ops-Kind"] = message.kind
        mail["X-Empire-Ops-Severity"] = message.severity
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        return mail

    def _context(self) -> ssl.SSLContext:
        ca_file = self.config.get("alerts.email.ca_file")
        cafile = str(self.config.resolve_path(ca_file)) if ca_file else None
        return ssl.create_default_context(cafile=cafile)

    def _send(self, message: OutgoingMessage) -> None:
        timeout = parse_duration(self.config.get("alerts.email.timeout"))
        smtp: smtplib.SMTP
        if self.tls == "tls":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=self._context())
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
        with smtp:
            if self.tls == "starttls":
                smtp.starttls(context=self._context())
            user, password = (
                self.secrets.get("SMTP_USER", ""),
                self.secrets.get("SMTP_PASSWORD", ""),
            )
            if user and password:
                if self.tls == "none" and not is_loopback(self.host):
                    raise RuntimeError(
                        "refusing to send SMTP_PASSWORD unencrypted to a remote server: set "
                        '[alerts.email] tls = "starttls" or "tls"'
                    )
                smtp.login(user, password)
            smtp.send_message(self.build(message))
