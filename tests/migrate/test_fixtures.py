"""The shared migrated-database fixtures: every shipped migration applied, clone per test."""

from __future__ import annotations

import psycopg

from ops.migrate.files import load_migrations


def test_migrated_db_has_every_migration(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        versions = [
            r[0]
            for r in conn.execute(
                "select version from supabase_migrations.schema_migrations order by version"
            )
        ]
        hnsw = conn.execute(
            "select count(*) from pg_index i join pg_class c on c.oid = i.indexrelid "
            "where c.relname like 'idx_%_vector_embedding' and i.indisvalid"
        ).fetchone()
    assert versions == [m.version for m in load_migrations()]
    assert hnsw == (2,)
