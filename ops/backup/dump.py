"""`backup run`: one streaming pass from pg_dump into every repository, the manifest last.

The pipeline::

    pg_dump -Fc (-Z0 when we compress) --snapshot=S
      -> zstd (zstandard, streamed)            [compression = "zstd"]
      -> age, to the configured recipients     [recipients = [...]]
      -> sha256 + byte count -> each repository's writer (temporary name)

Nothing holds the dump in memory or reads it twice. The exported snapshot
``S`` is the one the row counts are taken in, so the manifest's counts are
exactly what the dump holds; they are counted while pg_dump runs (in the
exporting transaction, on its own connection), not before it. Each
repository gets the artifact under a temporary name, committed only when the
stream ended well; then the manifest is written, last. A repository that
fails mid-stream is dropped (its upload aborted, a FAILED manifest tried
there) while the others keep their copy. One backup of a database at a time:
the ``backup`` advisory lock (exit 5).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.backup.errors import RepositoryError
from ops.backup.manifest import (
    STATUS_COMPLETE,
    STATUS_FAILED,
    Artifact,
    BackupManifest,
    new_backup_id,
    utc_now,
)
from ops.backup.repo import open_repository
from ops.backup.repo.base import ArtifactWriter, Repository, iter_chunks
from ops.errors import BackupError, OpsError
from ops.findings import Finding
from ops.migrate.report import FindingsReport
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)
LOCK_NAME = "backup"
CHUNK = 1 << 20
# The failure recorded for a backup stopped by Ctrl-C or SIGTERM: pg_dump is stopped,
# the partial files removed (multipart uploads aborted), the manifests say failed.
STOPPED = "stopped by Ctrl-C or SIGTERM before it finished"
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True)
class BackupSettings:
    """What a backup takes from config."""

    compression: str = "zstd"
    zstd_level: int = 3
    recipients: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    pg_dump: str = ""
    lock_timeout: float = 5.0

    @classmethod
    def from_config(cls, config: Config) -> BackupSettings:
        return cls(
            compression=config.get("backup.compression"),
            zstd_level=config.get("backup.zstd_level"),
            recipients=tuple(config.get("backup.recipients")),
            exclude_schemas=tuple(config.get("backup.exclude_schemas")),
            pg_dump=config.get("backup.pg_dump"),
            lock_timeout=config.seconds("backup.lock_timeout"),
        )

    @property
    def dump_name(self) -> str:
        """The artifact's file name: says how to open it by hand."""
        suffix = {"zstd": ".zst", "pg_dump": "", "none": ""}[self.compression]
        return f"dump.pgc{suffix}{'.age' if self.recipients else ''}"


def configured_repositories(config: Config, names: Sequence[str] = ()) -> list[Repository]:
    """The ``[backup.repos]`` repositories (all, or ``names``); none set: ``<state>/backups``.

    Raises UsageError (exit 2) for a name that is not configured.
    """
    from ops.errors import UsageError

    repos: dict[str, dict[str, Any]] = dict(config.get("backup.repos") or {})
    if not repos:
        repos = {"local": {"url": f"file:{config.state_dir / 'backups'}"}}
    unknown = [n for n in names if n not in repos]
    if unknown:
        raise UsageError(
            f"no backup repository named {', '.join(unknown)}",
            hint=f"configured: {', '.join(repos)} ([backup.repos.<name>] in empire-ops.toml)",
        )
    out = []
    for name, options in repos.items():
        if names and name not in names:
            continue
        opts = {k: v for k, v in options.items() if k != "url"}
        opts["base_dir"] = str(config.base_dir)
        out.append(open_repository(name, options.get("url", ""), opts))
    return out


def recipient_fingerprint(recipient: str) -> str:
    """A short, stable name for a public key (sha256 prefix): safe in any output."""
    return "age:" + hashlib.sha256(recipient.encode()).hexdigest()[:16]


@dataclass
class BackupReport(FindingsReport):
    """What `backup run` did, per repository."""

    backup_id: str = ""
    manifest: BackupManifest | None = None
    repositories: dict[str, str] = field(default_factory=dict)  # name -> complete | failed
    seconds: float = 0.0

    def extra(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "backup_id": self.backup_id,
            "repositories": self.repositories,
            "seconds": round(self.seconds, 3),
            "size": m.size if m else 0,
            "tables": len(m.tables) if m else 0,
            "rows": sum(m.tables.values()) if m else 0,
        }


