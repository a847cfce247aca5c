"""`migrate test`: prove the migrations on a scratch database.

On a temporary database of the target's server (or the embedded one): for
every migration, up, down, up again, checking that its down restores the
catalog exactly and that re-applying gives the same catalog; then down to zero
and up again, comparing the final catalog with the first; then the
expected-schema manifest (``ops.migrate.manifest``), when it exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.errors import MigrationError
from ops.findings import Finding
from ops.migrate.apply import migrate_up
from ops.migrate.common import resolve_migrations
from ops.migrate.files import Migration
from ops.migrate.report import FindingsReport
from ops.migrate.revert import migrate_down
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)

# One query, one text line per object, so two catalogs compare as sets. The
# runner's own schemas are left out: their rows change on every run.
CATALOG_SQL = """
with ns as (
  select oid, nspname from pg_namespace
  where nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'supabase_migrations',
                        %(history)s)
    and nspname not like 'pg_temp_%%' and nspname not like 'pg_toast_temp_%%'
)
select 'schema ' || nspname as line from ns
union all
select format('relation %%s.%%s kind=%%s rls=%%s force=%%s acl=%%s', ns.nspname, c.relname,
              c.relkind, c.relrowsecurity, c.relforcerowsecurity, c.relacl::text)
from pg_class c join ns on ns.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
union all
select format('column %%s.%%s.%%s %%s notnull=%%s default=%%s', ns.nspname, c.relname,
              a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
              pg_get_expr(d.adbin, d.adrelid))
from pg_attribute a
join pg_class c on c.oid = a.attrelid join ns on ns.oid = c.relnamespace
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f')
union all
select format('index %%s valid=%%s', pg_get_indexdef(i.indexrelid), i.indisvalid)
from pg_index i join pg_class c on c.oid = i.indexrelid join ns on ns.oid = c.relnamespace
union all
select format('constraint %%s.%%s %%s %%s', ns.nspname, con.conrelid::regclass, con.conname,
              pg_get_constraintdef(con.oid))
from pg_constraint con join ns on ns.oid = con.connamespace
union all
select 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
from pg_trigger t join pg_class c on c.oid = t.tgrelid join ns on ns.oid = c.relnamespace
where not t.tgisinternal
union all
select format('policy %%s.%%s %%s %%s %%s roles=%%s using=%%s check=%%s', schemaname, tablename,
              policyname, permissive, cmd, roles::text, qual, with_check)
from pg_policies where schemaname in (select nspname from ns)
union all
select format('function %%s.%%s(%%s) %%s', ns.nspname, p.proname,
              pg_get_function_identity_arguments(p.oid), md5(pg_get_functiondef(p.oid)))
from pg_proc p join ns on ns.oid = p.pronamespace
where p.prokind in ('f', 'p') and not exists (
  select 1 from pg_depend dep where dep.objid = p.oid and dep.deptype = 'e'
)
union all
select format('publication %%s %%s.%%s', pubname, schemaname, tablename)
from pg_publication_tables
union all
select format('extension %%s schema=%%s', e.extname, n.nspname)
from pg_extension e join pg_namespace n on n.oid = e.extnamespace
"""


def read_catalog_lines(conn: db.Connection[Any], history_schema: str) -> set[str]:
    """The schema of ``conn``'s database as a set of comparable text lines."""
    rows = db.run_query(conn, CATALOG_SQL, {"history": history_schema})
    return {str(r["line"]) for r in rows if r["line"] is not None}


def catalog_diff(before: set[str], after: set[str], limit: int = 8) -> list[str]:
    """Lines only in ``before`` (``-``) and only in ``after`` (``+``), at most ``limit``."""
    out = [f"- {x}" for x in sorted(before - after)] + [f"+ {x}" for x in sorted(after - before)]
    return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


@dataclass
class ScratchReport(FindingsReport):
    """What ``migrate test`` proved, as findings."""

    scratch_database: str = ""
    seconds: float = 0.0
    manifest_compared: bool = False

    def extra(self) -> dict[str, Any]:
        return {
            "scratch_database": self.scratch_database,
            "seconds": round(self.seconds, 2),
            "manifest_compared": self.manifest_compared,
        }


def run_migration_test(
    target: DatabaseTarget,
    config: Config | None,
    migrations: Sequence[Migration] | None = None,
    *,
    keep: bool = False,
    compare_manifest: bool = True,
) -> ScratchReport:
    """Up/down/up every migration on a scratch database of ``target``'s server.

    The scratch database is created from ``template0`` and dropped afterwards
    (unless ``keep``), even on failure. Findings: MIGRATE_DOWN_INCOMPLETE,
    MIGRATE_REAPPLY_DIFFERS, MIGRATE_ROUNDTRIP_DIFFERS, MIGRATE_SNAPSHOT_DIFFERS
    MIGRATE_TEST_FAILED (a migration failed; the phase is the subject) (errors),
    or MIGRATE_TEST_PASSED. Raises DatabaseError when the scratch database
    cannot be created (CREATEDB needed), LockBusy/DatabaseUnreachable.
    """
    settings, local = resolve_migrations(config, migrations)
    report = ScratchReport(target=target.masked, findings=[], scratch_database="")
    started = time.monotonic()
    with db.scratch_database(
        target.dsn, target.options, prefix="empire_ops_mtest", purpose="migrate test", keep=keep
    ) as scratch_dsn:
        report.scratch_database = db.parse_dsn(scratch_dsn).dbname
        scratch = DatabaseTarget(
            dsn=scratch_dsn, embedded=target.embedded, options=target.options, source="scratch"
        )
        report.findings = _prove(scratch, config, local, settings.history_schema, report)
    report.seconds = time.monotonic() - started
    return report


