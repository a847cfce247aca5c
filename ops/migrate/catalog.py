"""Read the live schema from pg_catalog in a constant number of queries.

:func:`read_catalog` returns a :class:`Catalog`: every table of the owned
schemas (``public`` and ``empire_private``) with its columns, indexes,
constraints, triggers, RLS flags, policies and API-role grants (table and
column), what ``anon`` and ``authenticated`` can actually reach (for the
lints), plus the publications, extensions,
schemas, roles and functions the migrations create. It runs the same eight
statements whatever the number of tables (one per kind of object, never one
per table), so ``migrate check`` stays fast on a large schema.

Every query reads ``pg_catalog`` only (no version-specific columns beyond
PostgreSQL 13), so the same code works on PostgreSQL 15 and 18. The queries
run with ``search_path`` set to ``pg_catalog`` alone, so that every name in a
rendered definition (``pg_get_indexdef``, ``pg_get_expr``…) is
schema-qualified the same way whatever the caller's search path is.

The monthly partitions of the event tables (``<table>_pYYYYMM``) are dynamic:
they are created by ``create_event_partitions`` as months go by, so they are
left out (with their indexes, constraints, triggers and policies); the
``<table>_default`` partitions are kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ops import db
from ops.supabase_schemas import SUPABASE_SCHEMAS

PRIVATE_SCHEMA = "empire_private"
"""The Empire's schema for what the API must never reach (decision 0008): no API role uses it."""

OWNED_SCHEMAS = ("public", PRIVATE_SCHEMA)
"""Schemas whose every table, column, index… is compared with the manifest."""

EXISTENCE_SCHEMAS = ("auth", "extensions")
"""Schemas the migrations create objects in that are only checked for existence."""

API_ROLES = ("anon", "authenticated", "service_role")
"""The Supabase API roles whose grants are part of the manifest."""

CLIENT_ROLES = ("anon", "authenticated")
"""The roles a browser's key acts as: what they can reach is what anyone can reach."""

REALTIME_PUBLICATION = "supabase_realtime"

# PostgreSQL 17 added MAINTAIN to "ALL" table privileges; it is left out so a
# manifest made on PostgreSQL 18 matches the same migrations on Supabase's 15.
COMPARED_PRIVILEGES = ("DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE")

_DYNAMIC_PARTITION = re.compile(r"^(?P<parent>.+)_p\d{6}$")

_POLICY_COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}
_TRIGGER_STATES = {"O": "enabled", "D": "disabled", "R": "replica", "A": "always"}
_RELKINDS = {"r": "table", "p": "partitioned table"}
_CONTYPES = {"c": "check", "f": "foreign key", "p": "primary key", "u": "unique", "x": "exclusion"}

_Q_TABLES = """
select n.nspname as schema, c.relname as name, c.relkind::text as kind,
       c.relispartition as is_partition,
       c.relrowsecurity as rls_enabled, c.relforcerowsecurity as rls_forced,
       (select pn.nspname || '.' || pc.relname
          from pg_inherits h
          join pg_class pc on pc.oid = h.inhparent
          join pg_namespace pn on pn.oid = pc.relnamespace
         where h.inhrelid = c.oid limit 1) as parent,
       case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end as bound,
       (select coalesce(json_agg(json_build_array(r.rolname, a.privilege_type)), '[]'::json)
          from aclexplode(c.relacl) a join pg_roles r on r.oid = a.grantee
         where r.rolname = any(%(roles)s)) as grants,
       array(select r.rolname::text from pg_roles r
              where r.rolname = any(%(clients)s)
                and has_schema_privilege(r.oid, n.oid, 'USAGE')
                and (has_table_privilege(r.oid, c.oid, 'DELETE')
                     or has_any_column_privilege(r.oid, c.oid, 'SELECT, INSERT, UPDATE'))
              order by 1) as reachable_by,
       (select coalesce(json_agg(json_build_object(
                 'name', a.attname,
                 'type', format_type(a.atttypid, a.atttypmod),
                 'not_null', a.attnotnull,
                 'default', pg_get_expr(d.adbin, d.adrelid),
                 'identity', a.attidentity::text,
                 'generated', a.attgenerated::text,
                 'grants', (select coalesce(json_agg(json_build_array(r.rolname, x.privilege_type)),
                                            '[]'::json)
                              from aclexplode(a.attacl) x join pg_roles r on r.oid = x.grantee
                             where r.rolname = any(%(roles)s)),
                 'readable_by', array(select r.rolname::text from pg_roles r
                                       where r.rolname = any(%(clients)s)
                                         and has_schema_privilege(r.oid, n.oid, 'USAGE')
                                         and has_column_privilege(r.oid, c.oid, a.attnum, 'SELECT')
                                       order by 1)) order by a.attnum), '[]'::json)
          from pg_attribute a
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p')
"""

