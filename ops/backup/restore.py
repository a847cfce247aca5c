"""`restore ID|latest`: a backup into a database, refusing what looks wrong, timed per stage.

Stages: *fetch* (read, hash, decrypt and decompress; into pg_restore's stdin,
or into a local file when ``-j N`` or ``--table`` needs a seekable archive),
*restore* (``pg_restore --no-owner --no-privileges``), *grants* (each
restored object given exactly the grants the backup recorded, see
:mod:`ops.backup.grants`), *history* (the migration ledger rebuilt, see
:func:`restore_migration_history`), *verify* (every restored table's row
count against the manifest's). Before restoring, the
backup's extensions are created in their schemas (the dump leaves Supabase's
``extensions`` schema out). pg_restore's errors are sorted into expected ones
(objects a Supabase-like target already has) and real ones.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.backup.manifest import BackupManifest
from ops.backup.repo.base import Repository
from ops.errors import OpsError, UsageError
from ops.findings import Finding

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)

# pg_restore errors about what a Supabase-like target already has: expected.
EXPECTED_ERRORS = (
    re.compile(r'publication "supabase_realtime" already exists'),
    re.compile(r'schema "(?:extensions|auth|storage|realtime|graphql|vault)" already exists'),
    re.compile(r'extension "[\w-]+" already exists'),
)
_TABLE_RE = re.compile(r"^[A-Za-z_][\w$]*\.[A-Za-z_][\w$]*$")


@dataclass
class RestoreReport(F.FindingsReport):
    """What a restore did, and how long each stage took (seconds)."""

    findings: list[Finding] = field(default_factory=list)
    backup_id: str = ""
    repository: str = ""
    target: str = ""
    stages: dict[str, float] = field(default_factory=dict)
    tables: int = 0
    expected_errors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return round(sum(self.stages.values()), 3)

    def extra(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id, "repository": self.repository, "target": self.target,
            "stages": self.stages, "seconds": self.seconds, "tables": self.tables,
            "expected_errors": self.expected_errors, "errors": self.errors,
        }  # fmt: skip


def classify_errors(stderr: str) -> tuple[list[str], list[str]]:
    """(expected, real) pg_restore error messages, each the server's one line."""
    expected: list[str] = []
    real: list[str] = []
    for line in stderr.splitlines():
        if "ERROR:" not in line:
            continue
        message = line.split("ERROR:", 1)[1].strip()
        (expected if any(p.search(message) for p in EXPECTED_ERRORS) else real).append(message)
    return expected, real


def user_tables(conn: db.Connection[Any], excluded: Sequence[str]) -> list[str]:
    """``schema.table`` of every ordinary table outside ``excluded`` and the system schemas."""
    rows = db.run_query(
        conn,
        "select n.nspname || '.' || c.relname as t from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'p') "
        "and not (n.nspname = any(%s)) and n.nspname not like 'pg\\_%%' "
        "and n.nspname <> 'information_schema' order by 1",
        (list(excluded),),
    )
    return [r["t"] for r in rows]


def _same_database(a: str, b: str) -> bool:
    x, y = db.parse_dsn(a), db.parse_dsn(b)
    return (x.host, x.port, x.dbname) == (y.host, y.port, y.dbname)


def prepare_target(conn: db.Connection[Any], manifest: BackupManifest) -> list[str]:
    """Make the target able to hold the backup; return what could not be done (warnings).

    The backup's extensions are created in their schemas. On a target without
    Supabase's ``auth.uid()`` (a plain PostgreSQL: the drill server), the
    Empire's bootstrap migration provides what its policies name: the API
    roles, ``auth.uid()``/``auth.jwt()`` and the ``supabase_realtime``
    publication (each created only when missing).
    """
    problems = []
    if not db.run_query(conn, "select to_regprocedure('auth.uid()') is not null as ok")[0]["ok"]:
        from ops.migrate.files import SHIPPED_DIR, load_migrations

        bootstrap = load_migrations([SHIPPED_DIR])[0]
        try:
            for stmt in bootstrap.up_statements:
                db.run_query(conn, stmt.sql)
        except Exception as exc:
            problems.append(f"Supabase roles and auth functions: {getattr(exc, 'message', exc)}")
    for ext in manifest.extensions:
        try:
            db.run_query(
                conn, db.SQL("create schema if not exists {}").format(db.Identifier(ext["schema"]))
            )
            db.run_query(
                conn,
                db.SQL("create extension if not exists {} with schema {}").format(
                    db.Identifier(ext["name"]), db.Identifier(ext["schema"])
                ),
            )
        except Exception as exc:
            message = getattr(exc, "message", str(exc))
            problems.append(f"extension {ext['name']} ({ext['schema']}): {message}")
    return problems


