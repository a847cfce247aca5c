"""Fixtures of the migration tests: targets, the small extension-free migration set."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ops import db
from ops.target import DatabaseTarget

MINI = Path(__file__).resolve().parent / "fixtures" / "mini"


def target_for(dsn: str) -> DatabaseTarget:
    """A DatabaseTarget for a test database."""
    return DatabaseTarget(dsn=dsn, embedded=False, options=db.ConnectOptions(), source="test")


@pytest.fixture
def mini_dir(tmp_path: Path) -> Path:
    """A private copy of the small migration set (tests may edit, add or delete files)."""
    dest = tmp_path / "mini"
    shutil.copytree(MINI, dest)
    return dest


def history_counts(dsn: str) -> tuple[int, int]:
    """(rows in Supabase's schema_migrations, rows in ops.migration_history)."""
    with psycopg.connect(dsn) as conn:
        out = []
        for table in ("supabase_migrations.schema_migrations", "ops.migration_history"):
            row = conn.execute(f"select count(*) from {table}").fetchone()
            out.append(int(row[0]) if row else 0)
        return out[0], out[1]


@pytest.fixture
def write_migration(mini_dir: Path) -> Callable[[str, str], Path]:
    """Add a migration file to the private set: ``write_migration(filename, text)``."""

    def write(name: str, text: str) -> Path:
        path = mini_dir / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def migrated_conn(migrated_db: str) -> Iterator[Any]:
    """An autocommit connection (``ops.db.connect``) to a fresh migrated database."""
    conn = db.connect(migrated_db, autocommit=True)
    yield conn
    conn.close()
