"""The dashboard in a real browser: Debian's chromium, headless, through Playwright.

A demo project (seeded rows, three backups, two drills, two builds for the
trends) is opened from its file: every section shows, the console stays
clean, no request leaves the page, the trend charts are inline SVG, colours
come with words, and a phone never scrolls sideways. Hostile names and log
lines render as text, never as markup. Canary secrets never reach the page,
db-health.json or the state store.
"""

from __future__ import annotations

import base64
import json
import secrets as pysecrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import markupsafe
import psycopg
import pytest
from psycopg import sql

from dashboards.render import build_dashboard
from ops.alerts.store import store_path
from ops.secrets.export import render_dotenv
from tests.conftest import PgServer
from tests.dashboards.browser import (
    DESKTOP,
    PHONE,
    SECTIONS,
    artifacts_dir,
    chromium,
    demo_config,
    find_leaks,
    fits_width,
    leak_forms,
    open_page,
    seed_backups_and_drills,
)
from tests.helpers import write_env

__all__ = ["chromium"]  # the session's browser (a fixture defined in browser.py)

CHARTS = ("Backup size", "Backup duration", "Restore drill RTO", "Database size",
          "Table cache hit")  # fmt: skip


def test_the_demo_dashboard_renders_offline_on_desktop_and_phone(
    chromium: Any, migrated_db: str, pg: PgServer, tmp_path: Path, cli: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    config = demo_config(tmp_path, migrated_db, pg.dsn(), monkeypatch)
    seed_backups_and_drills(cli, backups=3, drills=2)
    build_dashboard(config)
    built = build_dashboard(config)  # a second point for every trend
    shots = artifacts_dir()

    with open_page(chromium, built.html, DESKTOP) as (page, watch):
        for name in ("banner", *SECTIONS):
            assert page.locator(f"#{name}").is_visible(), f"#{name} is not shown"
        assert page.locator("section").count() == len(SECTIONS)
        for title in CHARTS:
            chart = page.locator(f'[data-chart="{title}"]')
            assert chart.locator("svg polyline").count() == 1, f"no {title} chart"
            assert chart.locator("svg").is_visible()
        assert page.locator("#backups table tbody tr").count() >= 3
        assert page.locator("#drills table tbody tr").count() == 2
        assert page.locator("#database table tbody tr").count() > 10  # the demo's tables
        # Colour always comes with words: every badge says what it means.
        # (text_content: the ok and info findings sit folded in a <details>.)
        for selector in (".sev", ".state", ".flag"):
            texts = page.locator(selector).all_text_contents()
            assert all(t.strip() for t in texts), f"a {selector} without text: {texts}"
        assert page.locator(".sev").count() >= 6  # the banner's, and one per severity
        page.screenshot(path=str(shots / "dashboard-desktop.png"), full_page=True)
        watch.assert_quiet()

    with open_page(chromium, built.html, PHONE) as (page, watch):
        for name in ("banner", *SECTIONS):
            assert page.locator(f"#{name}").is_visible(), f"#{name} is not shown on a phone"
        assert fits_width(page), page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]"
        )
        page.screenshot(path=str(shots / "dashboard-phone.png"), full_page=True)
        watch.assert_quiet()
    assert (shots / "dashboard-desktop.png").stat().st_size > 10_000
    assert (shots / "dashboard-phone.png").stat().st_size > 10_000


def test_the_watch_sees_scripts_requests_and_errors(chromium: Any, tmp_path: Path) -> None:
    # The page's assertions would be empty if the watch were blind: show it a bad page.
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!doctype html><title>bad</title><img src="http://127.0.0.1:9/pixel.png">'
        "<script>console.error('boom'); alert('hi'); undefined_call();</script>"
    )
    with open_page(chromium, bad, DESKTOP) as (_page, watch):
        pass
    # The aborted image's own console error may come before or after the script's.
    assert watch.dialogs == ["alert: hi"] and "boom" in watch.console_errors
    assert any("undefined_call" in e for e in watch.page_errors)
    assert watch.routed_away == ["http://127.0.0.1:9/pixel.png"]
    assert sorted(watch.requests) == sorted([bad.as_uri(), "http://127.0.0.1:9/pixel.png"])


XSS_TABLE = "<script>alert(1)</script>"
XSS_MESSAGES = ("<img src=x onerror=alert(2)>", "</td><script>alert(3)</script>")


def test_hostile_names_and_log_lines_show_as_text(
    chromium: Any, dashboard_config: Any, migrated_db: str
) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        table = sql.Identifier("public", XSS_TABLE)
        conn.execute(sql.SQL("create table {} (id int primary key, note text)").format(table))
        conn.execute(
            sql.SQL("insert into {} select g, 'row ' || g from generate_series(1, 50) g").format(
                table
            )
        )
        conn.execute(sql.SQL("analyze {}").format(table))
        for message in XSS_MESSAGES:
            conn.execute(
                "insert into public.error_logs (severity, source, message) "
                "values ('error', %s, %s)",
                ("<b>source</b>", message),
            )
    built = build_dashboard(dashboard_config)
    page_text = built.html.read_text()
    assert "<script" not in page_text.lower()

    with open_page(chromium, built.html, DESKTOP) as (page, watch):
        assert page.locator("script").count() == 0
        assert page.locator("img").count() == 0
        body = page.locator("body").inner_text()
        # The table shows among the tables (and in the security lints, RLS off).
        assert f"public.{XSS_TABLE}" in page.locator("#database").inner_text()
        assert XSS_TABLE in page.locator("#security").inner_text()
        logs = page.locator("#logs").inner_text()
        for message in XSS_MESSAGES:
            assert message in logs and message in body
        assert "<b>source</b>" in logs
        watch.assert_quiet()  # no dialog, no error, no request


