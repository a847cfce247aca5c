"""Fixtures for the alert tests: real SMTP and webhook servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mailservers import SmtpServer, WebhookServer, make_certificate


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
