"""A Supabase-shaped PostgreSQL for tests: roles, schemas and grants as on a Supabase project.

The cluster's superuser is ``supabase_admin`` (``initdb -U supabase_admin``,
as Supabase's image does), so ``postgres`` is an ordinary role that can be
really demoted. The build follows a project's order: the platform's init
scripts as ``postgres`` (still superuser then), the platform migrations as
``supabase_admin`` (demoting ``postgres``), Auth's schema as
``supabase_auth_admin``, Storage's as ``supabase_storage_admin``; then the
user's two migrations are applied as ``postgres`` through the Supabase CLI
port, which writes its history table exactly as the CLI does. The SQL is this
project's own (``tests/supabase/sql``), modelled on Supabase's public SQL; see
tests/supabase/README.md for what it reproduces and what it leaves out.

A statement that needs an extension or library the server does not have is
skipped by :func:`skip_reason` and recorded in :attr:`SupabaseProject.skipped`.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo, sql

from ops.embedded import PostgresCluster, free_port
from ops.fsutil import create_exclusive
from ops.supabase_schemas import SUPABASE_SCHEMAS
from tests.supabase import cli_port

HERE = Path(__file__).resolve().parent
SQL_DIR = HERE / "sql"
USER_PROJECT = HERE / "user_project"
ADMIN = "supabase_admin"
TEMPLATE = "supabase_template"

# (module, role it runs as): the order a Supabase project is built in.
MODULES = (
    ("10_platform_init.sql", "postgres"),
    ("20_platform_migrations.sql", ADMIN),
    ("30_auth.sql", "supabase_auth_admin"),
    ("40_storage.sql", "supabase_storage_admin"),
)
# supautils is a preloaded library that no test server has. Its setting that
# tests read is emulated as a custom (placeholder) setting on each database;
# the list is supabase/postgres's supautils.conf.j2 at the pinned commit.
PRIVILEGED_EXTENSIONS = (
    "address_standardizer, address_standardizer_data_us, autoinc, bloom, btree_gin, btree_gist, "
    "citext, cube, dblink, dict_int, dict_xsyn, earthdistance, fuzzystrmatch, hstore, http, "
    "hypopg, index_advisor, insert_username, intarray, isn, ltree, moddatetime, orioledb, "
    "pg_cron, pg_graphql, pg_hashids, pg_jsonschema, pg_net, pg_partman, pg_repack, "
    "pg_stat_monitor, pg_stat_statements, pg_tle, pg_trgm, pg_walinspect, pgaudit, pgcrypto, "
    "pgjwt, pg_prewarm, pgmq, pgroonga, pgroonga_database, pgrouting, pgrowlocks, pgstattuple, "
    "pgsodium, pgtap, plcoffee, pljava, plls, plpgsql, plpgsql_check, plv8, postgis, "
    "postgis_raster, postgis_sfcgal, postgis_tiger_geocoder, postgis_topology, postgres_fdw, "
    "refint, rum, seg, sslinfo, supabase_vault, supautils, tablefunc, tcn, timescaledb, "
    "tsm_system_rows, tsm_system_time, unaccent, uuid-ossp, vector, wrappers"
)
DATABASE_SETTINGS = {
    "supautils.privileged_extensions": PRIVILEGED_EXTENSIONS,
    "supautils.privileged_role": "postgres",
    "supautils.privileged_extensions_superuser": ADMIN,
}
# Parts of a Supabase project this fixture never builds, whatever the server has.
NOT_BUILT = (
    (
        "supautils (preloaded library)",
        "not shipped with PostgreSQL; its settings are emulated as "
        "custom settings on each database (DATABASE_SETTINGS), its hooks are not",
    ),
    (
        "pg_cron, pg_net schemas and functions",
        "their extensions are not in the test servers; the "
        "event triggers that grant them to postgres are built",
    ),
    (
        "Realtime's tables (realtime.messages, subscriptions)",
        "made by the Realtime service at run "
        "time, not by the database's migrations; the schema and default privileges are built",
    ),
    (
        "Auth's MFA, SSO, SAML, OAuth and one-time-token tables",
        "reduced to users, identities, "
        "sessions, refresh_tokens, audit_log_entries, instances, schema_migrations",
    ),
    (
        "Storage's S3 multipart tables and search functions",
        "reduced to buckets, objects, migrations and the path functions",
    ),
)

REQUIRES = re.compile(r"^--\s*requires (extension|library):\s*(\S+)\s*$", re.MULTILINE)
CREATE_EXTENSION = re.compile(
    r"^\s*create\s+extension\s+(?:if\s+not\s+exists\s+)?\"?([\w-]+)\"?",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class Skipped:
    """One statement (or part) of the Supabase build that this server could not run."""

    what: str
    reason: str


def skip_reason(statement: str, extensions: set[str], libdir: Path) -> str | None:
    """Why ``statement`` cannot run here (a missing extension or library), or None.

    The rule: a statement marked ``-- requires extension: X`` or a
    ``create extension X`` needs X in ``pg_available_extensions``; one marked
    ``-- requires library: X`` needs ``$libdir/X.so``. Nothing else is skipped.
    """
    needs = [(kind, name) for kind, name in REQUIRES.findall(statement)]
    needs += [("extension", name) for name in CREATE_EXTENSION.findall(statement)]
    for kind, name in needs:
        if kind == "extension" and name not in extensions:
            return f"extension {name} is not available on this server (pg_available_extensions)"
        if kind == "library" and not (libdir / f"{name}.so").exists():
            return f"library {name} is not installed on this server ($libdir/{name}.so)"
    return None


def _first_line(statement: str) -> str:
    lines = [ln for ln in statement.splitlines() if ln.strip() and not ln.lstrip().startswith("--")]
    return lines[0].strip() if lines else statement.strip()


class SupabaseCluster(PostgresCluster):
    """A PostgresCluster whose bootstrap superuser is ``supabase_admin``.

    Reuses PostgresCluster's initdb/pg_ctl plumbing; only the superuser's name
    differs, and the password file holds ``supabase_admin`` and ``postgres``.
    """

    def __init__(self, data_dir: Path, *, bin_dir: Path | None = None) -> None:
        super().__init__(data_dir, bin_dir=bin_dir, port=free_port())
        self.passwords = {ADMIN: secrets.token_urlsafe(24), "postgres": secrets.token_urlsafe(24)}

    def init(self) -> None:
        if self.initialised:
            return
        entry = self.run_as()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._chown(self.data_dir, entry)
        with self._password_file_for_server(self.passwords[ADMIN], entry) as pwfile:
            self._initdb(pwfile, superuser=ADMIN)
        lines = "".join(f"127.0.0.1:*:*:{user}:{pw}\n" for user, pw in self.passwords.items())
        create_exclusive(self.passfile, lines.encode(), mode=0o600)

    def ensure_password_auth(self) -> None:
        """Nothing to switch: :meth:`init` made a scram-sha-256 cluster."""

    def dsn(self, user: str, dbname: str) -> str:
        """``user``'s DSN; the password is in the 0600 passfile, not in the DSN."""
        return conninfo.make_conninfo(
            "",
            host="127.0.0.1",
            port=str(self.port()),
            user=user,
            dbname=dbname,
            passfile=str(self.passfile),
        )