def _prove(
    scratch: DatabaseTarget,
    config: Config | None,
    local: list[Migration],
    history_schema: str,
    report: ScratchReport,
) -> list[Finding]:
    out: list[Finding] = []
    with db.connect(scratch.dsn, scratch.options, autocommit=True) as conn:
        prover = _Prover(scratch, config, local, lambda: read_catalog_lines(conn, history_schema))
        try:
            prover.step_by_step(out)
            prover.round_trip(out)
        except MigrationError as exc:
            # A migration that fails on a scratch database is the test's result, not a crash.
            out.append(F.error("MIGRATE_TEST_FAILED", prover.phase, exc.message))
            return out
        if _manifest_applies(local):
            out.extend(_compare_manifest(conn, report))
    if not any(f.is_problem for f in out):
        proved = sum(1 for m in local if m.down_statements and not m.up_only)
        out.append(
            F.ok(
                "MIGRATE_TEST_PASSED",
                "migrations",
                f"{len(local)} applied, {proved} reverted and re-applied identically, "
                "down to zero and up again gives the same schema",
            )
        )
    return out


@dataclass
class _Prover:
    scratch: DatabaseTarget
    config: Config | None
    local: list[Migration]
    catalog: Callable[[], set[str]]
    phase: str = "first up"

    def _up(self, to: str | None = None) -> None:
        migrate_up(
            self.scratch, self.config, to=to, include_all=True, migrations=self.local,
            actor=_ACTOR, confirmed=True,  # a scratch database made for this run
        )  # fmt: skip

    def _down(self, to: str) -> None:
        migrate_down(
            self.scratch, self.config, to=to, confirmed=True, migrations=self.local, actor=_ACTOR
        )

    def step_by_step(self, out: list[Finding]) -> None:
        """Up, down, up each migration in turn; the down must restore the catalog exactly."""
        previous = "0"
        for mig in self.local:
            self.phase = f"{mig.filename} (up)"
            before = self.catalog()
            self._up(mig.version)
            applied = self.catalog()
            if mig.up_only or not mig.down_statements:
                out.append(
                    F.info("MIGRATE_DOWN_SKIPPED", mig.filename, "no down statements to prove")
                )
            else:
                self.phase = f"{mig.filename} (down)"
                self._down(previous)
                reverted = self.catalog()
                if reverted != before:
                    out.append(_differs("MIGRATE_DOWN_INCOMPLETE", mig.filename, before, reverted))
                self.phase = f"{mig.filename} (up after down)"
                self._up(mig.version)
                again = self.catalog()
                if again != applied:
                    out.append(_differs("MIGRATE_REAPPLY_DIFFERS", mig.filename, applied, again))
            previous = mig.version

    def round_trip(self, out: list[Finding]) -> None:
        """Down to zero and up again gives the same catalog (skipped with up-only files)."""
        if any(m.up_only for m in self.local):
            return
        first = self.catalog()
        self.phase = "down to zero"
        self._down("0")
        self.phase = "up again"
        self._up()
        second = self.catalog()
        if second != first:
            out.append(_differs("MIGRATE_ROUNDTRIP_DIFFERS", "all migrations", first, second))


_ACTOR = "empire-ops migrate test"


def _differs(code: str, subject: str, expected: set[str], actual: set[str]) -> Finding:
    lines = catalog_diff(expected, actual)
    what = {
        "MIGRATE_DOWN_INCOMPLETE": "down does not restore the schema as it was before up",
        "MIGRATE_REAPPLY_DIFFERS": "up after down gives a different schema than the first up",
        "MIGRATE_ROUNDTRIP_DIFFERS": "down to zero and up again gives a different schema",
    }[code]
    return F.error(
        code,
        subject,
        f"{what}: {'; '.join(lines)}",
        runbook="runbooks/MIGRATE_TEST_FAILED.md",
        details={"diff": lines},
    )


def _manifest_applies(local: list[Migration]) -> bool:
    """The committed manifest describes the shipped set only."""
    from ops.migrate.files import SHIPPED_DIR

    return bool(local) and all(m.path.parent == SHIPPED_DIR for m in local)


def _compare_manifest(conn: db.Connection[Any], report: ScratchReport) -> list[Finding]:
    try:
        from ops.migrate import manifest
    except ImportError:  # built separately; the catalog comparisons above still hold
        log.info("ops.migrate.manifest is not available: skipping the snapshot comparison")
        return []
    try:
        expected = manifest.load_manifest()
    except MigrationError as exc:
        return [F.info("MIGRATE_SNAPSHOT_MISSING", "expected_schema.json", exc.message)]
    changes = manifest.diff(expected, manifest.manifest_of(conn))
    report.manifest_compared = True
    if not changes:
        return [
            F.ok("MIGRATE_SNAPSHOT_EQUAL", "expected_schema.json", "schema equals the snapshot")
        ]
    shown = changes[:8] + ([f"... and {len(changes) - 8} more"] if len(changes) > 8 else [])
    return [
        F.error(
            "MIGRATE_SNAPSHOT_DIFFERS",
            "expected_schema.json",
            f"down to zero and up again differs from the committed snapshot: {'; '.join(shown)}",
            runbook="runbooks/MIGRATE_TEST_FAILED.md",
            details={"diff": changes},
        )
    ]
