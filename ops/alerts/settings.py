"""The ``[alerts]`` config section (light: no SMTP or HTTP import, read by the config loader)."""

from __future__ import annotations

import re
from typing import Any

from ops.config import Field, Table, _is_duration, _is_secret_name, is_timezone
from ops.findings import Severity

SECTION_NAME = "alerts"

_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


def _severity(v: Any) -> Any:
    Severity.parse(v)
    return v


def _quiet_hours(v: Any) -> Any:
    if v and not _QUIET.match(v):
        raise ValueError(f'{v!r} is not a time range (use HH:MM-HH:MM, e.g. 22:00-07:00, or "")')
    return v


def _addresses(v: Any) -> Any:
    for item in v:
        if not isinstance(item, str) or not _ADDRESS.match(item):
            raise ValueError(f"{item!r} is not an e-mail address")
    return v


def _code(v: str) -> Any:
    if not _CODE.match(v):
        raise ValueError(f"{v!r} is not a finding code (UPPER_SNAKE_CASE, e.g. BACKUP_STALE)")
    return v


CODE_RULE = Table(
    {
        "enabled": Field(bool, True, "false: never alert this code"),
        "severity": Field(
            str, None, "alert it as this severity (routes it and lifts it over the minimum)",
            _severity,
        ),
        "recipients": Field(list, [], "extra e-mail addresses for this code", _addresses),
        "repeat_after": Field(str, None, "this code's own repeat interval", _is_duration),
    }
)  # fmt: skip


def _email_check(data: dict[str, Any], root: Any) -> list[str]:
    """A CA bundle that is named must be there: else every alert would fail for a week."""
    from pathlib import Path

    value = data.get("ca_file")
    if not value:
        return []
    path = Path(value).expanduser()
    path = path if path.is_absolute() else Path(root) / path
    return [] if path.is_file() else [f"ca_file: {path} is not a file (a PEM CA bundle)"]


EMAIL = Table(
    {
        "enabled": Field(bool, True, "on whenever SMTP_HOST and ALERT_TO resolve; false: off"),
        "tls": Field(
            str, "starttls",
            "starttls (port 587), tls (implicit, port 465) or none (a relay on loopback)",
            choices=("starttls", "tls", "none"),
        ),
        "timeout": Field(str, "10s", "give up on the SMTP server after this", _is_duration),
        "ca_file": Field(
            str, "", "a CA bundle (PEM) to trust for the SMTP server (default: the system's)"
        ),
    },
    check=_email_check,
)  # fmt: skip

WEBHOOK = Table(
    {
        "enabled": Field(bool, True, "on whenever the url secret resolves; false: off"),
        "url_secret": Field(
            str, "ALERT_WEBHOOK_URL", "the secret holding the webhook URL (Slack-compatible)",
            _is_secret_name,
        ),
        "timeout": Field(str, "10s", "give up on the webhook after this", _is_duration),
    }
)  # fmt: skip

SECTION = Table(
    {
        "enabled": Field(bool, True, "false: no alert is evaluated, spooled or sent"),
        "min_severity": Field(
            str, "warning", "findings at or above this severity alert", _severity
        ),
        "repeat_after": Field(
            str, "6h", "an open finding is alerted again after this", _is_duration
        ),
        "quiet_hours": Field(
            str, "", "HH:MM-HH:MM: non-critical alerts wait until it ends", _quiet_hours
        ),
        "timezone": Field(str, "UTC", "the time zone of quiet_hours", is_timezone),
        "templates_dir": Field(
            str, "", "a folder of templates that override the shipped ones (same names)"
        ),
        "retry_max": Field(
            str, "1h", "the longest wait between two tries of a spooled alert", _is_duration
        ),
        "give_up_after": Field(
            str, "7d", "a spooled alert still undelivered after this is dropped, with a finding",
            _is_duration,
        ),
        "recipients": Table(
            {
                s.label: Field(
                    list, [], f"extra addresses for alerts of {s.label} or worse, beside ALERT_TO",
                    _addresses,
                )
                for s in (Severity.INFO, Severity.WARNING, Severity.ERROR, Severity.CRITICAL)
            }
        ),
        "codes": Table(item=CODE_RULE, key_check=_code, doc="[alerts.codes.<CODE>] overrides"),
        "email": EMAIL,
        "webhook": WEBHOOK,
    }
)  # fmt: skip
