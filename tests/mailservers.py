"""Real servers alerts are delivered to in tests: aiosmtpd on loopback, and an HTTP webhook.

``SmtpServer`` records every message it accepts (envelope and parsed e-mail);
it can run plain, or with STARTTLS and AUTH over a self-signed certificate
made here. ``WebhookServer`` records every POST and answers the status code
the test sets (500 to simulate an outage).
"""

from __future__ import annotations

import email
import email.policy
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ops.embedded import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.server.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
        )
        return "250 OK"


@dataclass
class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 (plain, or STARTTLS + AUTH with ``login``)."""

    port: int = field(default_factory=free_port)
    hostname: str = "127.0.0.1"
    cert: tuple[Path, Path] | None = None
    login: tuple[str, str] | None = None
    implicit_tls: bool = False  # TLS from the first byte (port 465 style), not STARTTLS
    received: list[Received] = field(default_factory=list)
    auth_attempts: list[str] = field(default_factory=list)
    controller: Any = None

    def start(self) -> SmtpServer:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        kwargs: dict[str, Any] = {}
        if self.cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
            if self.implicit_tls:
                kwargs |= {"ssl_context": context}
            else:
                kwargs |= {"tls_context": context, "require_starttls": True}
        if self.login is not None:
            expected = self.login

            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                              data: Any) -> AuthResult:  # fmt: skip
                user = data.login.decode()
                self.auth_attempts.append(user)
                ok = (user, data.password.decode()) == expected
                return AuthResult(success=ok)

            # aiosmtpd counts only STARTTLS as TLS; implicit TLS is TLS throughout.
            starttls = self.cert is not None and not self.implicit_tls
            kwargs |= {"authenticator": authenticator, "auth_required": True,
                       "auth_require_tls": starttls}  # fmt: skip
        self.controller = Controller(
            _Handler(self), hostname=self.hostname, port=self.port, **kwargs
        )
        self.controller.start()
        return self

    def env(self, **more: str) -> dict[str, str]:
        """The secrets that point the e-mail channel here (as environment variables)."""
        return {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.port),
            "ALERT_TO": "ops@example.com",
            "ALERT_FROM": "empire@example.com",
            **more,
        }

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def by_subject(self, needle: str) -> list[Received]:
        return [r for r in self.received if needle in str(r.message["Subject"])]


class WebhookServer:
    """An HTTP server on 127.0.0.1 that records POSTs and answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                outer.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                        "status": outer.status,
                    }
                )
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self) -> list[dict[str, Any]]:
        """Bodies (JSON) of the requests answered 2xx."""
        return [json.loads(r["body"]) for r in self.requests if r["status"] // 100 == 2]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- fixtures (imported by tests/conftest.py) ------------------------------------------
@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A plain aiosmtpd server that records every message."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    """An aiosmtpd server that requires STARTTLS, then AUTH (user ``alerts``)."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    from tests.helpers import make_certificate

    server = SmtpServer(cert=make_certificate(folder), login=("alerts", "Smtp-Pw#4f9a-x7Q@z"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.stop()


@pytest.fixture
def cert_path(smtp_tls: SmtpServer) -> Path:
    assert smtp_tls.cert is not None
    return smtp_tls.cert[0]