class _Tee:
    """The pipeline's end: hashes and counts, and feeds every live repository writer."""

    def __init__(self, writers: dict[str, ArtifactWriter]) -> None:
        self.writers = writers
        self.failed: dict[str, str] = {}
        self.sha = hashlib.sha256()
        self.size = 0

    # file-object face, for pyrage.encrypt_io
    def writable(self) -> bool:
        return True

    def write(self, chunk: bytes | bytearray | memoryview) -> int:
        data = bytes(chunk)
        self.sha.update(data)
        self.size += len(data)
        for name, writer in list(self.writers.items()):
            try:
                writer.write(data)
            except (OpsError, OSError) as exc:
                self._drop(name, writer, exc)
        if not self.writers:
            raise RepositoryError(
                "every backup repository failed: " + "; ".join(self.failed.values())
            )
        return len(data)

    def flush(self) -> None:
        pass

    def _drop(self, name: str, writer: ArtifactWriter, exc: BaseException) -> None:
        message = exc.message if isinstance(exc, OpsError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, OpsError) and exc.hint:
            message += f" ({exc.hint})"  # the fix reaches the report, not only the log
        log.warning("backup repository %s failed, the others go on: %s", name, message)
        self.failed[name] = message
        del self.writers[name]
        try:
            writer.abort()
        except Exception as abort_exc:  # the upload is lost anyway; say so, do not mask
            log.warning("could not abort the upload to %s: %s", name, abort_exc)

    def commit_all(self) -> None:
        for name, writer in list(self.writers.items()):
            try:
                writer.commit()
            except (OpsError, OSError) as exc:
                self._drop(name, writer, exc)

    def abort_all(self) -> None:
        for writer in self.writers.values():
            try:
                writer.abort()
            except Exception as exc:
                log.warning("could not abort an upload: %s", exc)
        self.writers.clear()


ZSTD_JOB_SIZE = 4 << 20


