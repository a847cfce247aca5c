"""Collect everything the dashboard shows into one :class:`HealthSnapshot`.

Each part (secrets, migrations, the database, security lints, backups,
drills, alerts, logs, the scheduler) is read by one function that returns a
:class:`Part`. A part that is not set up says ``not_configured`` with how to
set it up, never a made-up value; a part that fails becomes a
DASHBOARD_PART_FAILED finding and a ``failed`` part, and the build goes on.
The database parts share one connection whose statements each run under
``[dashboard] statement_timeout``.

Nothing here holds a secret value: secrets are shown by name, source and
fingerprint, query texts without their literals, and the whole snapshot
goes through the redaction filter before anyone sees it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.errors import OpsError
from ops.findings import Finding

if TYPE_CHECKING:
    from ops.config import Config
    from ops.secrets.merge import LoadResult
    from ops.target import DatabaseTarget

log = logging.getLogger(__name__)

# The version of db-health.json (docs/dashboard.md, dashboards/db-health.schema.json).
# Bump it when a key changes meaning or goes away; adding keys does not.
SNAPSHOT_VERSION = 1
PART_NAMES = (
    "secrets", "migrations", "database", "security", "backups", "drills", "alerts", "logs",
    "scheduler",
)  # fmt: skip
_DRILLS_READ = 20


@dataclass
class Part:
    """One section of the page: ``state`` is ok, not_configured, unreachable or failed."""

    state: str = "ok"
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "note": self.note, "seconds": round(self.seconds, 3),
                **self.data}  # fmt: skip


@dataclass
class HealthSnapshot:
    """Everything one dashboard build saw, ready for the page and db-health.json."""

    generated_at: str
    project: str
    env: str
    database: str
    parts: dict[str, Part]
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def findings(self) -> list[Finding]:
        """Every part's findings, worst first (then by code and subject)."""
        found = [f for p in self.parts.values() for f in p.findings]
        return sorted(found, key=lambda f: (-f.severity, f.code, f.subject))

    @property
    def status(self) -> str:
        return F.worst(self.findings).label

    def counts(self) -> dict[str, int]:
        """How many findings of each severity."""
        out = {s.label: 0 for s in reversed(F.Severity)}
        for f in self.findings:
            out[f.severity.label] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """db-health.json (docs/dashboard.md), redacted as a last line of defence."""
        from ops.logs import redact_data

        return redact_data(
            {
                "schema_version": SNAPSHOT_VERSION,
                "generated_at": self.generated_at,
                "project": self.project,
                "env": self.env,
                "database": self.database,
                "status": self.status,
                "counts": self.counts(),
                "findings": [f.to_dict() for f in self.findings],
                "parts": {name: part.to_dict() for name, part in self.parts.items()},
                "history": self.history,
                "build_seconds": round(self.seconds, 3),
            }
        )


@dataclass
class _Context:
    config: Config
    loaded: LoadResult | None
    target: DatabaseTarget | None
    now: float
    conn: Any = None
    top: int = 20
    drill_reports: list[dict[str, Any]] = field(default_factory=list)
    catalog_findings: list[Finding] | None = None  # set by the migrations part
    # False once the database did not answer: the other parts then read only this
    # host's state instead of each waiting out the connect timeout again.
    reachable: bool = True


def collect_snapshot(
    config: Config,
    *,
    loaded: LoadResult | None = None,
    target: DatabaseTarget | None = None,
    now: float | None = None,
    record: bool = True,
) -> HealthSnapshot:
    """Read every part into a snapshot; ``record`` appends its headline numbers to the history.

    ``loaded`` are secrets already loaded (``up`` passes its own); else they
    are loaded here. ``target`` is the database; else the configured one,
    without starting the embedded server (a stopped one is "unreachable").
    Never raises for a part: its failure is a finding. Raises OpsError only
    when the state store cannot be used at all (exit 2, or 1 for a full disk)
    and ``record`` is set.
    """
    from ops.target import existing_target

    started = time.monotonic()
    now = time.time() if now is None else now
    if loaded is None:
        from ops.secrets import load_secrets

        loaded = load_secrets(config)
    if target is None:
        target = existing_target(config, loaded.secrets)
    ctx = _Context(config, loaded, target, now, top=int(config.get("dashboard.top")))
    parts: dict[str, Part] = {}
    first = _connect(ctx, parts)
    ctx.reachable = first is not None
    # The three groups wait on different servers (two database sessions, the backup
    # repositories and the state store): run side by side, a build takes about as
    # long as its slowest group. Parts of a group share its context and run in order.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(_GROUPS), thread_name_prefix="dashboard") as pool:
        futures = [
            pool.submit(_read_group, group, replace(ctx), first if i == 0 else None, dict(parts))
            for i, group in enumerate(_GROUPS)
        ]
        for future in futures:
            parts.update(future.result())
    snapshot = HealthSnapshot(
        generated_at=datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        project=str(config.get("project.name")),
        env=config.env,
        database=target.masked if target is not None else "not configured",
        parts={name: parts[name] for name in PART_NAMES},
    )
    _record_history(config, snapshot, now, record)
    snapshot.seconds = time.monotonic() - started
    return snapshot