# -- canaries ------------------------------------------------------------------------------
def canary(tag: str) -> str:
    """A recognisable random value with characters URL, JSON and HTML encodings change."""
    return f'CNRY-{tag}-{pysecrets.token_urlsafe(24)}-p/s:w@rd+x&y<z>"q'


@pytest.fixture
def long_query(pg: PgServer, migrated_db: str) -> Iterator[str]:
    """A query running on the database while the test runs, a canary in its literal."""
    value = f"CNRY-QUERY-{pysecrets.token_urlsafe(24)}"
    conn = psycopg.connect(migrated_db, autocommit=True)
    pid = conn.info.backend_pid
    thread = threading.Thread(
        target=lambda: _ignore_cancel(conn, f"select pg_sleep(600), '{value}' as api_key"),
        daemon=True,
    )
    thread.start()
    time.sleep(1.5)  # older than the 1 s long_query of the test's config
    yield value
    with pg.admin() as admin:
        admin.execute("select pg_cancel_backend(%s)", (pid,))
    thread.join(10)
    conn.close()


def _ignore_cancel(conn: psycopg.Connection[Any], query: str) -> None:
    try:
        conn.execute(query)
    except psycopg.errors.QueryCanceled:
        pass


# Secrets of the spec (and one it does not know) the project's .env holds.
DOTENV_CANARIES = ("SUPABASE_JWT_SECRET", "SMTP_PASSWORD", "ADMIN_DASHBOARD_TOKEN",
                   "EXTRA_UNSPECIFIED")  # fmt: skip


def test_no_canary_reaches_the_page_the_json_or_the_state_store(
    pg: PgServer, migrated_db: str, tmp_path: Path, cli: Any, long_query: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    dotenv = {name: canary(name) for name in DOTENV_CANARIES}
    hook = f"CNRY-HOOK-{pysecrets.token_urlsafe(24)}"  # the webhook's credential, twice in it
    dotenv["ALERT_WEBHOOK_URL"] = f"https://empire:{hook}@hooks.example.invalid/services/{hook}"
    write_env(tmp_path / ".env", render_dotenv(dotenv))
    # The database's password is a canary too (a real role's, so the build connects).
    db_password = f"CNRYdbpw{pysecrets.token_hex(12)}"  # URL-safe: it sits in a DSN
    dbname = migrated_db.split("?", 1)[0].rsplit("/", 1)[1]
    dsn = pg.login_role("dash_canary", "superuser", dbname=dbname, password=db_password)
    canaries = {**dotenv, "webhook token": hook, "DB_PASSWORD": db_password,
                "query literal": long_query}  # fmt: skip
    config = demo_config(tmp_path, dsn, pg.dsn(), monkeypatch,
                         '\n[dashboard]\nlong_query = "1s"\n')  # fmt: skip
    seed_backups_and_drills(cli, backups=1, drills=0)
    # After the seed (it wants empty tables), and newer than its rows, so the page shows it.
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "insert into public.error_logs (occurred_at, severity, source, message) "
            "values (now() + interval '5 years', 'error', %s, %s)",
            ("smtp", f"login failed with password {canaries['SMTP_PASSWORD']}"),
        )
    build_dashboard(config)
    built = build_dashboard(config)

    page, data = built.html.read_text(), built.json.read_text()
    # The build saw what the canaries were put into (so the search below means something).
    assert "pg_sleep(?), ? as api_key" in page and "DB_LONG_QUERY" in data
    assert "login failed with password [REDACTED]" in page
    snapshot = json.loads(data)
    sources = {r["name"]: r["source"] for r in snapshot["parts"]["secrets"]["items"]}
    for name in dotenv:
        assert sources[name] == "dotenv", (name, sources.get(name))
    assert snapshot["parts"]["alerts"]["channels"]["webhook"].startswith("on: https://hooks")
    store = store_path(config)
    blobs = {str(p.relative_to(tmp_path)): p.read_bytes()
             for p in (built.html, built.json, store, store.with_name(store.name + "-wal"))
             if p.exists()}  # fmt: skip
    assert str(store.relative_to(tmp_path)) in blobs
    leaks = find_leaks(canaries, blobs)
    assert leaks == [], "canaries leaked:\n" + "\n".join(leaks)


def test_the_leak_search_sees_every_form() -> None:
    value = canary("SELF")
    for text in (value, quote(value, safe=""), json.dumps(value), str(markupsafe.escape(value)),
                 base64.b64encode(b"x" + value.encode()).decode()):  # fmt: skip
        assert find_leaks({"c": value}, {"t": f"..{text}..".encode()}), text
    assert not find_leaks({"c": value}, {"t": b"[REDACTED]"})
    assert len(leak_forms(value)) > 6
