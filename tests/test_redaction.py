"""Redaction of ``--json``: inside the structure, before serialising, so no encoding slips by.

A secret holding non-ASCII, a quote, a newline or a backslash is escaped by
``json.dumps``; redacting the serialised text would miss it. Every string of
the payload (keys too) is redacted first, and the value appears in no form:
raw, JSON-escaped or ``\\u``-escaped.

Values of spec entries declared ``secret = false`` (the alert host and
addresses) are not redacted at all, unless a secret holds them (decision 0010).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from ops import findings as F
from ops.cliutil import echo_json
from ops.config import load_config
from ops.logs import REDACTED, redact, redact_data, register_secret_values
from ops.secrets import load_secrets

AWKWARD = 'päss"wörd\\with\nnewline-€-ABCDEF123456'


def _forms(value: str) -> set[str]:
    escaped = json.dumps(value)[1:-1]  # \u-escaped non-ASCII, \" \\ \n
    unicode_kept = json.dumps(value, ensure_ascii=False)[1:-1]
    return {value, escaped, unicode_kept, *(line for line in value.splitlines() if len(line) > 7)}


def test_redact_data_walks_keys_values_lists_and_objects() -> None:
    register_secret_values([AWKWARD])
    data = {
        "text": f"before {AWKWARD} after",
        AWKWARD: [AWKWARD, 1, None, True, 2.5, (AWKWARD,)],
        "path": Path(f"/x/{AWKWARD}"),
    }
    out = redact_data(data)
    assert out == {
        "text": f"before {REDACTED} after",
        REDACTED: [REDACTED, 1, None, True, 2.5, [REDACTED]],
        "path": f"/x/{REDACTED}",
    }


def test_no_encoding_of_the_secret_survives_to_json(capsys) -> None:
    register_secret_values([AWKWARD])
    finding = F.error("SECRETS_INVALID", "X", f"bad {AWKWARD}", details={"v": AWKWARD})
    printed = [F.to_json([finding], {"nested": {"list": [AWKWARD]}}), F.dumps({"k": AWKWARD})]
    for payload in ({"raw": AWKWARD, "line": AWKWARD.splitlines()[1]}, F.to_json([finding])):
        echo_json(payload)
        printed.append(capsys.readouterr().out)
    for text in printed:
        assert REDACTED in text
        assert [f for f in _forms(AWKWARD) if f in text] == []
        json.loads(text)  # still valid JSON


def test_the_old_way_would_have_leaked() -> None:
    """Redacting serialised text misses the escaped form: the reason for the rule."""
    from ops.logs import redact

    register_secret_values([AWKWARD])
    assert json.dumps(AWKWARD)[1:-1] in redact(json.dumps({"k": AWKWARD}))


def test_alert_settings_are_shown_after_loading_and_the_password_is_not(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = secrets.token_urlsafe(18)  # 24 random characters
    monkeypatch.setenv("ALERT_TO", "ops-team@example.com")
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("SMTP_PASSWORD", canary)
    load_secrets(load_config(env="staging"))
    text = "to ops-team@example.com via smtp.example.com"
    assert redact(text) == text
    assert redact(f"{text} as {canary}") == f"{text} as {REDACTED}"
    echo_json({"to": "ops-team@example.com", "host": "smtp.example.com", "password": canary})
    data = json.loads(capsys.readouterr().out)["data"]
    assert data == {"to": "ops-team@example.com", "host": "smtp.example.com", "password": REDACTED}


def test_a_public_value_inside_or_equal_to_a_secret_does_not_unredact_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = secrets.token_urlsafe(12)
    password = f"{token}smtp.example.com{token}"
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("SMTP_PASSWORD", password)
    # One string under a public and a secret name is a secret.
    monkeypatch.setenv("SMTP_USER", f"svc-{token}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", f"svc-{token}")
    load_secrets(load_config())
    assert redact(f"[{password}]") == f"[{REDACTED}]"
    assert redact(f"user svc-{token}") == f"user {REDACTED}"
    # smtp.example.com is part of a secret: it stays registered, so a cut password
    # still hides it.
    assert redact(password[: -len(token)]) == f"{token}{REDACTED}"