def _connect(ctx: _Context, parts: dict[str, Part]) -> Any:
    """One connection for the database parts, or those parts marked unreachable."""
    if ctx.target is None:
        note = ("no database is configured and the embedded one is not running: "
                "`empire-ops up` starts it")  # fmt: skip
        for name in _DATABASE_PARTS:
            parts[name] = Part("not_configured", note)
        return None
    try:
        return _session(ctx)
    except OpsError as exc:
        finding = F.error("DB_UNREACHABLE", ctx.target.masked, exc.message_with_hint,
                          exit_code=exc.exit_code)  # fmt: skip
        for name in _DATABASE_PARTS:
            parts[name] = Part("unreachable", exc.message)
        parts["database"].findings.append(finding)
        return None


def _session(ctx: _Context) -> Any:
    """A connection whose statements stop at ``[dashboard] statement_timeout``.

    The timeout is a startup option, not a ``SET``: through a transaction-mode
    pooler (fine for these reads) a session-level ``SET`` would stay on the
    server connection for whichever client gets it next.
    """
    from ops import db

    assert ctx.target is not None
    timeout = ctx.config.seconds("dashboard.statement_timeout")
    options = replace(ctx.target.options, statement_timeout=timeout)
    return db.connect(ctx.target.dsn, options, autocommit=True)


def _read_group(
    group: list[tuple[str, Callable[[_Context], Part]]],
    ctx: _Context,
    conn: Any,
    known: dict[str, Part],
) -> dict[str, Part]:
    """Read a group's parts in order; a database group uses ``conn`` or a session of its own.

    Parts already in ``known`` (not configured, unreachable) are not read.
    Never raises: a session that cannot be opened fails the group's parts.
    """
    out: dict[str, Part] = {}
    todo = [(name, read) for name, read in group if name not in known]
    if not todo:
        return out
    try:
        if any(name in _DATABASE_PARTS for name, _ in todo):
            ctx.conn = conn if conn is not None else _session(ctx)
        for name, read in todo:
            out[name] = _read_part(name, read, ctx)
    except OpsError as exc:  # the second session was refused (max_connections reached)
        out.update({name: _failed(name, exc.message_with_hint) for name, _ in todo
                    if name not in out})  # fmt: skip
    finally:
        if ctx.conn is not None:
            ctx.conn.close()
    return out


def _read_part(name: str, read: Callable[[_Context], Part], ctx: _Context) -> Part:
    started = time.monotonic()
    try:
        part = read(ctx)
    except OpsError as exc:
        part = _failed(name, exc.message_with_hint)
    except Exception as exc:  # a bug in one part must not hide the other eight
        log.warning("dashboard: the %s part failed", name, exc_info=True)
        part = _failed(name, f"{type(exc).__name__}: {exc}")
    part.seconds = time.monotonic() - started
    return part


def _failed(name: str, message: str) -> Part:
    from ops.logs import redact

    message = redact(message)
    finding = F.warning("DASHBOARD_PART_FAILED", name,
                        f"the {name} part could not be read: {message}")  # fmt: skip
    return Part("failed", message, findings=[finding])


# -- the parts ---------------------------------------------------------------------------
def _secrets(ctx: _Context) -> Part:
    from dashboards import history
    from ops.alerts.store import open_store
    from ops.secrets.status import status_report

    assert ctx.loaded is not None
    report = status_report(ctx.loaded, ctx.config)
    with open_store(ctx.config) as store:
        first_seen = history.secret_ages(store, report.secrets, ctx.now)
    rows = []
    for row in report.secrets:
        since = first_seen.get(row["name"])
        rows.append({**row, "unchanged_since": _iso(since),
                     "age_seconds": round(ctx.now - since) if since else None})  # fmt: skip
    sources = [{k: s[k] for k in ("name", "status", "count", "where", "note")}
               for s in report.sources]  # fmt: skip
    return Part(data={"env": report.env, "sources": sources, "items": rows},
                findings=list(report.findings))  # fmt: skip


