"""Preflight: everything that must hold before the app boots.

Secrets come first: the chain is loaded and validated (a finding for every
gap), then the database target is resolved from the loaded SecretSet, then
the checks run (database reachable, server version, extensions, and what
others append). Each check is a function that yields findings; adding one is
adding it to ``CHECKS``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.config import Config
from ops.errors import EXIT_UNREACHABLE, DatabaseUnreachable, OpsError
from ops.findings import Finding
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.migrate.catalog import Catalog
    from ops.secrets import LoadResult

log = logging.getLogger(__name__)


@dataclass
class PreflightContext:
    """What the checks share: config, the loaded secrets, the target, a connection, the catalog.

    Preflight is read-only (unless ``[migrate] auto_heal_in`` asks for a
    heal) and reads the schema catalog once: every check that needs it calls
    :meth:`catalog`, which reads it on first use and hands out the same
    result afterwards.
    """

    config: Config
    target: DatabaseTarget | None = None
    conn: Any = None
    facts: dict[str, Any] = field(default_factory=dict)
    secrets: LoadResult | None = None
    _catalog: Any = field(default=None, repr=False)

    def catalog(self) -> Catalog:
        """The live catalog of ``conn``, read once (:func:`ops.migrate.catalog.read_catalog`).

        Raises DatabaseError/DatabaseUnreachable when it cannot be read, and
        RuntimeError when there is no connection (a check must test ``conn`` first).
        """
        if self._catalog is None:
            if self.conn is None:
                raise RuntimeError("no database connection: check ctx.conn before the catalog")
            from ops.migrate.catalog import read_catalog

            self._catalog = read_catalog(self.conn)
        return self._catalog


Check = Callable[[PreflightContext], Iterator[Finding]]


def check_database(ctx: PreflightContext) -> Iterator[Finding]:
    """DB_REACHABLE / DB_UNREACHABLE (exit 4), then the server version against the minimum."""
    from ops import db

    assert ctx.target is not None
    try:
        ctx.conn = db.connect(ctx.target.dsn, ctx.target.options, autocommit=True)
    except DatabaseUnreachable as exc:
        yield F.critical(
            "DB_UNREACHABLE",
            ctx.target.masked,
            exc.message,
            exit_code=EXIT_UNREACHABLE,
        )
        return
    major, full = db.server_version(ctx.conn)
    ctx.facts["server_version"] = full
    ctx.facts["server_major"] = major
    where = "embedded" if ctx.target.embedded else ctx.target.source
    yield F.ok(
        "DB_REACHABLE", ctx.target.masked, f"connected ({where}); {' '.join(full.split()[:2])}"
    )
    minimum = int(ctx.config.get("database.min_server_version"))
    if major < minimum:
        yield F.error(
            "DB_VERSION_UNSUPPORTED",
            ctx.target.masked,
            f"PostgreSQL {major} is older than the supported minimum {minimum}",
        )


def check_extensions(ctx: PreflightContext) -> Iterator[Finding]:
    """Each required extension must be installed, or creatable by this role.

    "Available" means this role can run CREATE EXTENSION: it is a superuser,
    or the extension is trusted and the role has CREATE on the database, or
    it is listed in Supabase's ``supautils.privileged_extensions``. An
    extension the server has but this role cannot create is
    EXTENSION_NOT_CREATABLE, naming what is needed.
    """
    if ctx.conn is None:
        return
    from ops import db

    wanted = list(ctx.config.get("database.required_extensions"))
    if not wanted:
        return
    rows = db.run_query(ctx.conn, _EXTENSIONS_QUERY, (wanted,))
    found = {r["name"]: r for r in rows}
    for name in wanted:
        row = found.get(name)
        if row is None:
            yield F.error(
                "EXTENSION_UNAVAILABLE",
                name,
                f"extension {name!r} is not available on this server; migrations that need it "
                "will fail",
            )
        elif row["installed_version"]:
            yield F.ok("EXTENSION_INSTALLED", name, f"{name} {row['installed_version']} installed")
        elif (why := _creatable(row)) is not None:
            yield F.info(
                "EXTENSION_AVAILABLE",
                name,
                f"{name} is available and {row['role']} can create it ({why}); "
                "migrations install it",
            )
        else:
            yield F.error(
                "EXTENSION_NOT_CREATABLE",
                name,
                f"extension {name!r} is on this server but role {row['role']} cannot create it: "
                "it is not a superuser, "
                + (
                    f"{name} is trusted but the role lacks CREATE on database {row['dbname']}"
                    if row["trusted"]
                    else f"{name} is not a trusted extension"
                )
                + (
                    ", and supautils, whose privileged_extensions lists it, is not loaded"
                    if row["listed"]
                    else ", and it is not listed in supautils.privileged_extensions"
                )
                + "; have a superuser "
                f"run `create extension {name} with schema extensions`"
                + (
                    f", or grant CREATE ON DATABASE {row['dbname']} TO {row['role']}"
                    if row["trusted"]
                    else ""
                )
                + " (on Supabase: enable it under Database, Extensions)",
            )


# One statement for every wanted extension. supautils' list counts only where
# supautils is loaded: a setting of that name is also accepted, as a mere
# placeholder, where it is not (and then grants nothing); only the loaded
# library's own setting shows in pg_settings.
_EXTENSIONS_QUERY = """
select e.name, e.installed_version,
       current_user::text as role, current_database()::text as dbname,
       coalesce((select r.rolsuper from pg_catalog.pg_roles r where r.rolname = current_user),
                false) as superuser,
       coalesce((select v.trusted from pg_catalog.pg_available_extension_versions v
                  where v.name = e.name and v.version = e.default_version), false) as trusted,
       pg_catalog.has_database_privilege(current_database(), 'CREATE') as can_create,
       e.name = any(pg_catalog.string_to_array(pg_catalog.replace(
         coalesce(pg_catalog.current_setting('supautils.privileged_extensions', true), ''),
         ' ', ''), ',')) as listed,
       exists (select 1 from pg_catalog.pg_settings
                where name = 'supautils.privileged_extensions') as supautils_loaded
  from pg_catalog.pg_available_extensions e
 where e.name = any(%s)
