"""The ``[data]`` config section (light: read by the config loader)."""

from __future__ import annotations

from ops.config import Field, Table, _is_positive

SECTION_NAME = "data"


SECTION = Table(
    {
        "max_text": Field(
            int, 1_000_000, "longest text value the service writes (characters)", _is_positive
        ),
        "masked_fields": Field(
            list,
            ["password_hash", "email", "ip", "device", "device_list", "geo", "session_tokens",
             "api_key_ref", "license_key", "key"],
            "columns shown as **** in admin_logs' before/after (secrets and personal data)",
        ),
        "page_size": Field(int, 100, "rows a list returns when no limit is given", _is_positive),
        "max_page_size": Field(int, 1000, "the largest limit a list accepts", _is_positive),
    }
)  # fmt: skip
