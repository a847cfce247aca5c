"""The runner on the system PostgreSQL 15 (Supabase's major), which has no pgvector."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ops.migrate.apply import apply_all_to, migrate_up
from ops.migrate.errors import ExtensionUnavailable
from ops.migrate.files import load_migrations
from ops.migrate.revert import migrate_down
from ops.migrate.status import migration_status
from tests.conftest import _cloned_db

from .conftest import history_counts, target_for

pytestmark = pytest.mark.pg15


@pytest.fixture
def pg15_db(pg15) -> Iterator[str]:  # type: ignore[no-untyped-def]
    yield from _cloned_db(pg15, None, "mig15_")


def test_shipped_schema_on_pg15_fails_clearly_on_vector(pg15_db: str) -> None:
    with pytest.raises(ExtensionUnavailable) as err:
        apply_all_to(pg15_db)
    assert err.value.extension == "vector"
    assert "20260101000100_extension_vector.sql" in err.value.message
    assert "`vector` is not available" in err.value.message
    assert "pgvector" in (err.value.hint or "")
    # The bootstrap before it applied; the vector file left no trace.
    with psycopg.connect(pg15_db) as conn:
        versions = conn.execute("select version from supabase_migrations.schema_migrations")
        assert [r[0] for r in versions] == ["20260101000000"]


def test_runner_on_pg15_with_an_extension_free_set(pg15_db: str, mini_dir: Path) -> None:
    migs = load_migrations([mini_dir])
    target = target_for(pg15_db)
    assert migration_status(target, None, migs).exit_code == 1
    assert len(migrate_up(target, None, migrations=migs).steps) == 3
    assert migration_status(target, None, migs).exit_code == 0
    with psycopg.connect(pg15_db) as conn:
        rows = conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations"
        ).fetchall()
        valid = conn.execute(
            "select indisvalid from pg_index where indexrelid = 'public.items_code_uq'::regclass"
        ).fetchone()
    assert len(rows) == 3 and valid == (True,)
    migrate_down(target, None, to="0", migrations=migs)
    assert history_counts(pg15_db) == (0, 6)
    assert len(migrate_up(target, None, migrations=migs).steps) == 3