def _migrations(ctx: _Context) -> Part:
    from dataclasses import asdict

    from ops.migrate.drift import run_check
    from ops.migrate.status import status_on

    assert ctx.target is not None
    status = status_on(ctx.conn, ctx.target.masked, ctx.config)
    check = run_check(ctx.conn, ctx.config, pending=False)
    # Lints are the security part's; the database part finds duplicate indexes in
    # every schema (the lint, in ours only, would name the same ones twice).
    ctx.catalog_findings = [f for f in check.findings if f.code.startswith("LINT_")]
    drift = [f for f in check.findings if not f.code.startswith("LINT_")]
    counts: dict[str, int] = {}
    for e in status.entries:
        counts[e.state] = counts.get(e.state, 0) + 1
    pending = [asdict(e) for e in status.pending]
    applied = [e for e in status.entries if e.state == "applied"]
    return Part(
        data={
            "applied": len(applied),
            "pending": pending,
            "states": counts,
            "newest_applied": asdict(applied[-1]) if applied else None,
            "drift": [f.to_dict() for f in drift if f.severity > F.Severity.OK],
            "tables_checked": check.tables,
        },
        findings=[*status.findings, *drift],
    )


def _database(ctx: _Context) -> Part:
    from dashboards.dbstats import database_health

    long_query = ctx.config.seconds("dashboard.long_query")
    health = database_health(ctx.conn, long_query_seconds=long_query)
    data = health.data
    data["long_query_seconds"] = long_query
    return Part(data=data, findings=health.findings)


def _security(ctx: _Context) -> Part:
    if ctx.catalog_findings is None:
        return Part("failed", "the lints read the catalog the migrations part could not read")
    lints = [f for f in ctx.catalog_findings if f.code != "LINT_DUPLICATE_INDEX"]
    by_code: dict[str, int] = {}
    for f in lints:
        by_code[f.code] = by_code.get(f.code, 0) + 1
    return Part(data={"lints": [f.to_dict() for f in lints], "by_code": by_code},
                findings=lints)  # fmt: skip


def _backups(ctx: _Context) -> Part:
    from ops.backup.catalog import list_backups
    from ops.backup.dump import configured_repositories

    listing = list_backups(ctx.config)
    repos = []
    newest_verified: str | None = None
    for name, entry in listing.repositories.items():
        backups = list(entry.get("backups", []))
        complete = [b for b in backups if b["status"] == "complete"]
        for b in complete:
            verified = b.get("verified_at")
            if verified and (newest_verified is None or verified > newest_verified):
                newest_verified = verified
        repos.append({
            "name": name, "url": entry["url"], "error": entry.get("error"),
            "count": len(backups), "complete": len(complete),
            "bytes": sum(int(b["size"] or 0) for b in complete),
            "incomplete": len(entry.get("incomplete", [])),
            "backups": list(reversed(backups)),  # newest first
        })  # fmt: skip
    for repo in configured_repositories(ctx.config):
        try:
            ctx.drill_reports += repo.drill_reports(_DRILLS_READ)
        except OpsError as exc:
            log.info("dashboard: drill reports of %s not read: %s", repo.name, exc.message)
    total = sum(r["count"] for r in repos)
    age = None
    if newest_verified:
        age = round(ctx.now - datetime.fromisoformat(newest_verified).timestamp())
    data = {"repositories": repos, "newest_verified_at": newest_verified,
            "newest_verified_age_seconds": age}  # fmt: skip
    unlisted = [r["name"] for r in repos if r["error"]]
    if total == 0 and unlisted:  # backups may well be there: "none taken yet" would be untrue
        return Part("failed", f"could not list the backup repository {', '.join(unlisted)} "
                    "(BACKUP_REPO_UNREACHABLE)", data=data, findings=listing.findings)  # fmt: skip
    if total == 0:
        return Part("not_configured", "no backup has been taken yet: `empire-ops backup run`",
                    data=data, findings=listing.findings)  # fmt: skip
    return Part(data=data, findings=listing.findings)


def _drills(ctx: _Context) -> Part:
    reports = sorted(ctx.drill_reports, key=lambda r: r["at"], reverse=True)[:_DRILLS_READ]
    rows = []
    for r in reports:
        data = r.get("data") or {}
        rows.append({
            "at": r["at"], "backup_id": r["backup_id"],
            "ok": bool(r.get("ok")) and not r.get("unreadable"),
            "rto_seconds": data.get("rto_seconds"),
            "rto_target_seconds": data.get("rto_target_seconds"),
            "stages": data.get("stages") or {},
            "problems": [f"{f['severity']} {f['code']}: {f['message']}"
                         for f in r.get("findings") or []
                         if f.get("severity") in ("warning", "error", "critical")][:5],
            "unreadable": bool(r.get("unreadable")),
        })  # fmt: skip
    if not rows:
        return Part("not_configured", "no restore drill has run yet: `empire-ops drill run`")
    return Part(data={"last": rows[0], "drills": rows})