@dataclass
class SupabaseServer:
    """One Supabase-shaped cluster with the built template database."""

    cluster: SupabaseCluster
    label: str
    skipped: list[Skipped] = field(default_factory=list)
    supabase_roles: list[str] = field(default_factory=list)
    build_seconds: float = 0.0

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.cluster.dsn(ADMIN, dbname), autocommit=True)


def _database_setup(conn: psycopg.Connection[Any], dbname: str) -> None:
    """What a project's database gets that CREATE DATABASE … TEMPLATE does not copy."""
    db = sql.Identifier(dbname)
    conn.execute(sql.SQL("alter database {} owner to postgres").format(db))
    conn.execute(sql.SQL("grant all on database {} to postgres, dashboard_user").format(db))
    for name, value in DATABASE_SETTINGS.items():
        conn.execute(
            sql.SQL("alter database {} set {} = {}").format(
                db, sql.Identifier(*name.split(".")), sql.Literal(value)
            )
        )


def build_server(bin_dir: Path | None, root: Path, label: str) -> SupabaseServer:
    """Init and start a ``supabase_admin`` cluster under ``root``; build the template once.

    Raises psycopg errors when a statement that was not skipped fails (the
    build must run whole), EmbeddedPostgresError when the server will not start.
    """
    started = time.monotonic()
    cluster = SupabaseCluster(root / "pgdata", bin_dir=bin_dir)
    cluster.start()
    server = SupabaseServer(cluster, label)
    server.skipped = [Skipped(f"not built: {what}", why) for what, why in NOT_BUILT]
    with server.admin() as conn:
        # migrate.sh: postgres exists, a superuser, before the init scripts run
        conn.execute(
            sql.SQL("create role postgres superuser login password {}").format(
                sql.Literal(cluster.passwords["postgres"])
            )
        )
        conn.execute(sql.SQL("create database {} owner postgres").format(sql.Identifier(TEMPLATE)))
        row = conn.execute("select setting from pg_config where name = 'PKGLIBDIR'").fetchone()
        assert row is not None
        libdir = Path(row[0])
    with server.admin(TEMPLATE) as conn:
        extensions = {r[0] for r in conn.execute("select name from pg_available_extensions")}
        for module, role in MODULES:
            conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
            text = (SQL_DIR / module).read_text(encoding="utf-8")
            for statement in cli_port.split_and_trim(text):
                reason = skip_reason(statement, extensions, libdir)
                if reason:
                    server.skipped.append(Skipped(f"{module}: {_first_line(statement)}", reason))
                    continue
                conn.execute(statement)
            conn.execute("reset role")
        _database_setup(conn, TEMPLATE)
        server.supabase_roles = [
            r[0]
            for r in conn.execute("select rolname from pg_roles where rolname !~ '^pg_' order by 1")
        ]
    # The user's own migrations, applied by the Supabase CLI (port) as postgres.
    with psycopg.connect(cluster.dsn("postgres", TEMPLATE)) as conn:
        for path in cli_port.list_local_migrations(USER_PROJECT / "supabase" / "migrations"):
            cli_port.cli_apply_migration(conn, path)
    server.build_seconds = time.monotonic() - started
    return server


