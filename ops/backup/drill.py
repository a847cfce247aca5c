"""`drill run [ID|latest]`: prove a backup restores, and measure how long it takes (the RTO).

A drill restores the backup into a scratch database on the drill server (the
embedded PostgreSQL by default, or the DSN in the secret named by
``[backup.drill] dsn_secret``), never on the source, and drops it afterwards
whatever happened. It checks: the artifact (size, sha256, decoding: the
restore's own stream), pg_restore's errors (expected or real), the schema
against the committed manifest (when the backup holds the Empire schema),
every table's row count against the backup's, sequences at or above their
column's max, RLS and policies (part of the schema check), and the configured
probe queries. Each stage is timed; the total is the RTO. The JSON report is
written beside the backup (``<id>/drill-<UTC time>.json``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.backup.errors import BackupCorrupt, BackupNotFound
from ops.backup.manifest import utc_now
from ops.errors import EXIT_SECRETS, OpsError, SecretsError
from ops.findings import Finding

if TYPE_CHECKING:
    from ops.config import Config

# Schema-check codes a restored copy cannot satisfy by design: the Supabase CLI's
# history lives in an excluded schema, so pending migrations say nothing here.
_NOT_FOR_A_COPY = {"SCHEMA_PENDING_MIGRATIONS"}


@dataclass
class DrillReport(F.FindingsReport):
    """The drill's findings, timings and what it checked."""

    findings: list[Finding] = field(default_factory=list)
    backup_id: str | None = None
    repository: str | None = None
    started_at: str = ""
    stages: dict[str, float] = field(default_factory=dict)
    rto_seconds: float = 0.0
    rto_target_seconds: float = 0.0
    checks: dict[str, Any] = field(default_factory=dict)

    def extra(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id, "repository": self.repository,
            "started_at": self.started_at, "stages": self.stages,
            "rto_seconds": self.rto_seconds, "rto_target_seconds": self.rto_target_seconds,
            "checks": self.checks,
        }  # fmt: skip


def drill_server_dsn(config: Config) -> str:
    """The drill server: the DSN in ``[backup.drill] dsn_secret``, else the embedded server."""
    name = config.get("backup.drill.dsn_secret")
    if name:
        from ops.secrets import load_secrets

        value = load_secrets(config).secrets.get(name, "")
        if value:
            return str(value)
    from ops.embedded import embedded_cluster

    cluster = embedded_cluster(config)
    cluster.start()
    return cluster.url("postgres")


def _sequences_behind(conn: db.Connection[Any]) -> list[str]:
    """Column-owned sequences whose next value would collide with existing rows."""
    rows = db.run_query(
        conn,
        "select s.seqrelid::regclass::text as seq, n.nspname, c.relname, a.attname "
        "from pg_sequence s join pg_depend d on d.objid = s.seqrelid and d.deptype in ('a', 'i') "
        "join pg_class c on c.oid = d.refobjid join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum = d.refobjsubid",
    )
    behind = []
    for r in rows:
        query = db.SQL(
            "select (select coalesce(max({col})::bigint, 0) from {tab}) as top, "
            "(select case when is_called then last_value else last_value - 1 end from {seq}) as at"
        ).format(
            col=db.Identifier(r["attname"]),
            tab=db.Identifier(r["nspname"], r["relname"]),
            seq=db.SQL(r["seq"]),  # regclass text: already quoted as needed
        )
        got = db.run_query(conn, query)[0]
        if got["top"] is not None and got["at"] < got["top"]:
            behind.append(f"{r['seq']} at {got['at']} < max({r['relname']}.{r['attname']}) "
                          f"{got['top']}")  # fmt: skip
    return behind


def _probes(conn: db.Connection[Any], probes: list[dict[str, str]]) -> list[str]:
    failed = []
    for probe in probes:
        name = probe.get("name") or probe["sql"][:40]
        try:
            rows = db.run_query(conn, probe["sql"])
            got = "" if not rows else str(next(iter(rows[0].values())))
        except OpsError as exc:
            failed.append(f"{name}: {exc.message}")
            continue
        if got != str(probe["expect"]):
            failed.append(f"{name}: got {got!r}, expected {probe['expect']!r}")
    return failed