def _source(
    proc: subprocess.Popen[bytes],
    settings: BackupSettings,
    strip: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> IO[bytes]:
    assert proc.stdout is not None
    dump: IO[bytes] = proc.stdout
    if progress is not None:
        from ops.backup.stream import ObservedReader

        dump = ObservedReader(dump, progress)  # type: ignore[assignment]
    if strip:
        from ops.backup.archive import TocRewriter, strip_column_options

        options = list(strip)
        dump = TocRewriter(dump, lambda defn: strip_column_options(defn, options))  # type: ignore[assignment]
    if settings.compression != "zstd":
        return dump
    import zstandard

    # One worker per CPU, in 4 MiB jobs: as fast here as zstd's default job size
    # (8 MiB and up with the level) and about 20 MiB less resident memory.
    params = zstandard.ZstdCompressionParameters.from_level(
        settings.zstd_level, threads=-1, job_size=ZSTD_JOB_SIZE
    )
    compressor = zstandard.ZstdCompressor(compression_params=params)
    reader: IO[bytes] = compressor.stream_reader(dump, read_size=CHUNK)
    return reader


def _stream(source: IO[bytes], tee: _Tee, recipients: Sequence[str]) -> None:
    if recipients:
        import pyrage
        from pyrage import x25519

        keys = [x25519.Recipient.from_str(r) for r in recipients]
        pyrage.encrypt_io(source, tee, keys)
    else:
        for chunk in iter_chunks(source, CHUNK):
            tee.write(chunk)


def _database_facts(conn: db.Connection[Any]) -> dict[str, Any]:
    major, full = db.server_version(conn)
    facts: dict[str, Any] = {
        "name": db.run_query(conn, "select current_database() as d")[0]["d"],
        "server_version": full.split(" on ")[0],
        "server_major": major,
    }
    try:  # superuser (or granted) only; a managed project may not allow it
        row = db.run_query(conn, "select system_identifier::text as s from pg_control_system()")
        facts["system_identifier"] = row[0]["s"]
    except OpsError:
        facts["system_identifier"] = None
    return facts


def count_rows(conn: db.Connection[Any], qualified: str) -> int:
    """Exact ``count(*)`` of the table ``schema.table`` (names quoted, never formatted)."""
    schema, table = qualified.split(".", 1)
    query = db.SQL("select count(*) as n from {}.{}").format(
        db.Identifier(schema), db.Identifier(table)
    )
    return int(db.run_query(conn, query)[0]["n"])


def _snapshot_facts(
    conn: db.Connection[Any], excluded: Sequence[str]
) -> tuple[str, list[str], dict[str, int], list[dict[str, str]], str | None]:
    """In the open repeatable-read transaction: snapshot id, schemas, the tables (their
    counts still 0: :class:`_RowCounter` fills them while pg_dump runs), extensions."""
    skip = [*excluded, *_SYSTEM_SCHEMAS]
    snapshot = db.run_query(conn, "select pg_export_snapshot() as s")[0]["s"]
    schemas = [
        r["nspname"]
        for r in db.run_query(
            conn,
            "select nspname from pg_namespace where not (nspname = any(%s)) "
            "and nspname not like 'pg\\_temp\\_%%' and nspname not like 'pg\\_toast\\_temp\\_%%' "
            "order by 1",
            (skip,),
        )
    ]
    tables = db.run_query(
        conn,
        "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind = 'r' and n.nspname = any(%s) order by 1, 2",
        (schemas,),
    )
    names = [f"{t['nspname']}.{t['relname']}" for t in tables]
    counts = dict.fromkeys(names, 0)
    extensions = [
        {"name": r["extname"], "schema": r["nspname"], "version": r["extversion"]}
        for r in db.run_query(
            conn,
            "select e.extname, n.nspname, e.extversion from pg_extension e "
            "join pg_namespace n on n.oid = e.extnamespace where e.extname <> 'plpgsql' order by 1",
        )
    ]
    version = None
    if db.run_query(conn, "select to_regclass('supabase_migrations.schema_migrations') as t")[0][
        "t"
    ]:
        row = db.run_query(
            conn, "select max(version) as v from supabase_migrations.schema_migrations"
        )
        version = row[0]["v"]
    return snapshot, schemas, counts, extensions, version


def _dump_size_estimate(conn: db.Connection[Any], schemas: list[str]) -> int:
    """About the bytes pg_dump will write: its COPY text is near the tables' own size
    (indexes are rebuilt, not dumped). For the progress bar's ETA only."""
    rows = db.run_query(
        conn,
        "select coalesce(sum(pg_table_size(c.oid)), 0)::bigint as n from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace where c.relkind = 'r' "
        "and n.nspname = any(%s)",
        (schemas,),
    )
    return int(rows[0]["n"])


class _RowCounter(threading.Thread):
    """Counts every table's rows on the snapshot's own connection while pg_dump runs.

    The connection is used by this thread alone until :meth:`join`; an error
    is kept (``error``), never raised in the thread.
    """

    def __init__(self, conn: db.Connection[Any], tables: list[str]) -> None:
        super().__init__(name="backup-row-counter", daemon=True)
        self.conn = conn
        self.tables = tables
        self.counts: dict[str, int] = {}
        self.error: str | None = None
        self.stopping = False

    def stop(self) -> None:
        """Count no further table, and cancel the count running (the backup was stopped)."""
        self.stopping = True
        db.cancel(self.conn)

    def run(self) -> None:
        try:
            for name in self.tables:
                if self.stopping:
                    break
                self.counts[name] = count_rows(self.conn, name)
        except OpsError as exc:
            self.error = exc.message
        except Exception as exc:  # a driver error mid-count: reported by the caller
            self.error = f"{type(exc).__name__}: {exc}"


def _pg_dump_command(
    tool: Any, settings: BackupSettings, conninfo: str, snapshot: str
) -> list[str]:
    cmd = [
        str(tool.path), "--format=custom", "--no-password", f"--snapshot={snapshot}",
        f"--dbname={conninfo}",
    ]  # fmt: skip
    if settings.compression != "pg_dump":
        cmd.append("--compress=0")  # we compress (zstd) or nobody does
    for schema in settings.exclude_schemas:
        cmd.append(f"--exclude-schema={schema}")
    return cmd


def run_backup(
    target: DatabaseTarget, config: Config, *, repositories: Sequence[str] = ()
) -> BackupReport:
    """Take one backup of ``target`` into the configured repositories (or ``repositories``).

    Findings: BACKUP_TAKEN (ok) per repository that holds the complete
    backup, BACKUP_FAILED (error) per repository that does not. Raises
    LockBusy (exit 5) when another backup of this database runs,
    PgDumpUnusable (exit 2), DatabaseUnreachable (exit 4), UsageError (exit 2)
    for an unknown repository name.
    """
    from ops import installed_version
    from ops.backup.archive import internal_column_options
    from ops.backup.grants import read_grants
    from ops.backup.tools import find_tool

    settings = BackupSettings.from_config(config)
    repos = configured_repositories(config, repositories)
    started = time.monotonic()
    backup_id = new_backup_id()
    report = BackupReport(target.masked, [], backup_id=backup_id)
    why = "a backup (pg_dump's snapshot and the 'backup' advisory lock)"
    with (
        db.connect(target.dsn, target.options, autocommit=True, session=why) as lock_conn,
        db.advisory_lock(lock_conn, LOCK_NAME, settings.lock_timeout),
    ):
        facts = _database_facts(lock_conn)
        tool = find_tool("pg_dump", server_major=facts["server_major"], configured=settings.pg_dump)
        with db.connect(target.dsn, target.options, session=why) as snap_conn:
            db.run_query(snap_conn, "set transaction isolation level repeatable read, read only")
            snapshot, schemas, counts, extensions, version = _snapshot_facts(
                snap_conn, settings.exclude_schemas
            )
            manifest = BackupManifest(
                backup_id=backup_id, status=STATUS_FAILED, database=facts,
                pg_dump_version=tool.version, format="custom",
                compression=settings.compression,
                zstd_level=settings.zstd_level if settings.compression == "zstd" else None,
                recipients=[recipient_fingerprint(r) for r in settings.recipients],
                started_at=utc_now(), finished_at="", seconds=0.0, schemas=schemas,
                excluded_schemas=list(settings.exclude_schemas), tables=counts,
                migration_version=version, empire_ops_version=installed_version(),
                extensions=extensions, grants=read_grants(snap_conn, schemas),
                stripped_column_options=internal_column_options(snap_conn),
            )  # fmt: skip
            estimate = _dump_size_estimate(snap_conn, schemas)
            # The snapshot lives as long as this transaction: pg_dump runs inside it,
            # while this connection counts the rows in it.
            counter = _RowCounter(snap_conn, list(counts))
            counter.start()
            tee, error = _dump(
                target, settings, tool, snapshot, repos, backup_id,
                strip=manifest.stripped_column_options, estimate=estimate,
            )  # fmt: skip
            if error == STOPPED:
                counter.stop()
            counter.join()
            if counter.error is not None and error is None:
                # Its manifests say failed: a backup without its counts is not proven.
                error = f"counting the rows in the dump's snapshot failed: {counter.error}"
            manifest.tables = counter.counts
    manifest.finished_at = utc_now()
    manifest.seconds = round(time.monotonic() - started, 3)
    report.seconds = manifest.seconds
    report.manifest = manifest
    done = Artifact(
        settings.dump_name, "dump", tee.size, tee.sha.hexdigest(), settings.compression,
        bool(settings.recipients),
    )  # fmt: skip
    extra: dict[str, Artifact] = {}
    if config.get("backup.secrets_snapshot") and error is None:
        live = [r for r in repos if r.name not in tee.failed]
        extra, problem = _store_secrets_snapshot(config, live, backup_id)
        if problem:
            report.findings.append(F.warning("BACKUP_SECRETS_SNAPSHOT_FAILED", backup_id, problem))
    for repo in repos:
        failure = error or tee.failed.get(repo.name)
        record = _manifest_for(manifest, done, failure)
        if not failure and repo.name in extra:
            record.artifacts.append(extra[repo.name])
        try:
            repo.write_manifest(record)
        except OpsError as exc:
            failure = failure or exc.message
        report.repositories[repo.name] = "failed" if failure else "complete"
        if not failure and (report.manifest is None or not report.manifest.complete):
            report.manifest = record
        report.findings.append(_finding(repo, record, failure))
    if error == STOPPED:  # recorded as failed in every repository; now stop as asked (exit 130)
        raise KeyboardInterrupt
    return report


def _store_secrets_snapshot(
    config: Config, repos: Sequence[Repository], backup_id: str
) -> tuple[dict[str, Artifact], str | None]:
    """Write an encrypted secrets snapshot (``secrets snapshot``'s format) beside the backup.

    Returns the artifact per repository that took it, and what went wrong
    (None when all did). The snapshot is encrypted with its own passphrase
    (``[secrets.snapshot]``); the manifest records only its size and sha256.
    """
    import tempfile
    from pathlib import Path

    from ops.secrets.snapshot import snapshot_secrets

    try:
        with tempfile.TemporaryDirectory(prefix="empire-secrets-") as tmp:
            blob = snapshot_secrets(config, folder=Path(tmp)).path.read_bytes()
    except OpsError as exc:
        return {}, f"no secrets snapshot beside the backup: {exc.message}"
    artifact = Artifact(
        "secrets.snap", "secrets", len(blob), hashlib.sha256(blob).hexdigest(), "none", True
    )
    stored: dict[str, Artifact] = {}
    problems = []
    for repo in repos:
        try:
            writer = repo.artifact_writer(backup_id, artifact.name)
            writer.write(blob)
            writer.commit()
            stored[repo.name] = artifact
        except OpsError as exc:
            problems.append(f"{repo.name}: {exc.message}")
    return stored, ("; ".join(problems) or None)


def _manifest_for(base: BackupManifest, artifact: Artifact, failure: str | None) -> BackupManifest:
    from dataclasses import replace

    if failure:
        return replace(base, status=STATUS_FAILED, artifacts=[], error=failure)
    return replace(base, status=STATUS_COMPLETE, artifacts=[artifact], error=None)


def _finding(repo: Repository, manifest: BackupManifest, failure: str | None) -> Finding:
    if failure:
        return F.error(
            "BACKUP_FAILED", f"{repo.name}:{manifest.backup_id}",
            f"the backup did not complete in {repo.describe()}: {failure}",
        )  # fmt: skip
    rows = sum(manifest.tables.values())
    return F.ok(
        "BACKUP_TAKEN", f"{repo.name}:{manifest.backup_id}",
        f"{manifest.size} bytes, {len(manifest.tables)} tables, {rows} rows, "
        f"in {manifest.seconds:.1f} s",
    )  # fmt: skip


def _dump(
    target: DatabaseTarget,
    settings: BackupSettings,
    tool: Any,
    snapshot: str,
    repos: Sequence[Repository],
    backup_id: str,
    *,
    strip: Sequence[str] = (),
    estimate: int | None = None,
) -> tuple[_Tee, str | None]:
    """Run pg_dump into every repository; (the tee, the error that failed them all or None)."""
    from ops.backup.stream import StderrDrain
    from ops.logs import redact
    from ops.progress import ByteProgress

    writers: dict[str, ArtifactWriter] = {}
    failed: dict[str, str] = {}
    for repo in repos:
        try:
            writers[repo.name] = repo.artifact_writer(backup_id, settings.dump_name)
        except OpsError as exc:
            failed[repo.name] = exc.message
    tee = _Tee(writers)
    tee.failed.update(failed)
    if not writers:
        return tee, "no repository could be written: " + "; ".join(failed.values())
    conninfo, extra_env = db.tool_conninfo(target.dsn)
    env = {**os.environ, **extra_env}
    cmd = _pg_dump_command(tool, settings, conninfo, snapshot)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    stderr = StderrDrain(proc)
    error: str | None = None
    try:
        with ByteProgress(f"backup {backup_id}", estimate, estimated=True) as progress:
            _stream(_source(proc, settings, strip, progress.advance), tee, settings.recipients)
    except (OpsError, OSError, BackupError) as exc:
        error = exc.message if isinstance(exc, OpsError) else f"{type(exc).__name__}: {exc}"
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (ops.cliutil.sigterm_interrupts)
        error = STOPPED
    except Exception as exc:  # pyrage/zstandard errors: the stream broke
        error = f"the backup stream broke: {type(exc).__name__}: {exc}"
    finally:
        if error is not None and proc.poll() is None:
            proc.kill()
        rc = proc.wait()
        said = stderr.text(timeout=10)
    if rc != 0 and error is None:
        text = said.strip().splitlines()
        error = f"pg_dump exited {rc}: {redact(text[-1] if text else '(no message)')}"
    if error is not None:
        tee.abort_all()
        log.error("backup %s failed: %s", backup_id, error)
        return tee, error
    tee.commit_all()
    return tee, None
