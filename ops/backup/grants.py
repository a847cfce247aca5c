"""The backup's grants, recorded in its manifest and put back after a restore.

pg_restore runs ``--no-privileges`` (the source's roles may not exist on the
target), so a restored object carries the target's default privileges, which
on Supabase grant everything to ``anon``, ``authenticated`` and
``service_role``. Restoring the dump's own ACLs would not help: pg_dump writes
GRANTs relative to the owner's defaults and never revokes what the target's
default privileges added. So the backup records, in its snapshot, every
grant on the objects it holds (schemas, tables, views, sequences, columns,
functions), and :func:`apply_grants` makes the restored objects carry exactly
those: every grant to anyone but the owner revoked, then the recorded ones
granted. It touches only the objects the backup restored.

Nothing from the manifest reaches SQL as text: names are identifiers,
privileges come from a fixed list, and functions are found on the target by
name and argument list, then named by the target's own ``regprocedure``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ops import db

PUBLIC = "PUBLIC"
# Every privilege GRANT knows (MAINTAIN from PostgreSQL 17): the allowlist for
# what a manifest may ask to grant.
PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN",
     "USAGE", "CREATE", "EXECUTE"}
)  # fmt: skip

# One row per object: (kind, schema, name, args, acl pairs, column acl pairs).
# acldefault() stands in for a NULL acl, so "never granted" reads as the
# defaults (e.g. EXECUTE to PUBLIC on a function). The owner's own entries are
# left out: after --no-owner the restoring role owns the copy.
_Q_GRANTS = """
with acl(kind, schema, name, args, owner, entries, columns) as (
  select 'SCHEMA', n.nspname, n.nspname, null::text, n.nspowner,
         coalesce(n.nspacl, acldefault('n', n.nspowner)), null::json
    from pg_namespace n where n.nspname = any(%(schemas)s)
  union all
  select case when c.relkind = 'S' then 'SEQUENCE' else 'TABLE' end, n.nspname, c.relname,
         null, c.relowner,
         coalesce(c.relacl, acldefault(case when c.relkind = 'S' then 's' else 'r' end::"char",
                                       c.relowner)),
         (select json_agg(json_build_array(a.attname, coalesce(r.rolname, 'PUBLIC'),
                                           x.privilege_type) order by a.attnum)
            from pg_attribute a, aclexplode(a.attacl) x
            left join pg_roles r on r.oid = x.grantee
           where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
             and a.attacl is not null and x.grantee <> c.relowner)
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
  union all
  select 'FUNCTION', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
         p.proowner, coalesce(p.proacl, acldefault('f', p.proowner)), null
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname = any(%(schemas)s)
     and not exists (select 1 from pg_depend d where d.objid = p.oid
                      and d.classid = 'pg_proc'::regclass and d.deptype = 'e')
)
select kind, schema, name, args,
       (select coalesce(json_agg(json_build_array(coalesce(r.rolname, 'PUBLIC'),
                                                  x.privilege_type)), '[]'::json)
          from aclexplode(entries) x left join pg_roles r on r.oid = x.grantee
         where x.grantee <> owner) as grants,
       columns
  from acl order by 1, 2, 3, 4
