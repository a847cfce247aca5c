"""Demo data: every table filled, constraints and joins hold, same seed same rows, safe re-runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ops.config import load_config
from ops.db import ConnectOptions
from ops.errors import DatabaseError
from ops.findings import Severity
from ops.seed import (
    SchemaNotReady,
    SeedRefused,
    guard_target,
    seed_demo,
    seed_demo_if_empty,
    step_demo,
)
from ops.seed.generators import BASE_COUNTS, EVENT_TABLES, SEEDED, TABLE_NAMES, counts_for
from ops.target import DatabaseTarget
from ops.up import UpState

SMALL = 0.05
PUBLIC_READ = {
    "offers": "active",
    "products": "active",
    "blogs": "published",
    "quizzes": "published",
    "translations": "published",
}


def _scalar(dsn: str, query: str) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return row[0]


def _relation(label: str) -> str:
    """A seeded table's label (``users``, ``empire_private.user_credentials``) as SQL."""
    return label if "." in label else f"public.{label}"


def _fingerprints(dsn: str) -> dict[str, str]:
    """md5 of every seeded table's full content, rows in a fixed order."""
    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(
                f"select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) "
                f"from {_relation(t)} x"
            ).fetchone()[0]  # type: ignore[index]
            for t in SEEDED
        }


def _counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(f"select count(*) from {_relation(t)}").fetchone()[0]  # type: ignore[index]
            for t in SEEDED
        }


def test_the_schema_has_exactly_the_tables_we_seed(migrated_db: str) -> None:
    # A table added by a later migration must get a generator too.
    with psycopg.connect(migrated_db) as conn:
        rows = conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition"
        ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(TABLE_NAMES)
    assert len(TABLE_NAMES) == 29
    # ...and the credentials, which live apart from the API (decision 0008).
    assert set(SEEDED) - set(TABLE_NAMES) == {"empire_private.user_credentials"}


def test_every_table_gets_rows_and_the_report_matches(migrated_db: str) -> None:
    report = seed_demo(migrated_db, scale=SMALL, seed=1)
    counts = _counts(migrated_db)
    assert all(n > 0 for n in counts.values()), counts
    assert {t.table: t.rows for t in report.tables} == counts
    assert counts["users"] == counts_for(SMALL)["users"] == round(BASE_COUNTS["users"] * SMALL)
    assert counts["empire_private.user_credentials"] == counts["users"]
    assert report.bytes > 0 and all(t.bytes > 0 for t in report.tables)
    assert report.event_months  # the migration created monthly partitions


def test_foreign_keys_join_and_values_are_realistic(migrated_db: str) -> None:
    seed_demo(migrated_db, scale=SMALL)
    with psycopg.connect(migrated_db) as conn:

        def one(query: str) -> Any:
            return conn.execute(query).fetchone()[0]  # type: ignore[index]

        # Every purchase names an existing product, and its price.
        assert one(
            "select count(*) from purchases p join products pr on pr.id = p.product_id"
        ) == one("select count(*) from purchases")
        assert (
            one(
                "select count(*) from purchases p join products pr on pr.id = p.product_id "
                "where p.amount <> pr.price"
            )
            == 0
        )
        # A/B assignments point at a variant of their own test.
        assert one(
            "select count(*) from ab_assignments a "
            "join ab_variants v on v.id = a.variant_id and v.test_id = a.test_id"
        ) == one("select count(*) from ab_assignments")
        # Signed-in events belong to users; sessions carry their user.
        assert one(
            "select count(*) from analytics_events e join users u on u.id = e.user_id"
        ) == one("select count(*) from analytics_events where user_id is not null")
        assert one(
            "select count(*) from analytics_events e join user_sessions s "
            "on s.session_id = e.session_id and s.user_id is not distinct from e.user_id"
        ) == one("select count(*) from analytics_events")
        assert one("select count(*) from blogs where vector_embedding is not null") >= 1
        assert (
            one(
                "select count(*) from memory_nodes "
                "where abs(extensions.vector_norm(vector_embedding) - 1) < 0.01"
            )
            >= 1
        )
        # Timestamps come from the fixed epoch, not the clock.
        assert one("select min(created_at) >= '2026-01-01' from users")


