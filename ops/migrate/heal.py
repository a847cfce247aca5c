"""`migrate heal`: repair the drift that is safe to repair, from the manifest's definitions.

:func:`plan_heal` turns the drift findings into actions (pure, no I/O);
:func:`heal` prints or applies them. It may:

- apply pending migrations, where ``[migrate] auto_apply_in`` allows it
  (through the runner's ``migrate_up``, under the runner's lock);
- recreate a missing index, or drop and rebuild an INVALID one, with
  ``CREATE INDEX CONCURRENTLY`` outside a transaction (plain ``CREATE
  INDEX`` on a partitioned table, where PostgreSQL refuses CONCURRENTLY);
- recreate a missing trigger or policy from its canonical definition;
- re-enable (and re-force) row level security;
- restore ``supabase_realtime`` membership.

It never drops or alters a column, a constraint or data: those findings are
returned unhealed, with their runbook. It never touches an object in one of
Supabase's own schemas (:mod:`ops.supabase_schemas`). Every applied action is written to
``public.admin_logs`` (actor ``empire-ops``, before/after) and yields a
``SCHEMA_HEALED`` warning for the alerter.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.errors import MigrationError, OpsError
from ops.findings import Finding
from ops.migrate.confirm import unconfirmed_reason, writes_confirmed
from ops.migrate.drift import check_schema
from ops.migrate.manifest import load_manifest
from ops.supabase_schemas import is_supabase_schema

sql = db.sql  # psycopg.sql, through the one module that imports the driver

if TYPE_CHECKING:
    from ops.config import Config
    from ops.migrate.catalog import Catalog
    from ops.target import DatabaseTarget

log = logging.getLogger(__name__)

ACTOR = "empire-ops"
LOCK_NAME = "migrate"  # the runner's lock: heal and migrations never interleave
_CREATE_INDEX = re.compile(r"^CREATE (UNIQUE )?INDEX ")
_POLICY_COMMANDS = {"ALL", "SELECT", "INSERT", "UPDATE", "DELETE"}


@dataclass
class HealAction:
    """One repair: why, exactly which SQL, and (after ``--apply``) how it went."""

    code: str
    subject: str
    action: str
    reason: str
    sql: list[str]
    concurrent: bool = False
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    status: str = "planned"  # planned | applied | failed
    error: str | None = None
    # (schema, index) of an index action: what to drop when a concurrent build fails.
    index: tuple[str, str] | None = None


@dataclass
class HealReport(F.FindingsReport):
    """What heal found, did (or would do), and what it left for a human."""

    target: str
    applied: bool
    actions: list[HealAction]
    unhealed: list[Finding]
    findings: list[Finding]

    def extra(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "applied": self.applied,
            "actions": [_public(a) for a in self.actions],
            "unhealed": [f.to_dict() for f in self.unhealed],
        }


def _public(action: HealAction) -> dict[str, Any]:
    out = asdict(action)
    out.pop("index")
    return out


def render_plan(report: HealReport) -> str:
    """The actions (the exact SQL, and why) and what is left for a human, as text."""
    lines: list[str] = []
    verbs = {"planned": "would run", "applied": "ran", "failed": "FAILED"}
    for a in report.actions:
        mode = " (outside a transaction)" if a.concurrent else ""
        lines.append(f"{verbs[a.status]} {a.action} for {a.subject}{mode}: {a.reason}")
        lines.extend(f"    {statement};" for statement in a.sql)
        if a.error:
            lines.append(f"    error: {a.error}")
    if not report.actions:
        lines.append("nothing to heal")
    if report.unhealed:
        lines.append("not healed (follow the runbook):")
        lines.extend(f"    {f.code} {f.subject}: {f.runbook}" for f in report.unhealed)
    if report.actions and not report.applied:
        lines.append("dry run: nothing was changed; rerun with --apply")
    return "\n".join(lines)


def auto_heal_enabled(config: Config | None) -> bool:
    """True when preflight and the scheduler may heal on their own in this environment."""
    return config is not None and config.env in config.get("migrate.auto_heal_in")


def _qualified(table: str) -> sql.Identifier:
    """``schema.name`` as a quoted identifier (so ``public.user`` works: ``user`` is reserved)."""
    schema, _, name = table.partition(".")
    return sql.Identifier(schema, name)


def _text(statement: sql.Composable) -> str:
    """The statement as text: shown in the plan, recorded in admin_logs, then run as is."""
    return statement.as_string()


def policy_sql(table: str, name: str, spec: dict[str, Any]) -> str:
    """The CREATE POLICY statement for a manifest policy entry.

    Names are quoted identifiers; the USING / WITH CHECK expressions are the
    server's own rendering (``pg_get_expr``, kept in the manifest) and go in
    as SQL. Raises ValueError for a command that is not a policy command.
    """
    command = str(spec["command"]).upper()
    if command not in _POLICY_COMMANDS:
        raise ValueError(f"policy {name} on {table}: unknown command {spec['command']!r}")
    roles = sql.SQL(", ").join(
        sql.SQL("PUBLIC") if r == "public" else sql.Identifier(r) for r in spec["roles"]
    )
    statement = sql.SQL("CREATE POLICY {} ON {} AS {} FOR {} TO {}").format(
        sql.Identifier(name),
        _qualified(table),
        sql.SQL("PERMISSIVE" if spec["permissive"] else "RESTRICTIVE"),
        sql.SQL(command),
        roles,
    )
    if spec.get("using"):
        statement += sql.SQL(" USING ({})").format(sql.SQL(spec["using"]))
    if spec.get("with_check"):
        statement += sql.SQL(" WITH CHECK ({})").format(sql.SQL(spec["with_check"]))
    return _text(statement)


def plan_heal(
    found: list[Finding], manifest: dict[str, Any], *, migrations_allowed: bool
) -> tuple[list[HealAction], list[Finding]]:
    """(actions, unhealed findings) for the drift ``found``. Pure: no I/O.

    ``migrations_allowed`` says whether pending migrations may be applied here
    (the ``[migrate] auto_apply_in`` policy, and a target to apply them to).
    While migrations are pending and may not be applied, nothing else is
    planned: the rest of the drift is measured against the fully migrated
    schema and is repaired after ``migrate up``.
    """
    actions: list[HealAction] = []
    unhealed: list[Finding] = []
    tables: dict[str, Any] = manifest.get("tables", {})
    pending = any(f.code == "SCHEMA_PENDING_MIGRATIONS" for f in found)
    if pending and not migrations_allowed:
        # The manifest describes the schema after every migration: repairing a
        # half-migrated database towards it would collide with the pending
        # migrations themselves. Apply them first (`migrate up`).
        return [], [f for f in found if f.severity >= F.Severity.ERROR]
    for f in found:
        if f.severity < F.Severity.ERROR:
            continue
        action = _action_for(f, tables, manifest, migrations_allowed)
        if action is None:
            unhealed.append(f)
        else:
            actions.append(action)
    return actions, unhealed


def _action_for(
    f: Finding, tables: dict[str, Any], manifest: dict[str, Any], migrations_allowed: bool
) -> HealAction | None:
    d = f.details
    if is_supabase_schema(str(d.get("table", "")).partition(".")[0]):
        return None  # Supabase's own objects are never touched (ops/supabase_schemas.py)
    table = tables.get(d.get("table", ""), {})
    name = d.get("name", "")
    if f.code == "SCHEMA_PENDING_MIGRATIONS":
        if not migrations_allowed:
            return None
        versions = d.get("versions", [])
        return HealAction(
            f.code,
            f.subject,
            "heal.apply_migrations",
            f"pending migrations: {', '.join(versions)}",
            [f"-- empire-ops migrate up (applies {', '.join(versions)})"],
            before={"pending": versions},
            after={"pending": []},
        )
    if f.code in ("SCHEMA_MISSING_INDEX", "SCHEMA_INVALID_INDEX"):
        return _index_action(f, d["table"], name, table)
    if f.code == "SCHEMA_MISSING_TRIGGER":
        spec = table.get("triggers", {}).get(name)
        if spec is None or spec.get("inherited"):
            return None  # a partition's copy: it comes back with its parent's trigger
        return HealAction(
            f.code,
            f.subject,
            "heal.create_trigger",
            f"trigger {name} on {d['table']} is missing",
            [spec["definition"]],
            before={"trigger": None},
            after={"trigger": spec},
        )
    if f.code == "POLICY_MISSING":
        spec = table.get("policies", {}).get(name)
        if spec is None:
            return None
        return HealAction(
            f.code,
            f.subject,
            "heal.create_policy",
            f"policy {name} on {d['table']} is missing",
            [policy_sql(d["table"], name, spec)],
            before={"policy": None},
            after={"policy": spec},
        )
    if f.code == "RLS_DISABLED" and table:
        alter = sql.SQL("ALTER TABLE {} {} ROW LEVEL SECURITY")
        statements = [_text(alter.format(_qualified(d["table"]), sql.SQL("ENABLE")))]
        if table.get("rls_forced"):
            statements.append(_text(alter.format(_qualified(d["table"]), sql.SQL("FORCE"))))
        return HealAction(
            f.code,
            f.subject,
            "heal.enable_rls",
            f"row level security is off on {d['table']}",
            statements,
            before={"rls_enabled": False},
            after={"rls_enabled": True, "rls_forced": bool(table.get("rls_forced"))},
        )
    if f.code == "REALTIME_MISSING":
        return _publication_action(f, manifest)
    return None


def _index_action(
    f: Finding, table_name: str, name: str, table: dict[str, Any]
) -> HealAction | None:
    spec = table.get("indexes", {}).get(name)
    if spec is None or spec.get("constraint") or spec.get("attached"):
        # A constraint's index is the constraint's (never altered here); an
        # attached partition index cannot be dropped on its own.
        return None
    partitioned = table.get("kind") == "partitioned table"
    definition = spec["definition"]
    schema = table_name.partition(".")[0]
    statements: list[str] = []
    if f.code == "SCHEMA_INVALID_INDEX":
        drop = sql.SQL("DROP INDEX {}IF EXISTS {}").format(
            sql.SQL("" if partitioned else "CONCURRENTLY "), sql.Identifier(schema, name)
        )
        statements.append(_text(drop))
    # The definition is the server's own (pg_get_indexdef, quoted by the
    # server). It says "ON ONLY" for a partitioned table's index; without
    # ONLY, CREATE INDEX also builds (or attaches) the partitions' indexes.
    definition = definition.replace(" ON ONLY ", " ON ", 1)
    if not partitioned:
        # CONCURRENTLY: writes to the table go on while the index builds.
        definition = _CREATE_INDEX.sub(
            lambda m: f"CREATE {m.group(1) or ''}INDEX CONCURRENTLY ", definition
        )
    statements.append(definition)
    invalid = f.code == "SCHEMA_INVALID_INDEX"
    return HealAction(
        f.code,
        f.subject,
        "heal.rebuild_index" if invalid else "heal.create_index",
        f"index {name} on {table_name} is {'INVALID' if invalid else 'missing'}",
        statements,
        concurrent=not partitioned,
        before={"index": name, "state": "invalid" if invalid else "missing"},
        after={"index": name, "definition": spec["definition"], "valid": True},
        index=(schema, name),
    )


def _publication_action(f: Finding, manifest: dict[str, Any]) -> HealAction:
    d = f.details
    pub = d["name"]
    if d.get("kind") == "publication":
        members = manifest.get("publications", {}).get(pub, [])
        create = sql.SQL("CREATE PUBLICATION {}").format(sql.Identifier(pub))
        if members:
            create += sql.SQL(" FOR TABLE {}").format(
                sql.SQL(", ").join(_qualified(t) for t in members)
            )
        return HealAction(
            f.code,
            f.subject,
            "heal.create_publication",
            f"publication {pub} is missing",
            [_text(create)],
            before={"publication": None},
            after={"publication": pub, "tables": members},
        )
    return HealAction(
        f.code,
        f.subject,
        "heal.add_to_publication",
        f"{d['table']} left publication {pub}",
        [
            _text(
                sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                    sql.Identifier(pub), _qualified(d["table"])
                )
            )
        ],
        before={"publication": pub, "member": False},
        after={"publication": pub, "member": True},
    )


def heal(
    target_or_conn: DatabaseTarget | Any,
    config: Config | None = None,
    *,
    apply: bool,
    manifest: dict[str, Any] | None = None,
    confirmed: bool = False,
    found: list[Finding] | None = None,
) -> HealReport:
    """Plan (``apply=False``) or carry out (``apply=True``) the safe repairs.

    ``target_or_conn`` is a DatabaseTarget (a connection is opened) or an
    autocommit connection from ``ops.db.connect`` (CREATE INDEX CONCURRENTLY
    cannot run in a transaction). Pending migrations are applied only with a
    target, where ``[migrate] auto_apply_in`` allows, and (on a non-embedded
    target whose environment was not chosen explicitly) with ``confirmed``
    (``--yes``; see :mod:`ops.migrate.confirm`). ``found`` is the drift check
    the caller has just run on the same connection (it is not read twice to
    plan); the plan is checked again under the lock before anything runs. A dry run's findings
    are the drift found; after ``--apply`` they are one SCHEMA_HEALED warning
    per action applied, SCHEMA_HEAL_FAILED for each that failed, and whatever
    drift remains. Raises LockBusy (exit 5) when a migration run holds the
    lock, DatabaseUnreachable (exit 4), ManifestError.
    """
    from ops.target import DatabaseTarget

    expected = manifest if manifest is not None else load_manifest()
    with_pending = manifest is None  # a custom manifest is not the shipped migrations'
    target = target_or_conn if isinstance(target_or_conn, DatabaseTarget) else None
    conn: Any = (
        db.connect(
            target.dsn,
            target.options,
            autocommit=True,
            session=f"heal --apply's '{LOCK_NAME}' advisory lock" if apply else None,
        )
        if target is not None
        else target_or_conn
    )
    masked = target.masked if target else db.mask_dsn(conn.info.dsn)
    try:
        if found is None:
            found = check_schema(conn, config, expected, pending=with_pending)
        allowed = (
            target is not None
            and _auto_apply(config)
            and writes_confirmed(config, target, yes=confirmed)
        )
        actions, unhealed = plan_heal(found, expected, migrations_allowed=allowed)
        if not apply:
            problems = [f for f in found if f.severity >= F.Severity.WARNING]
            return HealReport(masked, False, actions, unhealed, problems)
        if not conn.autocommit:
            raise MigrationError(
                "heal --apply needs an autocommit connection (CREATE INDEX CONCURRENTLY)",
                hint="open it with ops.db.connect(dsn, options, autocommit=True)",
            )
        done: list[HealAction] = []
        migrate = [a for a in actions if a.action == "heal.apply_migrations"]
        if migrate and target is not None:
            # Under the runner's own lock, on its own connection: before ours.
            _apply_migrations(migrate[0], target, config, conn)
            done.append(migrate[0])
        lock_timeout = config.seconds("database.lock_timeout") if config else 10.0
        # No statement timeout (an index build on a big table takes what it
        # takes), but a lock timeout: DDL that queues behind a long transaction
        # would block every query queued behind it, so it gives up instead.
        settings = {"lock_timeout": f"{int(lock_timeout * 1000)}ms", "statement_timeout": "0"}
        with db.advisory_lock(conn, LOCK_NAME, lock_timeout), _session(conn, settings):
            # Plan again under the lock: the migrations may have fixed (or
            # changed) the rest, and another heal may have run meanwhile.
            found = check_schema(conn, config, expected, pending=with_pending)
            actions, unhealed = plan_heal(found, expected, migrations_allowed=False)
            has_log = _has_admin_logs(conn)
            for action in actions:
                _run(conn, action, has_log)
                done.append(action)
        remaining = [
            f
            for f in check_schema(conn, config, expected, pending=with_pending)
            if f.severity >= F.Severity.WARNING
        ]
        return HealReport(masked, True, done, unhealed, _outcome(done) + remaining)
    finally:
        if target is not None:
            conn.close()


def _auto_apply(config: Config | None) -> bool:
    if config is None:
        return False
    try:
        from ops.migrate.settings import auto_apply_enabled
    except ImportError:
        return False
    return bool(auto_apply_enabled(config))


def _apply_migrations(
    action: HealAction, target: DatabaseTarget, config: Config | None, conn: Any
) -> None:
    from ops.migrate.apply import migrate_up

    try:
        result = migrate_up(target, config, actor=ACTOR, confirmed=True)  # heal checked it
    except OpsError as exc:
        action.status, action.error = "failed", exc.message
        return
    action.status = "applied"
    action.after = {"applied": [f"{s.version}_{s.name}" for s in result.steps]}
    if _has_admin_logs(conn):
        _log(conn, action)


@contextlib.contextmanager
def _session(conn: Any, settings: dict[str, str]) -> Iterator[None]:
    """Set session settings for the block and put the caller's values back after."""
    names = list(settings)
    query = sql.SQL("select {}").format(
        sql.SQL(", ").join(
            sql.SQL("current_setting({}) as {}").format(sql.Placeholder(), sql.Identifier(f"s{i}"))
            for i in range(len(names))
        )
    )
    row = db.run_query(conn, query, names)[0]
    previous = {name: row[f"s{i}"] for i, name in enumerate(names)}
    for name, value in settings.items():
        db.run_query(conn, "select set_config(%s, %s, false)", (name, value))
    try:
        yield
    finally:
        for name, value in previous.items():
            with contextlib.suppress(OpsError):
                db.run_query(conn, "select set_config(%s, %s, false)", (name, value))