"""


def _key(kind: str, schema: str, name: str, args: str | None) -> str:
    if kind == "SCHEMA":
        return f"schema {schema}"
    if kind == "FUNCTION":
        return f"function {schema}.{name}({args})"
    return f"{kind.lower()} {schema}.{name}"


def _pairs(pairs: Iterable[list[str]]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for role, privilege in pairs:
        out.setdefault(role, set()).add(privilege)
    return {role: sorted(p) for role, p in sorted(out.items())}


def read_grants(conn: db.Connection[Any], schemas: Sequence[str]) -> dict[str, Any]:
    """Every grant to a role other than the owner on the objects of ``schemas``.

    ``{"table public.offers": {"kind": "TABLE", "schema": "public", "name":
    "offers", "grants": {"anon": ["SELECT"]}, "columns": {"email": {...}}}, …}``
    (``args`` for functions). Extension members are left out: the extension
    recreates them. Read in the caller's transaction (the backup's snapshot).
    """
    grants: dict[str, Any] = {}
    for row in db.run_query(conn, _Q_GRANTS, {"schemas": list(schemas)}):
        entry: dict[str, Any] = {
            "kind": row["kind"], "schema": row["schema"], "name": row["name"],
            "grants": _pairs(row["grants"]),
        }  # fmt: skip
        if row["args"] is not None:
            entry["args"] = row["args"]
        columns: dict[str, list[list[str]]] = {}
        for column, role, privilege in row["columns"] or []:
            columns.setdefault(column, []).append([role, privilege])
        if columns:
            entry["columns"] = {c: _pairs(p) for c, p in sorted(columns.items())}
        grants[_key(row["kind"], row["schema"], row["name"], row["args"])] = entry
    return grants


# The target object's oid, its owner and SQL name part, by kind. Functions
# are found by name and argument list and named by the target's own
# regprocedure text (quoted by the server, never taken from the manifest).
_Q_FIND = {
    "SCHEMA": "select n.oid, n.nspowner as owner, null as sig from pg_namespace n "
              "where n.nspname = %(schema)s",
    "TABLE": "select c.oid, c.relowner as owner, null as sig from pg_class c "
             "join pg_namespace n on n.oid = c.relnamespace "
             "where n.nspname = %(schema)s and c.relname = %(name)s and c.relkind <> 'S'",
    "SEQUENCE": "select c.oid, c.relowner as owner, null as sig from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = %(schema)s and c.relname = %(name)s and c.relkind = 'S'",
    "FUNCTION": "select p.oid, p.proowner as owner, p.oid::regprocedure::text as sig "
                "from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
                "where n.nspname = %(schema)s and p.proname = %(name)s "
                "and pg_get_function_identity_arguments(p.oid) = %(args)s",
}  # fmt: skip
# Who other than the owner holds any grant on the object now (columns included:
# REVOKE ALL on a table takes its column privileges too).
_Q_HOLDERS = {
    "SCHEMA": "select x.grantee from pg_namespace n, "
              "aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) x where n.oid = %(oid)s",
    "TABLE": "select x.grantee from pg_class c, "
             "aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) x where c.oid = %(oid)s "
             "union select x.grantee from pg_attribute a, aclexplode(a.attacl) x "
             "where a.attrelid = %(oid)s and a.attacl is not null",
    "SEQUENCE": "select x.grantee from pg_class c, "
                "aclexplode(coalesce(c.relacl, acldefault('s', c.relowner))) x "
                "where c.oid = %(oid)s",
    "FUNCTION": "select x.grantee from pg_proc p, "
                "aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x "
                "where p.oid = %(oid)s",
}  # fmt: skip


def _find(conn: db.Connection[Any], entry: dict[str, Any]) -> tuple[db.Query, list[str]] | None:
    """(the object as GRANT names it, its current non-owner grantees), or None when the
    target has no such object."""
    kind = entry["kind"]
    params = {"schema": entry["schema"], "name": entry["name"], "args": entry.get("args", "")}
    rows = db.run_query(conn, _Q_FIND[kind], params)
    if not rows:
        return None
    oid, owner, sig = rows[0]["oid"], rows[0]["owner"], rows[0]["sig"]
    if kind == "FUNCTION":
        name: db.Query = db.SQL("ROUTINE ") + db.SQL(sig)
    elif kind == "SCHEMA":
        name = db.SQL("SCHEMA {}").format(db.Identifier(entry["schema"]))
    else:
        name = db.SQL(kind + " {}").format(db.Identifier(entry["schema"], entry["name"]))
    holders = db.run_query(
        conn,
        "select distinct coalesce(r.rolname, 'PUBLIC') as role from ("
        + _Q_HOLDERS[kind]
        + ") h left join pg_roles r on r.oid = h.grantee where h.grantee <> %(owner)s",
        {"oid": oid, "owner": owner},
    )
    return name, sorted(r["role"] for r in holders)


def _grantee(role: str) -> db.Query:
    return db.SQL("PUBLIC") if role == PUBLIC else db.SQL("{}").format(db.Identifier(role))


def apply_grants(
    conn: db.Connection[Any], recorded: dict[str, Any], *, only: Sequence[str] = ()
) -> list[str]:
    """Make each restored object carry exactly the ``recorded`` grants; return the problems.

    For every recorded object present on the target (only the tables named in
    ``only``, ``schema.table``, when given): every grant to a role other than
    the object's owner is revoked, then the recorded grants (table and column)
    are given. A recorded role missing on the target, a privilege outside
    :data:`PRIVILEGES`, or one the target's PostgreSQL refuses (MAINTAIN
    before 17) is a problem; the rest still applies. Autocommit, statement by
    statement. Raises DatabaseUnreachable (exit 4) when the target goes away.
    """
    from ops.errors import DatabaseError

    roles = {r["rolname"] for r in db.run_query(conn, "select rolname from pg_roles")}
    wanted = set(only)
    problems: list[str] = []
    for key, entry in recorded.items():
        qualified = f"{entry['schema']}.{entry['name']}"
        if wanted and (entry["kind"] != "TABLE" or qualified not in wanted):
            continue
        if entry["kind"] not in _Q_FIND:
            problems.append(f"{key}: not a kind of object grants are restored for")
            continue
        found = _find(conn, entry)
        if found is None:
            continue  # not restored here (e.g. --table restored other tables)
        target, holders = found
        for role in holders:
            db.run_query(conn, db.SQL("REVOKE ALL ON {} FROM {}").format(target, _grantee(role)))
        grants = [(p, role, None) for role, privs in entry["grants"].items() for p in privs]
        for column, by_role in entry.get("columns", {}).items():
            grants += [(p, role, column) for role, privs in by_role.items() for p in privs]
        for privilege, role, column in grants:
            if privilege not in PRIVILEGES:
                problems.append(f"{key}: {privilege!r} is not a privilege")
                continue
            if role != PUBLIC and role not in roles:
                problems.append(f"{key}: role {role} does not exist on the target")
                continue
            what = db.SQL(privilege)
            if column is not None:
                what = db.SQL("{} ({})").format(what, db.Identifier(column))
            try:
                db.run_query(
                    conn, db.SQL("GRANT {} ON {} TO {}").format(what, target, _grantee(role))
                )
            except DatabaseError as exc:
                problems.append(f"{key}: GRANT {privilege} to {role}: {exc.message}")
    return sorted(set(problems))