def restore_backup(
    config: Config,
    which: str,
    *,
    target_db: str | None = None,
    target_dsn: str | None = None,
    create: bool = False,
    jobs: int = 1,
    tables: Sequence[str] = (),
    force: bool = False,
    force_production: bool = False,
    repository: str | None = None,
    source_dsn: str | None = None,
    grants: bool | None = None,
) -> RestoreReport:
    """Restore ``which`` (an id or ``latest``) into ``target_db`` (on the configured server) or
    ``target_dsn``.

    ``grants`` (default ``[backup] restore_grants``, on) gives each restored
    object exactly the grants the backup recorded; without it the target's
    default privileges apply (on Supabase: everything to the API roles).
    Refuses, before touching anything: neither or both targets, a target that
    is the configured database itself without ``force_production``, a
    non-empty target without ``force`` (all UsageError, exit 2), a malformed
    ``--table``. Findings: RESTORE_DONE (ok), RESTORE_ERRORS (error: real
    pg_restore errors), RESTORE_ROWS_DIFFER (error), RESTORE_EXTENSION
    (warning), RESTORE_GRANTS (warning: a recorded grant that could not be
    given, e.g. to a role the target lacks), RESTORE_GRANTS_UNKNOWN (warning: the
    backup recorded none), RESTORE_HISTORY (see :func:`restore_migration_history`;
    a restore of chosen ``tables`` leaves the ledger alone). A database it
    created (``create``) is dropped again when the restore raises or is stopped
    (Ctrl-C, SIGTERM), so that the same command can be run again. Raises
    BackupNotFound/BackupIdInvalid (exit 2), BackupCorrupt (exit 1),
    SecretsError (exit 3) for the identity, DatabaseUnreachable (4).
    """
    from ops.backup.catalog import find_backup
    from ops.target import resolve_target

    if (target_db is None) == (target_dsn is None):
        raise UsageError(
            "say where to restore: --target-db NAME or --target-dsn DSN (one of them)",
            hint="e.g. `empire-ops restore latest --target-db empire_restored --create`",
        )
    bad = [t for t in tables if not _TABLE_RE.fullmatch(t)]
    if bad:
        raise UsageError(
            f"--table {bad[0]!r} is not SCHEMA.TABLE", hint="e.g. --table public.offers"
        )
    if jobs < 1:
        raise UsageError(f"-j {jobs}: use 1 or more parallel jobs")
    source = source_dsn or resolve_target(config).dsn
    dsn = target_dsn or db.with_dbname(source, target_db or "")
    if _same_database(dsn, source) and not force_production:
        raise UsageError(
            f"{db.mask_dsn(dsn)} is the configured database itself: a restore would overwrite it",
            hint="restore into another database (--target-db NAME), or say --force-production "
            "if overwriting production is what you mean",
        )
    repo, manifest = find_backup(config, which, repository)
    report = RestoreReport(backup_id=manifest.backup_id, repository=repo.name)
    report.target = db.mask_dsn(dsn)
    created = bool(create and target_db and db.ensure_database(source, target_db))
    try:
        _restore_into(config, repo, manifest, dsn, jobs, tables, force, grants, report)
    except BaseException:  # Ctrl-C and SIGTERM too
        if created and target_db:
            _drop_created(source, target_db)
        raise
    return report


def _drop_created(source: str, name: str) -> None:
    """Drop the database a failed or stopped restore created: it held nothing before, and
    a partial restore left in it would make the same command refuse it as not empty."""
    try:
        db.drop_database(source, name)
    except OpsError as exc:
        log.warning("restore: could not drop %s, which this restore created and left "
                    "partly restored: %s", name, exc.message)  # fmt: skip
    else:
        log.warning("restore: dropped %s, which this restore had created: the restore did "
                    "not finish", name)  # fmt: skip


