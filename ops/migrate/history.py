"""The two history tables: Supabase CLI's own, and the runner's side table.

``supabase_migrations.schema_migrations(version text primary key, statements
text[], name text)`` is written exactly as Supabase CLI writes it, so ``supabase
migration list`` keeps working; extra columns a hosted project may have are
left alone. The side table ``<history_schema>.migration_history`` is a log:
one row per up or down, with the sha256 checksum, who ran it, how long it took,
whether it succeeded and the down SQL (so a file deleted later can still be
reverted). The applied set is Supabase's table; the side table adds detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ops import db
from ops.migrate.files import Migration

SUPABASE_SCHEMA = "supabase_migrations"
SUPABASE_TABLE = "schema_migrations"
SIDE_TABLE = "migration_history"


@dataclass(frozen=True)
class AppliedRow:
    """An applied migration as the database remembers it."""

    version: str
    name: str | None
    checksum: str | None
    applied_at: datetime | None
    applied_by: str | None
    down_sql: str | None
    no_transaction: bool
    statements: list[str] | None = None
    by_runner: bool = True

    @property
    def by_cli(self) -> bool:
        """True for a row only Supabase CLI wrote: no empire-ops log, so no checksum."""
        return not self.by_runner


@dataclass(frozen=True)
class FailedRow:
    """A no-transaction migration whose last attempt failed part-way."""

    version: str
    name: str
    applied_at: datetime
    error: str | None


def ensure_history(conn: db.Connection[Any], schema: str) -> None:
    """Create both history tables when missing (like Supabase CLI: add columns if absent).

    Call it under the migrate lock: concurrent ``create schema if not exists``
    can race on the catalog's unique index.
    """
    # Only touch DDL when something is missing: a role that may write rows but
    # not create schemas (a managed project) then still works.
    ready = db.run_query(
        conn,
        "select count(*) = 2 as ok from pg_attribute "
        "where attrelid = to_regclass('supabase_migrations.schema_migrations') "
        "and attname in ('statements', 'name') and not attisdropped "
        "and to_regclass(%s) is not null",
        (f"{schema}.{SIDE_TABLE}",),
    )
    if ready and ready[0]["ok"]:
        return
    side = db.Identifier(schema)
    with db.transaction(conn):
        db.run_query(conn, "create schema if not exists supabase_migrations")
        db.run_query(
            conn,
            "create table if not exists supabase_migrations.schema_migrations "
            "(version text not null primary key)",
        )
        db.run_query(
            conn,
            "alter table supabase_migrations.schema_migrations "
            "add column if not exists statements text[]",
        )
        db.run_query(
            conn,
            "alter table supabase_migrations.schema_migrations add column if not exists name text",
        )
        db.run_query(conn, db.SQL("create schema if not exists {}").format(side))
        db.run_query(
            conn,
            db.SQL(
                """
                create table if not exists {}.migration_history (
                  id bigint generated always as identity primary key,
                  version text not null,
                  name text not null,
                  direction text not null check (direction in ('up', 'down')),
                  checksum text,
                  applied_by text not null,
                  applied_at timestamptz not null default now(),
                  duration_ms integer not null,
                  success boolean not null,
                  no_transaction boolean not null default false,
                  down_sql text,
                  error text
                )
                """
            ).format(side),
        )
        db.run_query(
            conn,
            db.SQL(
                "create index if not exists migration_history_version_idx "
                "on {}.migration_history (version, id)"
            ).format(side),
        )


def _exists(conn: db.Connection[Any], qualified: str) -> bool:
    rows = db.run_query(conn, "select to_regclass(%s) is not null as present", (qualified,))
    return bool(rows and rows[0]["present"])


def read_applied(conn: db.Connection[Any], schema: str) -> dict[str, AppliedRow]:
    """Applied migrations by version (empty when the history tables do not exist yet)."""
    if not _exists(conn, f"{SUPABASE_SCHEMA}.{SUPABASE_TABLE}"):
        return {}
    columns = {
        r["attname"]
        for r in db.run_query(
            conn,
            "select attname from pg_attribute where attrelid = to_regclass(%s) "
            "and attname in ('name', 'statements') and not attisdropped",
            (f"{SUPABASE_SCHEMA}.{SUPABASE_TABLE}",),
        )
    }
    name_col = db.SQL("s.name") if "name" in columns else db.SQL("null::text")
    stmts = db.SQL("s.statements") if "statements" in columns else db.SQL("null::text[]")
    if _exists(conn, f"{schema}.{SIDE_TABLE}"):
        query = db.SQL(
            """
            select s.version, {name} as name, h.checksum, h.applied_at, h.applied_by,
                   h.down_sql, coalesce(h.no_transaction, false) as no_transaction,
                   {stmts} as statements, h.applied_at is not null as by_runner
            from supabase_migrations.schema_migrations s
            left join lateral (
              select checksum, applied_at, applied_by, down_sql, no_transaction
              from {side}.migration_history h
              where h.version = s.version and h.direction = 'up' and h.success
              order by h.id desc limit 1
            ) h on true
            """
        ).format(name=name_col, stmts=stmts, side=db.Identifier(schema))
    else:
        query = db.SQL(
            "select s.version, {name} as name, null::text as checksum, "
            "null::timestamptz as applied_at, null::text as applied_by, "
            "null::text as down_sql, false as no_transaction, {stmts} as statements, "
            "false as by_runner from supabase_migrations.schema_migrations s"
        ).format(name=name_col, stmts=stmts)
    rows = db.run_query(conn, query.as_string(conn))
    return {str(r["version"]): AppliedRow(**{**r, "version": str(r["version"])}) for r in rows}


def rebuild_ledger(conn: db.Connection[Any], schema: str) -> list[str]:
    """Record in Supabase CLI's table every migration the side table says is applied (its
    latest successful entry an ``up``), creating the table if needed; rows already there
    are kept. Returns those versions, oldest first (none without a side table).

    For a restored database: its dump held the side table but not Supabase's
    schema. Call it with ``conn`` in autocommit (one transaction is opened here).
    """
    if not _exists(conn, f"{schema}.{SIDE_TABLE}"):
        return []
    applied = db.run_query(
        conn,
        db.SQL(
            "select version, name from (select distinct on (version) version, name, direction "
            "from {}.migration_history where success order by version, id desc) h "
            "where direction = 'up' order by version"
        ).format(db.Identifier(schema)),
    )
    if applied:
        ensure_history(conn, schema)
        with db.transaction(conn):
            for row in applied:
                db.run_query(
                    conn,
                    "insert into supabase_migrations.schema_migrations (version, name) "
                    "values (%s, %s) on conflict (version) do nothing",
                    (row["version"], row["name"]),
                )
    return [str(row["version"]) for row in applied]


def read_failed(conn: db.Connection[Any], schema: str) -> dict[str, FailedRow]:
    """No-transaction migrations whose latest attempt failed and that are not applied."""
    if not _exists(conn, f"{schema}.{SIDE_TABLE}"):
        return {}
    query = db.SQL(
        """
        select distinct on (h.version) h.version, h.name, h.applied_at, h.error, h.success
        from {}.migration_history h
        where h.direction = 'up'
        order by h.version, h.id desc
        """
    ).format(db.Identifier(schema))
    out: dict[str, FailedRow] = {}
    for r in db.run_query(conn, query.as_string(conn)):
        if not r["success"]:
            out[r["version"]] = FailedRow(r["version"], r["name"], r["applied_at"], r["error"])
    return out


def record_up(
    conn: db.Connection[Any], schema: str, mig: Migration, *, actor: str, duration_ms: int
) -> None:
    """Write both history rows of an applied migration (in the caller's transaction)."""
    db.run_query(
        conn,
        "insert into supabase_migrations.schema_migrations (version, name, statements) "
        "values (%s, %s, %s)",
        (mig.version, mig.name, [s.sql for s in mig.up_statements]),
    )
    _side_row(
        conn, schema, mig.version, mig.name, "up", mig.checksum, actor, duration_ms, True,
        mig.no_transaction, mig.down_sql, None,
    )  # fmt: skip


def record_down(
    conn: db.Connection[Any],
    schema: str,
    version: str,
    name: str,
    checksum: str | None,
    *,
    actor: str,
    duration_ms: int,
) -> None:
    """Remove the applied row and log the revert (in the caller's transaction)."""
    db.run_query(
        conn, "delete from supabase_migrations.schema_migrations where version = %s", (version,)
    )
    _side_row(
        conn, schema, version, name, "down", checksum, actor, duration_ms, True, False, None, None
    )


def record_failure(
    conn: db.Connection[Any],
    schema: str,
    mig: Migration,
    *,
    actor: str,
    duration_ms: int,
    error: str,
) -> None:
    """Log a no-transaction migration that failed part-way (its earlier statements stay)."""
    _side_row(
        conn, schema, mig.version, mig.name, "up", mig.checksum, actor, duration_ms, False, True,
        None, error,
    )  # fmt: skip


def _side_row(
    conn: db.Connection[Any],
    schema: str,
    version: str,
    name: str,
    direction: str,
    checksum: str | None,
    actor: str,
    duration_ms: int,
    success: bool,
    no_transaction: bool,
    down_sql: str | None,
    error: str | None,
) -> None:
    db.run_query(conn,
        db.SQL(
            "insert into {}.migration_history (version, name, direction, checksum, applied_by, "
            "duration_ms, success, no_transaction, down_sql, error) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        ).format(db.Identifier(schema)),
        (
            version, name, direction, checksum, actor, duration_ms, success, no_transaction,
            down_sql, error,
        ),
    )  # fmt: skip