def run_drill(
    config: Config, which: str = "latest", *, repository: str | None = None
) -> DrillReport:
    """Restore ``which`` into a scratch database on the drill server and verify it; timed.

    Never raises for what a drill is meant to find: DRILL_NOT_RUN (error: no
    backup, or no identity; never a pass), BACKUP_CORRUPT (error),
    DRILL_FAILED (error), DRILL_SLOW (warning: RTO over
    ``[backup.drill] rto_target``), RESTORE_HISTORY (warning: the copy's
    migration ledger could not be rebuilt in full), DRILL_PASSED (ok). The scratch database
    is dropped even on failure; the source is never touched.
    """
    from ops.backup.catalog import find_backup
    from ops.backup.restore import (
        RestoreReport,
        _check_rows,
        _run_restore,
        prepare_target,
        restore_grants,
        restore_migration_history,
    )
    from ops.backup.stream import load_identity

    report = DrillReport(started_at=utc_now())
    report.rto_target_seconds = config.seconds("backup.drill.rto_target")
    try:
        repo, manifest = find_backup(config, which, repository)
    except BackupNotFound as exc:
        report.findings.append(F.error("DRILL_NOT_RUN", which, exc.message))
        return report
    report.backup_id, report.repository = manifest.backup_id, repo.name
    subject = f"{repo.name}:{manifest.backup_id}"
    dump = manifest.artifact("dump")
    try:
        identity = load_identity(config) if dump is not None and dump.encrypted else None
    except SecretsError as exc:
        report.findings.append(
            F.error("DRILL_NOT_RUN", subject, exc.message, exit_code=EXIT_SECRETS)
        )
        return report
    started = time.monotonic()
    problems: list[str] = []
    try:
        server = drill_server_dsn(config)
        with db.scratch_database(server, prefix="empire_drill", purpose="a restore drill") as dsn:
            t = time.monotonic()
            with db.connect(dsn, autocommit=True) as conn:
                problems += prepare_target(conn, manifest)
            report.stages["prepare"] = round(time.monotonic() - t, 3)
            restored = RestoreReport(backup_id=manifest.backup_id, repository=repo.name)
            restored.target = "scratch"
            _run_restore(repo, manifest, dsn, 1, (), identity, restored)
            grants = bool(config.get("backup.restore_grants")) and manifest.grants is not None
            if grants:
                problems += restore_grants(dsn, manifest, (), restored)
            # As a real restore does: a backup whose restored copy would read its
            # migrations as pending (and so not boot) is worth a warning.
            history_schema = str(config.get("migrate.history_schema"))
            restore_migration_history(dsn, manifest, history_schema, restored)
            report.findings += [
                f for f in restored.findings
                if f.code == "RESTORE_HISTORY" and f.severity >= F.Severity.WARNING
            ]  # fmt: skip
            report.stages.update(restored.stages)
            _check_rows(dsn, manifest, (), restored)
            report.stages["verify"] = restored.stages.get("verify", 0.0)
            t = time.monotonic()
            with db.connect(dsn, autocommit=True) as conn:
                schema = _schema_findings(conn, manifest, grants=grants)
                if grants:
                    schema += _grants_differ(conn, manifest)
                sequences = _sequences_behind(conn)
                probes = _probes(conn, list(config.get("backup.drill.probes")))
            report.stages["checks"] = round(time.monotonic() - t, 3)
    except BackupCorrupt as exc:
        report.findings.append(F.error("BACKUP_CORRUPT", subject, exc.message))
        report.findings.append(F.error("DRILL_FAILED", subject, "the backup does not read back"))
        _record(repo, manifest.backup_id, report)
        return report
    except OpsError as exc:
        report.findings.append(F.error("DRILL_FAILED", subject, exc.message))
        _record(repo, manifest.backup_id, report)
        return report
    report.rto_seconds = round(time.monotonic() - started, 3)
    report.checks = {
        "restore_errors": restored.errors, "expected_errors": restored.expected_errors,
        "rows_differ": [f.message for f in restored.findings if f.code == "RESTORE_ROWS_DIFFER"],
        "schema": [f"{f.code} {f.subject}" for f in schema], "sequences_behind": sequences,
        "probes_failed": probes, "preparation": problems, "tables": restored.tables,
        "grants_compared": grants,
    }  # fmt: skip
    failures = [
        *restored.errors, *report.checks["rows_differ"], *report.checks["schema"],
        *sequences, *probes,
    ]  # fmt: skip
    if failures:
        report.findings.append(
            F.error("DRILL_FAILED", subject, f"{len(failures)} check(s) failed, e.g. {failures[0]}",
                    details={"failures": failures[:50]})
        )  # fmt: skip
    elif report.rto_target_seconds and report.rto_seconds > report.rto_target_seconds:
        report.findings.append(
            F.warning("DRILL_SLOW", subject,
                      f"restored and verified in {report.rto_seconds:.1f} s, over the RTO target "
                      f"of {report.rto_target_seconds:.0f} s")
        )  # fmt: skip
    else:
        _mark_verified(repo, manifest)
        report.findings.append(
            F.ok("DRILL_PASSED", subject,
                 f"{restored.tables} tables restored with their row counts in "
                 f"{report.rto_seconds:.1f} s (RTO)")
        )  # fmt: skip
    _record(repo, manifest.backup_id, report)
    return report


