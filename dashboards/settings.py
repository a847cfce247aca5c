"""The ``[dashboard]`` config section (light: read by the config loader)."""

from __future__ import annotations

from ops.config import (
    Field,
    Table,
    _is_count,
    _is_duration,
    _is_port,
    _is_positive,
    _is_secret_name,
)

SECTION_NAME = "dashboard"


SECTION = Table(
    {
        "out_dir": Field(
            str, "", "where `dashboard build` writes db-health.html and db-health.json "
            "(default: <state_dir>/dashboard)",
        ),
        "top": Field(int, 20, "rows shown of each list (tables, indexes…); the rest are counted",
                     _is_positive),
        "logs": Field(int, 20, "newest rows of error_logs and admin_logs shown", _is_count),
        "history_keep": Field(str, "90d", "how long the trend points are kept", _is_duration),
        "statement_timeout": Field(
            str, "5s", "limit of each catalog query the collector runs", _is_duration
        ),
        "long_query": Field(
            str, "60s", "a query running longer than this is listed (PgHero's 60 s)", _is_duration
        ),
        "host": Field(str, "127.0.0.1", "`dashboard serve` listens here (loopback by default)"),
        "port": Field(int, 8787, "`dashboard serve` listens on this port", _is_port),
        "cache": Field(
            str, "30s", "`dashboard serve` rebuilds the snapshot when it is older than this",
            _is_duration,
        ),
        "token_secret": Field(
            str, "ADMIN_DASHBOARD_TOKEN", "the secret holding the bearer token `serve` requires",
            _is_secret_name,
        ),
        "max_failures": Field(
            int, 5, "failed logins from one client per minute before it is made to wait",
            _is_positive,
        ),
        "threads": Field(int, 8, "`dashboard serve` worker threads", _is_positive),
    }
)  # fmt: skip