def _restore_into(
    config: Config, repo: Repository, manifest: BackupManifest, dsn: str, jobs: int,
    tables: Sequence[str], force: bool, grants: bool | None, report: RestoreReport,
) -> None:  # fmt: skip
    """Everything :func:`restore_backup` does once the target exists."""
    from ops.backup.stream import load_identity

    excluded = list(manifest.excluded_schemas)
    with db.connect(dsn, autocommit=True) as conn:
        present = user_tables(conn, excluded)
        if present and not force:
            raise UsageError(
                f"the target {report.target} is not empty ({len(present)} tables, e.g. "
                f"{present[0]})",
                hint="restore into an empty or new database (--target-db NAME --create), or "
                "say --force to restore over what is there",
            )
        for problem in prepare_target(conn, manifest):
            report.findings.append(F.warning("RESTORE_EXTENSION", report.target, problem))
    dump = manifest.artifact("dump")
    identity = load_identity(config) if dump is not None and dump.encrypted else None
    _run_restore(repo, manifest, dsn, jobs, tables, identity, report)
    if grants is None:
        grants = bool(config.get("backup.restore_grants"))
    if grants:
        restore_grants(dsn, manifest, tables, report)
    if not tables:
        restore_migration_history(dsn, manifest, str(config.get("migrate.history_schema")), report)
    _check_rows(dsn, manifest, tables, report)


def restore_migration_history(
    dsn: str, manifest: BackupManifest, schema: str, report: RestoreReport
) -> None:
    """Stage ``history``: rebuild Supabase CLI's ledger in the restored database.

    The dump leaves ``supabase_migrations`` out with Supabase's other schemas
    (as ``supabase db dump`` does), so a restored database would read every
    migration as pending: preflight would refuse to boot and ``migrate up``
    would fail on tables that exist. The runner's side table
    (``<schema>.migration_history``) is in the dump, and
    :func:`ops.migrate.history.rebuild_ledger` records again what it says is
    applied.
    RESTORE_HISTORY (warning) when the backup's history reached further than
    the side table (migrations only Supabase CLI applied), or the side table is
    missing although the backup had a history.
    """
    from ops.migrate import history

    if manifest.migration_version is None:
        return  # the source had no migration history: nothing to rebuild
    started = time.monotonic()
    with db.connect(dsn, autocommit=True) as conn:
        applied = history.rebuild_ledger(conn, schema)
    report.stages["history"] = round(time.monotonic() - started, 3)
    newest = applied[-1] if applied else None
    if newest is None or newest < manifest.migration_version:
        report.findings.append(F.warning(
            "RESTORE_HISTORY", report.target,
            f"the backup's migration history reached {manifest.migration_version}, the "
            f"restored side table {schema}.{history.SIDE_TABLE} "
            + (f"only {newest}" if newest else "nothing")
            + ": the later ones read as pending. If Supabase CLI applied them, mark them "
            "with `supabase migration repair --status applied <version>`, then check "
            "`empire-ops migrate status`",
        ))  # fmt: skip
    else:
        report.findings.append(F.ok(
            "RESTORE_HISTORY", report.target,
            f"{len(applied)} applied migration(s) recorded again, up to {newest}",
        ))  # fmt: skip


def _run_restore(
    repo: Repository,
    manifest: BackupManifest,
    dsn: str,
    jobs: int,
    tables: Sequence[str],
    identity: Any,
    report: RestoreReport,
) -> None:
    from ops.backup.stream import ProcessSink, StderrDrain, read_artifact
    from ops.progress import ByteProgress

    dump = manifest.artifact("dump")
    assert dump is not None
    from ops.backup.tools import pg_restore_for

    tool = pg_restore_for(manifest.pg_dump_version).path
    conninfo, extra_env = db.tool_conninfo(dsn)
    import os

    env = {**os.environ, **extra_env}
    # --no-privileges: the source's roles may be missing here, and the dump's
    # GRANTs would not take back the target's default privileges anyway;
    # restore_grants() puts the backup's grants back, exactly.
    base = [str(tool), "--no-owner", "--no-privileges", f"--dbname={conninfo}"]
    if jobs == 1 and not tables:
        started = time.monotonic()
        proc = subprocess.Popen(
            base, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=env,
        )  # fmt: skip
        sink = ProcessSink(proc)
        drain = StderrDrain(proc)
        try:
            with ByteProgress(f"restore {manifest.backup_id}", dump.size) as progress:
                read_artifact(repo, manifest, dump, sink, identity=identity,
                              progress=progress.advance)  # fmt: skip
        finally:
            sink.close()
            proc.wait()
            stderr = drain.text()
        report.stages["fetch_and_restore"] = round(time.monotonic() - started, 3)
    else:
        with tempfile.TemporaryDirectory(prefix="empire-restore-") as tmp:
            archive = Path(tmp) / "dump.pgc"
            started = time.monotonic()
            with (
                open(archive, "wb") as out,
                ByteProgress(f"fetch {manifest.backup_id}", dump.size) as progress,
            ):
                read_artifact(repo, manifest, dump, out, identity=identity,
                              progress=progress.advance)  # fmt: skip
            report.stages["fetch"] = round(time.monotonic() - started, 3)
            cmd = [*base, f"--jobs={jobs}"]
            if tables:
                cmd.append(f"--use-list={_table_list(tool, archive, tables, Path(tmp))}")
            started = time.monotonic()
            done = subprocess.run([*cmd, str(archive)], capture_output=True, env=env)
            stderr = done.stderr.decode("utf-8", "replace")
            report.stages["restore"] = round(time.monotonic() - started, 3)
    report.expected_errors, report.errors = classify_errors(stderr)
    if report.errors:
        report.findings.append(
            F.error(
                "RESTORE_ERRORS", report.target,
                f"pg_restore reported {len(report.errors)} error(s), e.g. {report.errors[0]}",
                details={"errors": report.errors[:20]},
            )
        )  # fmt: skip