_Q_INDEXES = """
select n.nspname as schema, t.relname as table, ic.relname as name,
       pg_get_indexdef(i.indexrelid) as definition, i.indisvalid as valid,
       t.relkind::text as table_kind,
       exists (select 1 from pg_inherits h where h.inhrelid = i.indexrelid) as attached,
       (select co.conname from pg_constraint co
         where co.conindid = i.indexrelid and co.conrelid = i.indrelid
           and co.contype in ('p', 'u', 'x') limit 1) as constraint_name,
       array(select coalesce(a.attname::text, '')
               from unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) with ordinality k(num, ord)
               left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.num
              order by k.ord) as key_columns
  from pg_index i
  join pg_class ic on ic.oid = i.indexrelid
  join pg_class t on t.oid = i.indrelid
  join pg_namespace n on n.oid = t.relnamespace
 where n.nspname = any(%(schemas)s) and t.relkind in ('r', 'p')
"""

# contype 'n' (NOT NULL, stored as a constraint since PostgreSQL 18) is left
# out: nullability is compared on the columns, the same way on 15 and 18.
_Q_CONSTRAINTS = """
select n.nspname as schema, t.relname as table, co.conname as name, co.contype::text as type,
       pg_get_constraintdef(co.oid) as definition, co.convalidated as validated,
       not co.conislocal as inherited,
       array(select a.attname::text
               from unnest(co.conkey) with ordinality k(num, ord)
               join pg_attribute a on a.attrelid = co.conrelid and a.attnum = k.num
              order by k.ord) as columns
  from pg_constraint co
  join pg_class t on t.oid = co.conrelid
  join pg_namespace n on n.oid = t.relnamespace
 where n.nspname = any(%(schemas)s) and t.relkind in ('r', 'p') and co.contype <> 'n'
"""

_Q_TRIGGERS = """
select n.nspname as schema, c.relname as table, tg.tgname as name,
       pg_get_triggerdef(tg.oid) as definition, tg.tgenabled::text as enabled,
       tg.tgparentid <> 0 as inherited
  from pg_trigger tg
  join pg_class c on c.oid = tg.tgrelid
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p') and not tg.tgisinternal
"""

_Q_POLICIES = """
select n.nspname as schema, c.relname as table, p.polname as name, p.polcmd::text as cmd,
       p.polpermissive as permissive,
       array(select case when r = 0 then 'public' else pg_get_userbyid(r)::text end
               from unnest(p.polroles) r order by 1) as roles,
       pg_get_expr(p.polqual, p.polrelid) as using_expr,
       pg_get_expr(p.polwithcheck, p.polrelid) as check_expr
  from pg_policy p
  join pg_class c on c.oid = p.polrelid
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = any(%(schemas)s)
"""

_Q_PUBLICATIONS = """
select p.pubname as name, p.puballtables as all_tables,
       array(select pn.nspname || '.' || pc.relname
               from pg_publication_rel pr
               join pg_class pc on pc.oid = pr.prrelid
               join pg_namespace pn on pn.oid = pc.relnamespace
              where pr.prpubid = p.oid order by 1) as tables
  from pg_publication p
"""

