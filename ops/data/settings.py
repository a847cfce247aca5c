"""The ``[data]`` config section (light: read by the config loader)."""

from __future__ import annotations

from ops.config import Field, Table, _is_positive, _is_secret_name

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
        "export": Table(
            {
                "drop": Field(
                    list,
                    ["password_hash", "session_tokens", "api_key_ref", "license_key", "cookie",
                     "device_list", "device", "geo", "ip"],
                    "columns `export` leaves out (a name, or schema.table.column)",
                ),
                "hash": Field(
                    list,
                    ["email", "user_id", "actor_id", "anon_id", "public.users.id"],
                    "columns `export` replaces by HMAC-SHA256 with the pii_key_secret (keeps "
                    "joins possible); dropped when that secret is not set",
                ),
                "pii_key_secret": Field(
                    str, "EXPORT_PII_KEY", "the secret keying the hashed columns",
                    _is_secret_name,
                ),
            },
            doc="[data.export]: the PII policy of `empire-ops export`",
        ),
    }
)  # fmt: skip