def _has_admin_logs(conn: Any) -> bool:
    rows = db.run_query(conn, "select to_regclass('public.admin_logs') is not null as present")
    return bool(rows and rows[0]["present"])


def _run(conn: Any, action: HealAction, has_log: bool) -> None:
    """Run one action; record it in admin_logs; never raise for a failed statement."""
    try:
        if action.concurrent:
            for statement in action.sql:
                db.run_query(conn, statement)
            if has_log:
                _log(conn, action)
        else:
            with db.transaction(conn):
                for statement in action.sql:
                    db.run_query(conn, statement)
                if has_log:
                    _log(conn, action)
        action.status = "applied"
    except OpsError as exc:
        action.status, action.error = "failed", exc.message
        log.warning("heal: %s on %s failed: %s", action.action, action.subject, exc.message)
        if action.concurrent and action.action in ("heal.create_index", "heal.rebuild_index"):
            _drop_failed_build(conn, action)


def _drop_failed_build(conn: Any, action: HealAction) -> None:
    # A failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind; drop
    # it so the next check reports the index as missing, not invalid.
    if action.index is None:
        return
    drop = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(*action.index))
    try:
        db.run_query(conn, drop)
    except OpsError as exc:
        log.warning("heal: could not drop the failed index build: %s", exc.message)