def _schema_findings(conn: db.Connection[Any], manifest: Any, *, grants: bool) -> list[Finding]:
    """Problems of the restored schema against the committed manifest (Empire backups only).

    Without ``grants`` (the backup's grants not put back: ``restore_grants``
    off, or a backup that recorded none) the grants are the drill server's
    defaults, not the backup's: not compared.
    """
    if "public.admin_logs" not in manifest.tables:
        return []  # not the Empire schema: nothing committed to compare with
    from ops.migrate.drift import check_schema

    skip = _NOT_FOR_A_COPY | (set() if grants else {"GRANT_MISMATCH"})
    return [
        f for f in check_schema(conn, pending=False)
        if f.is_problem and f.severity >= F.Severity.ERROR and f.code not in skip
    ]  # fmt: skip


def _grants_differ(conn: db.Connection[Any], manifest: Any) -> list[Finding]:
    """GRANT_RESTORED_DIFFERS for each restored object whose grants are not the recorded ones
    (roles the drill server lacks left aside: those are preparation warnings)."""
    from ops.backup.grants import read_grants

    roles = {r["rolname"] for r in db.run_query(conn, "select rolname from pg_roles")} | {"PUBLIC"}
    have = read_grants(conn, manifest.schemas)
    out = []
    for key, entry in sorted((manifest.grants or {}).items()):
        got = have.get(key)
        if got is None:
            continue  # not restored: the row and schema checks say so
        want = {r: p for r, p in entry["grants"].items() if r in roles}
        want_cols = {}
        for column, by_role in entry.get("columns", {}).items():
            if kept := {r: p for r, p in by_role.items() if r in roles}:
                want_cols[column] = kept
        if got["grants"] != want or got.get("columns", {}) != want_cols:
            out.append(
                F.error("GRANT_RESTORED_DIFFERS", key,
                        f"{key} carries other grants than the backup recorded")
            )  # fmt: skip
    return out


def _mark_verified(repo: Any, manifest: Any) -> None:
    """A passed drill proves the backup: record ``verified_at`` (best effort, logged)."""
    import logging

    from ops.backup.verify import record_verified

    problem = record_verified(repo, manifest)
    if problem:
        logging.getLogger(__name__).warning("could not record verified_at: %s", problem)


def _record(repo: Any, backup_id: str, report: DrillReport) -> None:
    """Write the drill report beside the backup (a failure to write is logged, not raised)."""
    import logging

    # To the microsecond: two drills of one backup in one second keep both reports.
    stamp = datetime.fromisoformat(report.started_at).strftime("%Y-%m-%dT%H%M%S.%fZ")
    name = f"drill-{stamp}.json"
    payload = json.dumps(report.envelope(), indent=2, sort_keys=True, default=str).encode()
    try:
        repo.write_file(backup_id, name, payload)
    except OpsError as exc:
        logging.getLogger(__name__).warning("could not write the drill report: %s", exc.message)