# Functions that belong to an extension (deptype 'e') are the extension's, not ours.
_Q_OBJECTS = """
select 'extension' as kind, e.extname::text as name, n.nspname::text as detail
  from pg_extension e join pg_namespace n on n.oid = e.extnamespace
union all
select 'schema', nspname::text, null from pg_namespace where nspname = any(%(all_schemas)s)
union all
select 'role', rolname::text, null from pg_roles where rolname = any(%(roles)s)
union all
select 'function',
       n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       case when n.nspname = any(%(schemas)s) then json_build_object(
         'returns', pg_get_function_result(p.oid),
         'language', l.lanname,
         'security_definer', p.prosecdef,
         'volatility', p.provolatile::text,
         'config', coalesce(array_to_string(p.proconfig, ','), ''),
         'body_md5', md5(p.prosrc))::text end
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_language l on l.oid = p.prolang
 where n.nspname = any(%(all_schemas)s) and n.nspname <> 'extensions'
   and not exists (select 1 from pg_depend d
                    where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                      and d.deptype = 'e')
"""

QUERIES: tuple[str, ...] = (
    _Q_TABLES,
    _Q_INDEXES,
    _Q_CONSTRAINTS,
    _Q_TRIGGERS,
    _Q_POLICIES,
    _Q_PUBLICATIONS,
    _Q_OBJECTS,
)


@dataclass
class Catalog:
    """What :func:`read_catalog` saw. ``tables`` is keyed ``schema.name``.

    Each table is a dict in the manifest's shape (see :mod:`ops.migrate.manifest`);
    ``index_keys`` and ``fk_columns`` keep what the lints need but the manifest
    does not: the key columns of each index and the columns of each foreign key.
    """

    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    publications: dict[str, list[str]] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)
    schemas: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    functions: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    index_keys: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    fk_columns: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # What anon and authenticated can reach, whatever gives it to them (a table
    # or column grant, PUBLIC, a role membership), with USAGE on the schema:
    # the roles that may use each table, and that may SELECT each column.
    reachable_by: dict[str, list[str]] = field(default_factory=dict)
    readable_by: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    queries: int = 0


def is_dynamic_partition(name: str, parent: str | None) -> bool:
    """True for a monthly partition ``<parent>_pYYYYMM`` of ``parent`` (left out everywhere)."""
    m = _DYNAMIC_PARTITION.match(name)
    return m is not None and parent is not None and parent.split(".", 1)[1] == m.group("parent")


def read_catalog(
    conn: Any,
    *,
    schemas: Sequence[str] = OWNED_SCHEMAS,
    existence_schemas: Sequence[str] = EXISTENCE_SCHEMAS,
    roles: Sequence[str] = API_ROLES,
) -> Catalog:
    """Read the live schema with a fixed number of statements (``Catalog.queries``).

    ``conn`` is a connection from :func:`ops.db.connect` (autocommit or not). The
    reads run in a transaction (a savepoint inside the caller's) that is rolled
    back, so the caller's session settings are left as they were. Raises
    DatabaseError when a query fails, DatabaseUnreachable when the connection drops,
    ValueError when ``schemas`` names one of Supabase's own schemas (never ours
    to compare, see :mod:`ops.supabase_schemas`).
    """
    theirs = sorted(set(schemas) & set(SUPABASE_SCHEMAS))
    if theirs:
        raise ValueError(f"schemas {', '.join(theirs)} are Supabase's own, never compared")
    params = {
        "schemas": list(schemas),
        "all_schemas": sorted({*schemas, *existence_schemas}),
        "roles": list(roles),
        "clients": list(CLIENT_ROLES),
    }
    results: list[list[dict[str, Any]]] = []
    with db.scoped_search_path(conn, "pg_catalog"):
        for query in QUERIES:
            results.append(db.run_query(conn, query, params))
    tables, indexes, constraints, triggers, policies, publications, objects = results
    cat = Catalog(queries=len(QUERIES) + 1)  # +1: setting the search path
    _add_tables(cat, tables)
    _add_indexes(cat, indexes)
    _add_constraints(cat, constraints)
    _add_triggers(cat, triggers)
    _add_policies(cat, policies)
    for row in publications:
        members = ["*"] if row["all_tables"] else list(row["tables"])
        cat.publications[row["name"]] = sorted(members)
    _add_objects(cat, objects)
    return cat


