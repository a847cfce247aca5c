"""Helpers of the dashboard's end-to-end tests: a real chromium, a demo project, leak search.

The browser is Debian's chromium (``/usr/bin/chromium``) driven by Playwright;
``playwright install`` is never run (DESIGN.md, "Real services in tests").
Missing chromium is skipped with its reason on a laptop and fails under
``CI=true``, as every other service does (:func:`tests.conftest.require_service`).

A demo project is a real one: a migrated database filled by ``db seed-demo``,
backups taken by ``backup run``, drills run by ``drill run``, then
``dashboard build`` (through :func:`dashboards.render.build_dashboard`).
"""

from __future__ import annotations

import html
import importlib.util
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import markupsafe
import pytest

from ops.config import Config, load_config
from tests.conftest import REPO, require_service
from tests.helpers import encoded_forms, write_config

CHROMIUM = Path("/usr/bin/chromium")
# Headless chromium as root in a container: root cannot use chromium's sandbox
# (no user namespaces for it), and a container's /dev/shm is often 64 MB, too
# small for the renderer's shared memory (it then crashes on a long page); a
# headless machine has no GPU to probe.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Every section the page has, in order, and the banner above them.
SECTIONS = (
    "findings", "secrets", "migrations", "database", "security", "backups", "drills", "alerts",
    "logs", "scheduler",
)  # fmt: skip
# The drill restores on the session's server (not an embedded one of the project).
DEMO_CONFIG = '[backup.drill]\ndsn_secret = "DRILL_DATABASE_URL"\n'


def artifacts_dir() -> Path:
    """Where tests keep what a person may want to look at: ``$EMPIRE_TEST_ARTIFACTS``
    (default ``<repo>/.artifacts``), created when missing."""
    folder = Path(os.environ.get("EMPIRE_TEST_ARTIFACTS") or REPO / ".artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- the browser ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright's sync API (one for the session)."""
    require_service(
        CHROMIUM.exists(), f"chromium not found at {CHROMIUM} (apt-get install chromium)"
    )
    require_service(
        importlib.util.find_spec("playwright") is not None,
        "playwright is not installed (pip install -e '.[test]')",
    )
    from playwright.sync_api import sync_playwright

    driver = sync_playwright().start()
    try:
        browser = driver.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
    finally:
        driver.stop()


@dataclass
class Watch:
    """What a page did while open: console errors, uncaught errors, requests, dialogs."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    routed_away: list[str] = field(default_factory=list)  # any request not for the page itself
    dialogs: list[str] = field(default_factory=list)

    def assert_quiet(self) -> None:
        """No error in the console, no script error, no request but the page's own file."""
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.requests == [self.url], self.requests
        assert self.routed_away == [], self.routed_away
        assert self.dialogs == [], self.dialogs


@contextmanager
def open_page(browser: Any, page_file: Path, viewport: Mapping[str, int]) -> Iterator[Any]:
    """``page_file`` opened in a new context of ``viewport``; yields ``(page, watch)``.

    Every request other than the page's own file is recorded and aborted, so
    a page that tried to fetch something is seen even if its CSP had let it.
    """
    url = page_file.resolve().as_uri()
    watch = Watch(url)
    context = browser.new_context(viewport=dict(viewport))
    try:
        page = context.new_page()

        def on_console(message: Any) -> None:
            if message.type == "error":
                watch.console_errors.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda e: watch.page_errors.append(str(e)))
        page.on("request", lambda r: watch.requests.append(r.url))

        def on_dialog(dialog: Any) -> None:
            watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)

        def route(r: Any) -> None:
            if r.request.url == url:
                r.continue_()
            else:
                watch.routed_away.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(url, wait_until="load")
        yield page, watch
    finally:
        context.close()


def fits_width(page: Any) -> bool:
    """The page does not scroll sideways (wide tables scroll inside their ``.scroll``)."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


# -- a demo project ----------------------------------------------------------------------
def demo_config(
    tmp_path: Path, dsn: str, drill_dsn: str, monkeypatch: pytest.MonkeyPatch, extra: str = ""
) -> Config:
    """The project in ``tmp_path`` on ``dsn`` (drills restore through ``drill_dsn``)."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("DRILL_DATABASE_URL", drill_dsn)
    return load_config(write_config(tmp_path, DEMO_CONFIG + extra))


def seed_backups_and_drills(cli: Any, backups: int, drills: int) -> None:
    """``db seed-demo`` (small), then ``backup run`` and ``drill run`` that many times each."""
    steps: list[tuple[str, ...]] = [("db", "seed-demo", "--scale", "0.1", "--yes")]
    steps += [("backup", "run")] * backups + [("drill", "run")] * drills
    for args in steps:
        result = cli(*args)
        assert result.exit_code == 0, f"{' '.join(args)}: {result.output}"


# -- leaks ---------------------------------------------------------------------------------
def leak_forms(value: str) -> set[str]:
    """:func:`tests.helpers.encoded_forms`, and the value as HTML escapes it (Jinja2's and
    the standard library's, which differ on quotes)."""
    forms = encoded_forms(value)
    forms |= {str(markupsafe.escape(value)), html.escape(value), html.escape(value, quote=False)}
    return {f for f in forms if len(f) >= 12}


def find_leaks(canaries: Mapping[str, str], blobs: Mapping[str, bytes]) -> list[str]:
    """``"<where>: <canary name> (<form's start>…)"`` for each canary form found in a blob."""
    found = []
    for where, blob in blobs.items():
        text = blob.decode("utf-8", "replace")
        for name, value in canaries.items():
            found += [f"{where}: {name} ({f[:8]}…)" for f in leak_forms(value) if f in text]
    return found