def _log(conn: Any, action: HealAction) -> None:
    db.run_query(
        conn,
        "insert into public.admin_logs (action, subject, actor_id, before, after, meta) "
        "values (%s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb)",
        (
            action.action,
            action.subject,
            ACTOR,
            json.dumps(action.before),
            json.dumps(action.after),
            json.dumps({"code": action.code, "reason": action.reason, "sql": action.sql}),
        ),
    )


def _outcome(done: list[HealAction]) -> list[Finding]:
    """SCHEMA_HEALED (warning, for the alerter) or SCHEMA_HEAL_FAILED (error) per action."""
    out: list[Finding] = []
    for a in done:
        ok = a.status == "applied"
        make, code = (F.warning, "SCHEMA_HEALED") if ok else (F.error, "SCHEMA_HEAL_FAILED")
        message = (
            f"{a.action}: {a.reason}; repaired by empire-ops (recorded in admin_logs)"
            if ok
            else f"{a.action} failed: {a.error}"
        )
        details = {"action": a.action, "sql": a.sql, "fixed": a.code}
        out.append(make(code, a.subject, message, runbook=f"runbooks/{code}.md", details=details))
    return out


def check_and_heal(
    conn: Any,
    config: Config | None,
    target: DatabaseTarget | None = None,
    *,
    catalog: Catalog | None = None,
) -> list[Finding]:
    """For preflight and the scheduler: check; heal when ``[migrate] auto_heal_in`` allows it.

    Read-only unless ``auto_heal_in`` lists this environment (by default it
    lists none). Returns the check's findings, or, after an automatic heal, the heal's
    (SCHEMA_HEALED warnings and whatever drift remains). With ``target``, the
    heal may also apply pending migrations (where ``auto_apply_in`` allows).
    On a database that is not the embedded server (or with no ``target``) it
    heals only when the environment was chosen explicitly; otherwise it adds
    SCHEMA_HEAL_SKIPPED (info) saying how. ``catalog``, when given, is the
    catalog already read from ``conn``: the check does not read it again.
    A heal that cannot run (another run holds the lock, the server refuses)
    leaves the check's findings plus a SCHEMA_HEAL_FAILED error. Raises what
    :func:`~ops.migrate.drift.check_schema` raises.
    """
    found = check_schema(conn, config, catalog=catalog)
    if not auto_heal_enabled(config) or not any(f.is_problem for f in found):
        return found
    assert config is not None  # auto_heal_enabled says so
    if not writes_confirmed(config, target, yes=False):
        skipped = F.info(
            "SCHEMA_HEAL_SKIPPED",
            "schema",
            f"automatic heal skipped: {unconfirmed_reason(config, target)}; heal with "
            "`empire-ops --env ENV migrate heal --apply`",
            runbook="runbooks/SCHEMA_HEAL_SKIPPED.md",
        )
        return [*found, skipped]
    try:
        return heal(target or conn, config, apply=True, found=found).findings
    except OpsError as exc:
        return [
            *found,
            F.error(
                "SCHEMA_HEAL_FAILED",
                "schema",
                f"automatic heal did not run: {exc.message}",
                runbook="runbooks/SCHEMA_HEAL_FAILED.md",
            ),
        ]


def preflight_check(ctx: Any) -> Iterator[Finding]:
    """A preflight ``CHECKS`` entry: schema drift of ``ctx.conn``, auto-healed where allowed.

    ``ctx`` is the preflight's PreflightContext (``conn``, ``config``,
    ``target``, and ``catalog()``: the catalog read once per preflight, shared
    by every check that needs it). Yields nothing without a connection (the database check has
    reported why). A manifest or catalog error becomes a SCHEMA_CHECK_FAILED
    error with that error's exit code, so preflight never raises.
    """
    if ctx.conn is None:
        return
    try:
        yield from check_and_heal(ctx.conn, ctx.config, ctx.target, catalog=ctx.catalog())
    except OpsError as exc:
        yield F.error(
            "SCHEMA_CHECK_FAILED",
            "schema",
            exc.message,
            runbook="runbooks/SCHEMA_CHECK_FAILED.md",
            exit_code=exc.exit_code,
        )