def restore_grants(
    dsn: str, manifest: BackupManifest, tables: Sequence[str], report: RestoreReport
) -> list[str]:
    """Give the restored objects exactly the backup's recorded grants (stage ``grants``).

    Returns the problems, each also a RESTORE_GRANTS warning; a backup that
    recorded no grants (taken before they were recorded) is one
    RESTORE_GRANTS_UNKNOWN warning and leaves the target's defaults.
    """
    from ops.backup.grants import apply_grants

    if manifest.grants is None:
        report.findings.append(
            F.warning("RESTORE_GRANTS_UNKNOWN", report.target,
                      f"{manifest.backup_id} recorded no grants: the restored objects carry the "
                      "target's default privileges")
        )  # fmt: skip
        return []
    started = time.monotonic()
    with db.connect(dsn, autocommit=True) as conn:
        problems = apply_grants(conn, manifest.grants, only=tables)
    report.stages["grants"] = round(time.monotonic() - started, 3)
    if problems:
        report.findings.append(
            F.warning("RESTORE_GRANTS", report.target,
                      f"{len(problems)} recorded grant(s) could not be given, e.g. {problems[0]}",
                      details={"problems": problems[:50]})
        )  # fmt: skip
    return problems


def _table_list(tool: Path, archive: Path, tables: Sequence[str], tmp: Path) -> Path:
    """A ``--use-list`` file with only the chosen tables' TABLE and TABLE DATA entries."""
    listing = subprocess.run(
        [str(tool), "--list", str(archive)], capture_output=True, text=True, check=True
    ).stdout
    wanted = {tuple(t.split(".", 1)) for t in tables}
    keep = []
    for line in listing.splitlines():
        # e.g. "245; 1259 16390 TABLE public offers postgres"
        m = re.match(r"^\d+; \d+ \d+ (TABLE DATA|TABLE) (\S+) (\S+) ", line)
        if m and (m.group(2), m.group(3)) in wanted:
            keep.append(line)
    found = {tuple(ln.split()[-3:-1]) for ln in keep}
    missing = [".".join(t) for t in wanted if t not in found]
    if missing:
        raise UsageError(
            f"the backup holds no table {', '.join(sorted(missing))}",
            hint="see its tables with `empire-ops backup info ID`",
        )
    path = tmp / "tables.list"
    path.write_text("\n".join(keep) + "\n")
    return path


def _check_rows(
    dsn: str, manifest: BackupManifest, tables: Sequence[str], report: RestoreReport
) -> None:
    from ops.backup.dump import count_rows

    started = time.monotonic()
    wanted = list(tables) or list(manifest.tables)
    differ = []
    with db.connect(dsn, autocommit=True) as conn:
        for name in wanted:
            try:
                count = count_rows(conn, name)
            except Exception:
                count = -1
            if count != manifest.tables.get(name, -2):
                differ.append(f"{name}: {count if count >= 0 else 'missing'} rows, "
                              f"backup had {manifest.tables.get(name)}")  # fmt: skip
    report.stages["verify"] = round(time.monotonic() - started, 3)
    report.tables = len(wanted)
    if differ:
        report.findings.append(
            F.error("RESTORE_ROWS_DIFFER", report.target,
                    f"{len(differ)} table(s) differ from the backup: {differ[0]}",
                    details={"tables": differ[:50]})
        )  # fmt: skip
    elif not report.errors:
        report.findings.append(
            F.ok("RESTORE_DONE", report.target,
                 f"{manifest.backup_id}: {len(wanted)} tables with the backup's row counts, "
                 f"in {report.seconds:.1f} s")
        )  # fmt: skip
