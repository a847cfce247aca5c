"""The schemas Supabase itself manages: one list, for every module that must leave them alone.

On a Supabase project these schemas belong to the platform (GoTrue, Storage,
Realtime, pg_graphql, Vault, pg_cron, pg_net, pgsodium, the CLI's history,
the poolers, the analytics and realtime internals). Supabase leaves them out
of a user's dump, and empire-ops treats them the same way: ``migrate check``
never reports what is in them, ``migrate heal`` never touches them, and backup
code leaves them out. No import beyond the standard library, so any module
(preflight included) can use it without cost.
"""

from __future__ import annotations

SUPABASE_SCHEMAS: tuple[str, ...] = (
    "auth",
    "storage",
    "realtime",
    "extensions",
    "graphql",
    "graphql_public",
    "vault",
    "cron",
    "net",
    "pgsodium",
    "pgsodium_masks",
    "supabase_functions",
    "supabase_migrations",
    "pgbouncer",
    "pgmq",
    "_analytics",
    "_realtime",
    "_supavisor",
)
"""Supabase's own schemas, as Supabase's ``db dump`` excludes them from a user dump."""

SYSTEM_SCHEMAS: tuple[str, ...] = ("pg_catalog", "information_schema", "pg_toast")
"""PostgreSQL's own schemas (where ``plpgsql`` lives), equally not the user's or ours."""


def is_supabase_schema(schema: str) -> bool:
    """True for a schema Supabase manages (see :data:`SUPABASE_SCHEMAS`)."""
    return schema in SUPABASE_SCHEMAS


def is_platform_schema(schema: str) -> bool:
    """True for a schema that belongs to Supabase or to PostgreSQL itself."""
    return schema in SUPABASE_SCHEMAS or schema in SYSTEM_SCHEMAS