def _alerts(ctx: _Context) -> Part:
    from ops.alerts.alerter import alerts_status
    from ops.alerts.ledger import database_ledger
    from ops.alerts.store import open_store

    assert ctx.loaded is not None
    if not ctx.config.get("alerts.enabled"):
        return Part("not_configured", "alerts are off ([alerts] enabled = false)")
    ledger, conn = database_ledger(ctx.config, ctx.target if ctx.reachable else None)
    try:
        with open_store(ctx.config) as store:
            report = alerts_status(ctx.config, store, ctx.loaded.secrets, ledger)
    finally:
        if conn is not None:
            conn.close()
    data = {"channels": report.channels, "open": report.open[: ctx.top * 5],
            "open_count": len(report.open), "spool": report.spool[: ctx.top],
            "spool_count": len(report.spool), "sent": report.sent[: ctx.top]}  # fmt: skip
    return Part(data=data, findings=report.findings)


_LOG_QUERIES = {
    "errors": "select occurred_at, severity, source, message from public.error_logs "
    "order by occurred_at desc limit %s",
    "admin": "select occurred_at, action, subject, actor_id from public.admin_logs "
    "order by occurred_at desc limit %s",
}


def _logs(ctx: _Context) -> Part:
    from ops import db
    from ops.logs import redact

    limit = int(ctx.config.get("dashboard.logs"))
    found = db.run_query(ctx.conn, "select to_regclass('public.error_logs') is not null as e, "
                         "to_regclass('public.admin_logs') is not null as a")[0]  # fmt: skip
    if not (found["e"] and found["a"]):
        return Part("not_configured", "error_logs and admin_logs do not exist yet: "
                    "`empire-ops migrate up` creates them")  # fmt: skip
    data: dict[str, Any] = {}
    for key, query in _LOG_QUERIES.items():
        rows = db.run_query(ctx.conn, query, (limit,))
        data[key] = [
            {k: (v.isoformat() if isinstance(v, datetime) else redact(str(v)) if v is not None
                 else None) for k, v in row.items()}
            for row in rows
        ]  # fmt: skip
    return Part(data=data)


def _scheduler(ctx: _Context) -> Part:
    from ops.scheduler.status import scheduler_status

    report = scheduler_status(ctx.config, ctx.target if ctx.reachable else None)
    data = {"source": report.source, "schedulers": report.schedulers, "jobs": report.jobs}
    if not report.schedulers and not any(j["last_outcome"] for j in report.jobs.values()):
        return Part("not_configured", "no scheduler and no cron job has run yet: "
                    "`empire-ops scheduler run` or `empire-ops cron print`",
                    data=data, findings=report.findings)  # fmt: skip
    return Part(data=data, findings=report.findings)


# Parts in groups that run side by side: the catalog read and its lints; the
# statistics and the logs tables; everything that is not the database's.
_GROUPS: list[list[tuple[str, Callable[[_Context], Part]]]] = [
    [("migrations", _migrations), ("security", _security)],
    [("database", _database), ("logs", _logs)],
    [("secrets", _secrets), ("backups", _backups), ("drills", _drills), ("alerts", _alerts),
     ("scheduler", _scheduler)],
]  # fmt: skip
_DATABASE_PARTS = ("migrations", "database", "security", "logs")


# -- history -----------------------------------------------------------------------------
def headline(snapshot: HealthSnapshot, top: int = 5) -> dict[str, Any]:
    """The numbers one build adds to the history (see :mod:`dashboards.history`)."""
    database = snapshot.parts["database"].data
    backups = [b for r in snapshot.parts["backups"].data.get("repositories", [])
               for b in r["backups"] if b["status"] == "complete"]  # fmt: skip
    newest = max(backups, key=lambda b: b["started_at"], default=None)
    last_drill = snapshot.parts["drills"].data.get("last") or {}
    tables = {t["table"]: {"bytes": t["total_bytes"], "rows": t["rows_estimate"]}
              for t in database.get("tables", [])[:top]}  # fmt: skip
    counts = snapshot.counts()
    return {
        "db_bytes": database.get("size_bytes"),
        "cache_hit": (database.get("cache_hit") or {}).get("table"),
        "connections": (database.get("connections") or {}).get("total"),
        "backup_bytes": newest["size"] if newest else None,
        "backup_seconds": newest["seconds"] if newest else None,
        "rto_seconds": last_drill.get("rto_seconds"),
        "tables": tables,
        **{s: counts[s] for s in ("critical", "error", "warning", "info")},
    }


def _record_history(config: Config, snapshot: HealthSnapshot, now: float, record: bool) -> None:
    from dashboards import history
    from ops.alerts.store import open_store

    keep = config.seconds("dashboard.history_keep")
    try:
        with open_store(config) as store:
            if record:
                history.record_point(store, now, headline(snapshot), keep)
            snapshot.history = history.read_points(store, now - keep)
    except OpsError as exc:
        if record:
            raise
        log.warning("dashboard: no history (%s)", exc.message)


def _iso(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds") if epoch else None