def destroy_server(server: SupabaseServer, root: Path) -> None:
    server.cluster.destroy()
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class SupabaseProject:
    """A fresh Supabase-shaped database and the user's project folder (see the module doc)."""

    dsn: str  # as postgres, a demoted, password-authenticated role
    admin_dsn: str  # as supabase_admin, the cluster's superuser
    root: Path  # holds supabase/config.toml and supabase/migrations
    dbname: str
    user_versions: list[str]
    skipped: list[Skipped]
    supabase_roles: list[str]
    server_label: str

    @property
    def migrations_dir(self) -> Path:
        return self.root / "supabase" / "migrations"

    def snapshot(self, conn_or_dsn: psycopg.Connection[Any] | str | None = None) -> dict[str, Any]:
        """:func:`snapshot` of this database's Supabase objects (as supabase_admin by default)."""
        return snapshot(conn_or_dsn or self.admin_dsn, self.supabase_roles)


_counter = iter(range(10**9))


@contextlib.contextmanager
def fresh_project(server: SupabaseServer, tmp_path: Path) -> Iterator[SupabaseProject]:
    """A database cloned from the server's template, with the project folder; dropped after."""
    dbname = f"sb{os.getpid()}_{next(_counter)}"
    with server.admin() as conn:
        conn.execute(
            sql.SQL("create database {} template {} owner postgres").format(
                sql.Identifier(dbname), sql.Identifier(TEMPLATE)
            )
        )
        _database_setup(conn, dbname)
    root = tmp_path / f"project-{server.label}"  # two servers may serve one test
    shutil.copytree(USER_PROJECT, root)
    versions = [
        cli_port.MIGRATE_FILE_PATTERN.match(p.name).group(1)  # type: ignore[union-attr]
        for p in cli_port.list_local_migrations(root / "supabase" / "migrations")
    ]
    try:
        yield SupabaseProject(
            dsn=server.cluster.dsn("postgres", dbname),
            admin_dsn=server.cluster.dsn(ADMIN, dbname),
            root=root,
            dbname=dbname,
            user_versions=versions,
            skipped=list(server.skipped),
            supabase_roles=list(server.supabase_roles),
            server_label=server.label,
        )
    finally:
        with server.admin() as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname))
            )