def test_event_rows_fill_monthly_partitions_and_the_default_one(migrated_db: str) -> None:
    seed_demo(migrated_db, scale=0.2)
    with psycopg.connect(migrated_db) as conn:
        for table in EVENT_TABLES:
            rows = conn.execute(
                f"select tableoid::regclass::text, count(*) from public.{table} group by 1"
            ).fetchall()
            by_part = dict(rows)
            assert by_part[f"{table}_default"] > 0, table
            monthly = {k: v for k, v in by_part.items() if not k.endswith("_default")}
            assert monthly and sum(monthly.values()) > by_part[f"{table}_default"], by_part


def test_published_rows_are_readable_by_anon_and_write_only_logs_are_not(migrated_db: str) -> None:
    seed_demo(migrated_db, scale=SMALL)
    with psycopg.connect(migrated_db) as conn:
        conn.execute("set role anon")
        for table, status in PUBLIC_READ.items():
            seen = conn.execute(
                f"select count(*), count(*) filter (where status = %s) from {table}", (status,)
            ).fetchone()
            assert seen is not None and seen[0] > 0 and seen[0] == seen[1], table
        assert conn.execute("select count(*) from analytics_events").fetchone() == (0,)
        assert conn.execute("select count(*) from users").fetchone() == (0,)


def test_same_seed_same_rows_other_seed_other_rows(
    migrated_db_factory: Callable[[], str],
) -> None:
    a, b, c = migrated_db_factory(), migrated_db_factory(), migrated_db_factory()
    seed_demo(a, scale=SMALL, seed=42)
    seed_demo(b, scale=SMALL, seed=42)
    seed_demo(c, scale=SMALL, seed=43)
    fa, fb, fc = _fingerprints(a), _fingerprints(b), _fingerprints(c)
    assert fa == fb
    assert all(fa[t] != fc[t] for t in SEEDED), [t for t in SEEDED if fa[t] == fc[t]]


def test_a_non_empty_database_is_refused_and_left_alone_unless_truncate(migrated_db: str) -> None:
    seed_demo(migrated_db, scale=SMALL, seed=5)
    before = _fingerprints(migrated_db)
    with pytest.raises(SeedRefused, match="already holds data") as caught:
        seed_demo(migrated_db, scale=SMALL, seed=6)
    assert caught.value.exit_code == 2 and "--truncate" in (caught.value.hint or "")
    assert _fingerprints(migrated_db) == before

    report = seed_demo(migrated_db, scale=SMALL, seed=6, truncate=True)
    assert report.truncated
    after = _fingerprints(migrated_db)
    assert after != before
    assert _counts(migrated_db) == {t.table: t.rows for t in report.tables}


def test_a_failure_midway_leaves_nothing_behind(migrated_db: str) -> None:
    # error_logs is loaded last: make it reject every row.
    with psycopg.connect(migrated_db) as conn:
        conn.execute("alter table error_logs add constraint no_rows check (false) not valid")
    with pytest.raises(DatabaseError, match="error_logs"):
        seed_demo(migrated_db, scale=SMALL)
    assert set(_counts(migrated_db).values()) == {0}


def test_a_database_without_the_schema_is_refused(fresh_db: str) -> None:
    with pytest.raises(SchemaNotReady, match="not applied") as caught:
        seed_demo(fresh_db, scale=SMALL)
    assert "migrate up" in (caught.value.hint or "")


def test_scale_must_be_positive(migrated_db: str) -> None:
    with pytest.raises(SeedRefused, match="scale"):
        seed_demo(migrated_db, scale=0)


def test_up_demo_seeds_once(migrated_db: str) -> None:
    first = seed_demo_if_empty(migrated_db)
    assert first is not None and first.rows > 0
    before = _fingerprints(migrated_db)
    assert seed_demo_if_empty(migrated_db) is None
    assert _fingerprints(migrated_db) == before


@pytest.mark.parametrize(
    ("embedded", "env", "yes", "allowed"),
    [
        (True, "dev", False, True),
        (True, "prod", False, False),
        (False, "dev", False, False),
        (False, "prod", True, True),
    ],
)
def test_guard_target(embedded: bool, env: str, yes: bool, allowed: bool) -> None:
    masked = "postgresql://app:****@db.example.com:5432/empire"
    if allowed:
        guard_target(masked, embedded=embedded, env=env, yes=yes)
    else:
        with pytest.raises(SeedRefused, match=r"\*\*\*\*") as caught:
            guard_target(masked, embedded=embedded, env=env, yes=yes)
        assert "--yes" in (caught.value.hint or "")