"""


def _creatable(row: dict[str, Any]) -> str | None:
    """Why this role may create the extension, in words; None when it may not."""
    if row["superuser"]:
        return "superuser"
    if row["listed"] and row["supautils_loaded"]:
        return "listed in supautils.privileged_extensions"
    if row["trusted"] and row["can_create"]:
        return "a trusted extension, and the role has CREATE on the database"
    return None


def check_schema(ctx: PreflightContext) -> Iterator[Finding]:
    """The schema against the committed manifest (drift, pending migrations, lints).

    Read-only by default. Only where ``[migrate] auto_heal_in`` lists this
    environment (it lists none by default), and the environment was chosen
    explicitly or the target is the embedded server, is safe drift healed
    first and reported as SCHEMA_HEALED.
    """
    from ops.migrate.heal import preflight_check

    yield from preflight_check(ctx)


CHECKS: list[Check] = [check_database, check_extensions, check_schema]


@dataclass
class PreflightReport(F.FindingsReport):
    """The findings of one preflight run, with what was checked and how long it took."""

    findings: list[Finding]
    target: str | None
    env: str
    seconds: float
    facts: dict[str, Any] = field(default_factory=dict)
    secrets: LoadResult | None = None

    def secrets_line(self) -> str:
        """Which sources were consulted, in order, and how they answered (names only)."""
        if self.secrets is None:
            return "secrets: not loaded"
        parts = [f"{s.name} {s.status} ({s.count})" for s in self.secrets.sources]
        return f"secrets: {len(self.secrets.secrets)} loaded; consulted " + ", ".join(parts)

    def extra(self) -> dict[str, Any]:
        loaded = self.secrets
        return {
            "env": self.env,
            "target": self.target,
            "seconds": round(self.seconds, 3),
            "facts": self.facts,
            "secrets": {
                "sources": [s.to_dict() for s in loaded.sources] if loaded else [],
                "names": loaded.secrets.items_meta() if loaded else [],
            },
        }


def run_preflight(
    config: Config,
    target: DatabaseTarget | None = None,
    *,
    checks: list[Check] | None = None,
    secrets: LoadResult | None = None,
    offline: bool = False,
) -> PreflightReport:
    """Load the secrets, then run every check and collect its findings. Never raises for a gap.

    ``secrets`` is an already loaded result (``up`` passes its own); without it
    the chain is loaded (``offline`` = remote sources from their cache only).
    ``target`` defaults to the database named by the loaded secrets (the
    embedded one, started if needed, when none is configured). The database is
    not touched when its DSN secret is missing or invalid. An OpsError while
    loading or resolving becomes a finding with that error's exit code.
    """
    from ops.secrets import load_secrets
    from ops.target import resolve_target

    started = time.monotonic()
    ctx = PreflightContext(config=config)
    results: list[Finding] = []

    def report() -> PreflightReport:
        masked = ctx.target.masked if ctx.target else None
        took = time.monotonic() - started
        return PreflightReport(results, masked, config.env, took, ctx.facts, ctx.secrets)

    try:
        ctx.secrets = secrets or load_secrets(config, offline=offline)
    except OpsError as exc:
        results.append(
            F.critical("SECRETS_CONFIG", "secrets", exc.message, exit_code=exc.exit_code)
        )
        return report()
    results.extend(ctx.secrets.findings)
    dsn_name = config.get("database.url_secret")
    if target is None and any(f.is_problem and f.subject == dsn_name for f in results):
        results.append(
            F.info("DB_SKIPPED", "database", f"not checked: the {dsn_name} secret has a problem")
        )
        return report()
    try:
        ctx.target = target or resolve_target(config, ctx.secrets.secrets)
    except OpsError as exc:
        results.append(
            F.critical(
                "DB_TARGET",
                "database",
                exc.message,
                exit_code=exc.exit_code,
                runbook="runbooks/DB_UNREACHABLE.md",
            )
        )
        return report()
    try:
        for check in checks or CHECKS:
            results.extend(check(ctx))
    finally:
        if ctx.conn is not None:
            ctx.conn.close()
    return report()