def _add_tables(cat: Catalog, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if is_dynamic_partition(row["name"], row["parent"]):
            continue
        key = f"{row['schema']}.{row['name']}"
        table: dict[str, Any] = {
            "kind": _RELKINDS[row["kind"]],
            "rls_enabled": row["rls_enabled"],
            "rls_forced": row["rls_forced"],
            "columns": {c["name"]: _column(c) for c in row["columns"]},
            "indexes": {},
            "constraints": {},
            "triggers": {},
            "policies": {},
            "grants": _grants(row["grants"]),
        }
        # Column privileges only where some exist, so the manifest stays short.
        column_grants = {c["name"]: g for c in row["columns"] if (g := _grants(c["grants"]))}
        if column_grants:
            table["column_grants"] = column_grants
        cat.reachable_by[key] = list(row["reachable_by"])
        for c in row["columns"]:
            cat.readable_by[(key, c["name"])] = list(c["readable_by"])
        if row["is_partition"]:
            table["partition_of"] = row["parent"]
            table["partition_bound"] = row["bound"]
        cat.tables[key] = table


def _grants(pairs: list[list[str]]) -> dict[str, list[str]]:
    """``{role: [privileges]}`` (sorted) from aclexplode's (role, privilege) pairs."""
    grants: dict[str, list[str]] = {}
    for role, privilege in pairs:
        if privilege in COMPARED_PRIVILEGES:
            grants.setdefault(role, []).append(privilege)
    return {role: sorted(set(privs)) for role, privs in sorted(grants.items())}


def _column(c: dict[str, Any]) -> dict[str, Any]:
    col: dict[str, Any] = {"type": c["type"], "not_null": c["not_null"], "default": c["default"]}
    # Only when set, so the manifest stays short: identity 'a'/'d', generated 's'/'v'.
    if c["identity"]:
        col["identity"] = c["identity"]
    if c["generated"]:
        col["generated"] = c["generated"]
    return col


def _table(cat: Catalog, row: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    key = f"{row['schema']}.{row['table']}"
    return key, cat.tables.get(key)


def _add_indexes(cat: Catalog, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        key, table = _table(cat, row)
        if table is None:
            continue
        entry: dict[str, Any] = {"definition": row["definition"], "valid": row["valid"]}
        if row["constraint_name"]:
            entry["constraint"] = row["constraint_name"]
        if row["attached"]:
            entry["attached"] = True
        table["indexes"][row["name"]] = entry
        cat.index_keys[(key, row["name"])] = list(row["key_columns"])


def _add_constraints(cat: Catalog, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        key, table = _table(cat, row)
        if table is None:
            continue
        entry: dict[str, Any] = {
            "type": _CONTYPES.get(row["type"], row["type"]),
            "definition": row["definition"],
            "validated": row["validated"],
        }
        if row["inherited"]:
            entry["inherited"] = True
        table["constraints"][row["name"]] = entry
        if row["type"] == "f":
            cat.fk_columns[(key, row["name"])] = list(row["columns"])


def _add_triggers(cat: Catalog, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        _key, table = _table(cat, row)
        if table is None:
            continue
        entry: dict[str, Any] = {
            "definition": row["definition"],
            "enabled": _TRIGGER_STATES.get(row["enabled"], row["enabled"]),
        }
        if row["inherited"]:
            entry["inherited"] = True
        table["triggers"][row["name"]] = entry


def _add_policies(cat: Catalog, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        _key, table = _table(cat, row)
        if table is None:
            continue
        table["policies"][row["name"]] = {
            "command": _POLICY_COMMANDS.get(row["cmd"], row["cmd"]),
            "permissive": row["permissive"],
            "roles": list(row["roles"]),
            "using": row["using_expr"],
            "with_check": row["check_expr"],
        }


def _add_objects(cat: Catalog, rows: list[dict[str, Any]]) -> None:
    import json

    for row in rows:
        kind, name, detail = row["kind"], row["name"], row["detail"]
        if kind == "extension":
            cat.extensions[name] = detail
        elif kind == "schema":
            cat.schemas.append(name)
        elif kind == "role":
            cat.roles.append(name)
        else:
            cat.functions[name] = json.loads(detail) if detail else None
    cat.schemas.sort()
    cat.roles.sort()