def test_cli_seed_demo(cli: Any, migrated_db: str, pg: Any) -> None:
    # A DSN holding the real password, which must never be shown.
    dsn = migrated_db.replace("postgres@", f"postgres:{pg.password}@")
    env = {"DATABASE_URL": dsn}
    refused = cli("db", "seed-demo", "--scale", str(SMALL), env=env)
    assert refused.exit_code == 2
    assert "postgres:****@127.0.0.1" in refused.output and "--yes" in refused.output
    assert _counts(migrated_db)["users"] == 0

    done = cli("db", "seed-demo", "--scale", str(SMALL), "--yes", "--json", env=env)
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    rows, tables = data["data"]["rows"], data["data"]["tables"]
    assert rows == sum(_counts(migrated_db).values()) and len(tables) == len(SEEDED) == 30
    assert pg.password not in done.output

    again = cli("db", "seed-demo", "--scale", str(SMALL), "--yes", env=env)
    assert again.exit_code == 2 and "--truncate" in again.output

    truncated = cli("db", "seed-demo", "--scale", str(SMALL), "--yes", "--truncate", env=env)
    assert truncated.exit_code == 0, truncated.output
    assert "total" in truncated.stdout


def test_rows_empire_ops_logged_itself_do_not_count_as_data(
    migrated_db_factory: Callable[[], str],
) -> None:
    insert = "insert into admin_logs (action, actor_id) values ('index.create', %s)"
    healed, used = migrated_db_factory(), migrated_db_factory()
    with psycopg.connect(healed) as conn:
        conn.execute(insert, ("empire-ops",))  # what `migrate heal` records
    assert seed_demo(healed, scale=SMALL).rows > 0

    with psycopg.connect(used) as conn:
        conn.execute(insert, ("alice",))
    with pytest.raises(SeedRefused, match=r"\(in admin_logs\)"):
        seed_demo(used, scale=SMALL)


def _up_state(dsn: str, *, embedded: bool, env: str = "dev") -> UpState:
    target = DatabaseTarget(dsn=dsn, embedded=embedded, options=ConnectOptions(), source="test")
    return UpState(config=load_config(None, env), target=target)


def test_up_demo_step_seeds_the_embedded_database_once(migrated_db: str) -> None:
    first = step_demo(_up_state(migrated_db, embedded=True))
    assert [f.code for f in first] == ["DEMO_SEEDED"] and first[0].severity == Severity.OK
    again = step_demo(_up_state(migrated_db, embedded=True))
    assert [(f.code, f.severity) for f in again] == [("DEMO_SKIPPED", Severity.INFO)]


@pytest.mark.parametrize(("embedded", "env"), [(False, "dev"), (True, "prod")])
def test_up_demo_step_leaves_other_targets_alone(
    migrated_db: str, embedded: bool, env: str
) -> None:
    found = step_demo(_up_state(migrated_db, embedded=embedded, env=env))
    assert [f.code for f in found] == ["DEMO_SKIPPED"] and "--yes" in found[0].message
    assert set(_counts(migrated_db).values()) == {0}


def test_an_autocommit_connection_still_gets_one_transaction(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        conn.execute("alter table error_logs add constraint no_rows check (false) not valid")
    with psycopg.connect(migrated_db, autocommit=True, row_factory=dict_row) as conn:
        with pytest.raises(DatabaseError):
            seed_demo(conn, scale=SMALL)
        assert conn.execute("select count(*) as n from users").fetchone() == {"n": 0}
        conn.execute("alter table error_logs drop constraint no_rows")
        assert seed_demo(conn, scale=SMALL).rows > 0
    assert all(n > 0 for n in _counts(migrated_db).values())


def test_row_counts_grow_linearly_with_the_scale() -> None:
    one, hundred = counts_for(1), counts_for(100)
    assert all(hundred[t] == 100 * one[t] for t in TABLE_NAMES)
    assert sum(hundred.values()) > 1_500_000
    assert min(counts_for(0.001).values()) == 1