# -- the snapshot ----------------------------------------------------------------------------
_SNAPSHOT_QUERIES = {
    "roles": """
        select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
               rolreplication, rolbypassrls, coalesce(rolconfig::text, '')
        from pg_roles where rolname = any(%(roles)s) order by 1""",
    "memberships": """
        select r.rolname, m.rolname, am.admin_option
        from pg_auth_members am
        join pg_roles r on r.oid = am.roleid
        join pg_roles m on m.oid = am.member
        where r.rolname = any(%(roles)s) and m.rolname = any(%(roles)s) order by 1, 2""",
    "schemas": """
        select nspname, pg_get_userbyid(nspowner), coalesce(nspacl::text, '')
        from pg_namespace where nspname = any(%(schemas)s) order by 1""",
    "functions": """
        select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
               pg_get_userbyid(p.proowner), coalesce(p.proacl::text, ''), p.prosecdef,
               coalesce(p.proconfig::text, ''),
               case when p.prokind in ('f', 'p', 'w') then pg_get_functiondef(p.oid) else '' end
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = any(%(schemas)s) order by 1, 2, 3""",
    "relations": """
        select n.nspname, c.relname, c.relkind::text, pg_get_userbyid(c.relowner),
               coalesce(c.relacl::text, ''), c.relrowsecurity, c.relforcerowsecurity
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
        order by 1, 2""",
    "columns": """
        select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
               coalesce(a.attacl::text, '')
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where n.nspname = any(%(schemas)s) and a.attnum > 0 and not a.attisdropped
          and c.relkind in ('r', 'p', 'v', 'm', 'f')
        order by 1, 2, a.attnum""",
    "constraints": """
        select n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid)
        from pg_constraint k join pg_class c on c.oid = k.conrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%(schemas)s) order by 1, 2, 3""",
    "indexes": """
        select schemaname, tablename, indexname, indexdef from pg_indexes
        where schemaname = any(%(schemas)s) order by 1, 2, 3""",
    "policies": """
        select schemaname, tablename, policyname, permissive, roles::text, cmd,
               coalesce(qual, ''), coalesce(with_check, '')
        from pg_policies where schemaname = any(%(schemas)s) order by 1, 2, 3""",
    "triggers": """
        select n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
        from pg_trigger t join pg_class c on c.oid = t.tgrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = any(%(schemas)s) and not t.tgisinternal order by 1, 2, 3""",
    "types": """
        select n.nspname, t.typname, pg_get_userbyid(t.typowner), coalesce(t.typacl::text, ''),
               coalesce((select string_agg(e.enumlabel, ',' order by e.enumsortorder)
                         from pg_enum e where e.enumtypid = t.oid), '')
        from pg_type t join pg_namespace n on n.oid = t.typnamespace
        where n.nspname = any(%(schemas)s) and t.typtype in ('e', 'd', 'c')
          and (t.typrelid = 0 or (select relkind from pg_class where oid = t.typrelid) = 'c')
        order by 1, 2""",
    "default_acl": """
        select pg_get_userbyid(d.defaclrole), coalesce(n.nspname, ''), d.defaclobjtype::text,
               d.defaclacl::text
        from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace
        where pg_get_userbyid(d.defaclrole) = any(%(roles)s) order by 1, 2, 3""",
    "event_triggers": """
        select e.evtname, e.evtevent, pg_get_userbyid(e.evtowner), e.evtenabled::text,
               coalesce(e.evttags::text, ''), e.evtfoid::regprocedure::text
        from pg_event_trigger e order by 1""",
    "publications": """
        select p.pubname, pg_get_userbyid(p.pubowner), p.puballtables, p.pubinsert, p.pubupdate,
               p.pubdelete, p.pubtruncate
        from pg_publication p order by 1""",
    "publication_tables": """
        select pubname, schemaname, tablename, coalesce(attnames::text, '')
        from pg_publication_tables order by 1, 2, 3""",
    "extensions": """
        select e.extname, n.nspname, pg_get_userbyid(e.extowner)
        from pg_extension e join pg_namespace n on n.oid = e.extnamespace order by 1""",
}


def snapshot(conn_or_dsn: psycopg.Connection[Any] | str, roles: list[str]) -> dict[str, Any]:
    """A comparable picture of Supabase's own objects in one database.

    Keys: roles (attributes, settings), memberships between them, the
    Supabase schemas' ownership and ACLs, their functions (definition, owner,
    ACL, security), relations, columns, constraints, indexes, policies,
    triggers and types, the default privileges of Supabase's roles, event
    triggers, publications and their tables, extensions. Each value is a list
    of tuples, so two snapshots compare with ``==``.
    """
    params = {"roles": roles, "schemas": list(SUPABASE_SCHEMAS)}
    with contextlib.ExitStack() as stack:
        if isinstance(conn_or_dsn, str):
            conn = stack.enter_context(psycopg.connect(conn_or_dsn, autocommit=True))
        else:
            conn = conn_or_dsn
        # Names print schema-qualified whatever the role's search_path is; the
        # caller's own setting is put back.
        row = conn.execute("select current_setting('search_path')").fetchone()
        conn.execute("select set_config('search_path', 'pg_catalog', false)")
        try:
            picture: dict[str, Any] = {}
            for key, query in _SNAPSHOT_QUERIES.items():
                if key == "publication_tables" and conn.info.server_version < 150000:
                    query = query.replace("coalesce(attnames::text, '')", "''")
                picture[key] = [tuple(r) for r in conn.execute(query, params).fetchall()]
            return picture
        finally:
            conn.execute("select set_config('search_path', %s, false)", (row[0] if row else "",))
