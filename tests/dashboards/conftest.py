"""Shared fixtures of the dashboard tests: a project on a real, migrated database."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.config import Config, load_config
from tests.helpers import write_config


@pytest.fixture
def dashboard_config(tmp_path: Path, migrated_db: str, monkeypatch: pytest.MonkeyPatch) -> Config:
    """A project in ``tmp_path`` whose DATABASE_URL is a fresh migrated database (real server)."""
    monkeypatch.setenv("DATABASE_URL", migrated_db)
    return load_config(write_config(tmp_path, ""))
