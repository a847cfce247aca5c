"""`migrate check`: compare the live schema with the committed manifest, as findings.

:func:`check_schema` reads the live catalog once (a constant number of
queries, see :mod:`ops.migrate.catalog`), compares it with the manifest and
adds the lints of :mod:`ops.migrate.lints`. Anything the manifest expects
that is missing or different is an ``error`` (exit 1); objects the manifest
does not know are ``info`` (``SCHEMA_EXTRA_*``). Each finding's ``details``
name the object (``kind``, ``table``, ``name``) so :mod:`ops.migrate.heal` can
act on it. Nothing in Supabase's own schemas (:mod:`ops.supabase_schemas`) is
ever reported: not an extension installed there, not a publication member
there, not a function there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.errors import OpsError
from ops.findings import Finding
from ops.migrate.catalog import OWNED_SCHEMAS, Catalog, read_catalog
from ops.migrate.manifest import build_manifest, load_manifest
from ops.supabase_schemas import is_platform_schema, is_supabase_schema

if TYPE_CHECKING:
    from ops.config import Config
    from ops.target import DatabaseTarget

log = logging.getLogger(__name__)

# Every code this module and the lints emit; each has runbooks/<CODE>.md.
ERROR_CODES = (
    "SCHEMA_MISSING_TABLE",
    "SCHEMA_MISSING_COLUMN",
    "SCHEMA_COLUMN_MISMATCH",
    "SCHEMA_MISSING_INDEX",
    "SCHEMA_INVALID_INDEX",
    "SCHEMA_MISSING_CONSTRAINT",
    "SCHEMA_MISSING_TRIGGER",
    "SCHEMA_MISSING_OBJECT",
    "SCHEMA_DEFINITION_MISMATCH",
    "RLS_DISABLED",
    "POLICY_MISSING",
    "GRANT_MISMATCH",
    "REALTIME_MISSING",
    "EXTENSION_MISSING",
)
EXTRA_CODE_PREFIX = "SCHEMA_EXTRA_"


def _rb(code: str) -> str:
    return f"runbooks/{code}.md"


def _err(code: str, subject: str, message: str, **details: Any) -> Finding:
    return F.error(code, subject, message, runbook=_rb(code), details=details)


def _extra(kind: str, subject: str, message: str, **details: Any) -> Finding:
    return F.info(
        f"{EXTRA_CODE_PREFIX}{kind.upper()}",
        subject,
        message,
        runbook=_rb("SCHEMA_EXTRA_OBJECTS"),
        details={"kind": kind, **details},
    )


@dataclass
class CheckResult(F.FindingsReport):
    """The findings of one check, and what it cost."""

    findings: list[Finding]
    queries: int
    seconds: float
    tables: int

    def extra(self) -> dict[str, Any]:
        """The cost of the check, beside the findings."""
        return {
            "tables": self.tables,
            "catalog_queries": self.queries,
            "seconds": round(self.seconds, 4),
        }


def compare(expected: dict[str, Any], cat: Catalog) -> list[Finding]:
    """Findings for every difference between the manifest ``expected`` and ``cat``. No I/O."""
    actual = build_manifest(cat)
    out: list[Finding] = []
    out.extend(_compare_objects(expected, actual))
    exp_tables: dict[str, Any] = expected.get("tables", {})
    act_tables: dict[str, Any] = actual["tables"]
    for name in sorted(exp_tables):
        if name not in act_tables:
            out.append(
                _err(
                    "SCHEMA_MISSING_TABLE",
                    name,
                    f"table {name} is missing",
                    kind="table",
                    table=name,
                )
            )
            continue
        out.extend(_compare_table(name, exp_tables, act_tables))
    for name in sorted(set(act_tables) - set(exp_tables)):
        out.append(_extra("table", name, f"table {name} is not in the manifest", table=name))
    out.extend(_compare_publication(expected, actual))
    return out


def _compare_objects(expected: dict[str, Any], actual: dict[str, Any]) -> Iterator[Finding]:
    for ext, schema in sorted(expected.get("extensions", {}).items()):
        have = actual["extensions"].get(ext)
        if have is None:
            yield _err(
                "EXTENSION_MISSING",
                ext,
                f"extension {ext} is not installed (expected in schema {schema})",
                kind="extension",
                name=ext,
            )
        elif have != schema:
            yield _err(
                "SCHEMA_DEFINITION_MISMATCH",
                ext,
                f"extension {ext} is in schema {have}, expected {schema}",
                kind="extension",
                name=ext,
            )
    for ext in sorted(set(actual["extensions"]) - set(expected.get("extensions", {}))):
        # Supabase's own (pg_graphql, supabase_vault, pgsodium…) and those a
        # user installs into `extensions` are not drift of the Empire schema.
        if is_platform_schema(actual["extensions"][ext]):
            continue
        yield _extra("extension", ext, f"extension {ext} is not in the manifest", name=ext)
    for kind in ("schemas", "roles"):
        for name in sorted(set(expected.get(kind, [])) - set(actual[kind])):
            yield _err(
                "SCHEMA_MISSING_OBJECT",
                f"{kind[:-1]} {name}",
                f"{kind[:-1]} {name} is missing",
                kind=kind[:-1],
                name=name,
            )
    exp_fn: dict[str, Any] = expected.get("functions", {})
    for name in sorted(exp_fn):
        if name not in actual["functions"]:
            yield _err(
                "SCHEMA_MISSING_OBJECT",
                f"function {name}",
                f"function {name} is missing",
                kind="function",
                name=name,
            )
        elif exp_fn[name] is not None and actual["functions"][name] != exp_fn[name]:
            what = _changed_keys(exp_fn[name], actual["functions"][name])
            yield _err(
                "SCHEMA_DEFINITION_MISMATCH",
                f"function {name}",
                f"function {name} differs from the manifest ({what})",
                kind="function",
                name=name,
            )
    # Only the owned schemas' extra functions: auth's belong to Supabase (GoTrue).
    owned = tuple(f"{schema}." for schema in OWNED_SCHEMAS)
    for name in sorted(set(actual["functions"]) - set(exp_fn)):
        if name.startswith(owned):
            yield _extra("function", name, f"function {name} is not in the manifest", name=name)


def _changed_keys(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys)


@dataclass(frozen=True)
class _Kind:
    """How one kind of per-table object is compared: its key, codes and messages."""

    key: str
    label: str
    missing_code: str
    missing: Callable[[str, str, dict[str, Any]], str]
    # (table, name, expected, actual) -> (code, message) when they differ, else None
    differs: Callable[[str, str, dict[str, Any], dict[str, Any]], tuple[str, str] | None]


def _differs_whole(label: str) -> Callable[..., tuple[str, str] | None]:
    def differs(table: str, name: str, e: dict[str, Any], a: dict[str, Any]) -> Any:
        if a == e:
            return None
        return "SCHEMA_DEFINITION_MISMATCH", f"{label} {name} on {table} differs: " + (
            _changed_keys(e, a)
        )

    return differs


def _index_differs(table: str, name: str, e: dict[str, Any], a: dict[str, Any]) -> Any:
    if e["definition"] != a["definition"]:
        return "SCHEMA_DEFINITION_MISMATCH", (
            f"index {name} is {a['definition']!r}, expected {e['definition']!r}"
        )
    if e["valid"] and not a["valid"]:
        return "SCHEMA_INVALID_INDEX", (
            f"index {name} on {table} is INVALID (a failed CREATE INDEX CONCURRENTLY?)"
        )
    return None


def _constraint_differs(table: str, name: str, e: dict[str, Any], a: dict[str, Any]) -> Any:
    if a["definition"] == e["definition"] and a["validated"] == e["validated"]:
        return None
    state = "" if a["validated"] else " (NOT VALID)"
    return "SCHEMA_DEFINITION_MISMATCH", (
        f"constraint {name} is {a['definition']}{state}, expected {e['definition']}"
    )


_KINDS = (
    _Kind(
        "columns",
        "column",
        "SCHEMA_MISSING_COLUMN",
        lambda t, n, e: f"column {n} of {t} is missing ({e['type']}); not healed automatically",
        lambda t, n, e, a: (
            None
            if a == e
            else ("SCHEMA_COLUMN_MISMATCH", f"column {n} of {t} differs: {_changed_keys(e, a)}")
        ),
    ),
    _Kind(
        "indexes",
        "index",
        "SCHEMA_MISSING_INDEX",
        lambda t, n, e: f"index {n} on {t} is missing",
        _index_differs,
    ),
    _Kind(
        "constraints",
        "constraint",
        "SCHEMA_MISSING_CONSTRAINT",
        lambda t, n, e: f"{e['type']} constraint {n} on {t} is missing: {e['definition']}",
        _constraint_differs,
    ),
    _Kind(
        "triggers",
        "trigger",
        "SCHEMA_MISSING_TRIGGER",
        lambda t, n, e: f"trigger {n} on {t} is missing",
        _differs_whole("trigger"),
    ),
    _Kind(
        "policies",
        "policy",
        "POLICY_MISSING",
        lambda t, n, e: f"policy {n} ({e['command']} to {', '.join(e['roles'])}) on {t} is missing",
        _differs_whole("policy"),
    ),
)


def _compare_table(
    name: str, exp_tables: dict[str, Any], act_tables: dict[str, Any]
) -> Iterator[Finding]:
    exp, act = exp_tables[name], act_tables[name]
    parent = exp.get("partition_of")
    for kind in _KINDS:
        # A constraint's index goes with the constraint; a partition's copy of
        # its parent's index or trigger is reported, and healed, on the parent.
        lost_on_parent = parent is not None and _lost_some(parent, kind.key, exp_tables, act_tables)
        expected: dict[str, Any] = exp.get(kind.key, {})
        actual: dict[str, Any] = act[kind.key]
        for obj in sorted(expected):
            e, a = expected[obj], actual.get(obj)
            base = {"kind": kind.label, "table": name, "name": obj}
            if a is None:
                copied = e.get("attached") or e.get("inherited")
                if e.get("constraint") or (copied and lost_on_parent):
                    continue
                yield _err(kind.missing_code, f"{name}.{obj}", kind.missing(name, obj, e), **base)
            elif (change := kind.differs(name, obj, e, a)) is not None:
                yield _err(change[0], f"{name}.{obj}", change[1], **base)
        for obj in sorted(set(actual) - set(expected)):
            yield _extra(
                kind.label,
                f"{name}.{obj}",
                f"{kind.label} {obj} is not in the manifest",
                table=name,
            )
    yield from _compare_rls(name, exp, act)
    yield from _compare_grants(name, exp, act)


def _lost_some(
    table: str, kind: str, exp_tables: dict[str, Any], act_tables: dict[str, Any]
) -> bool:
    # True when the (parent) table is gone or lost objects of this kind.
    if table not in act_tables:
        return True
    return bool(set(exp_tables.get(table, {}).get(kind, {})) - set(act_tables[table][kind]))


def _compare_rls(name: str, exp: dict[str, Any], act: dict[str, Any]) -> Iterator[Finding]:
    base = {"kind": "rls", "table": name, "name": name}
    if exp.get("rls_enabled") and not act["rls_enabled"]:
        yield _err("RLS_DISABLED", name, f"row level security is disabled on {name}", **base)
    elif exp.get("rls_forced") and not act["rls_forced"]:
        yield _err(
            "RLS_DISABLED", name, f"row level security is no longer forced on {name}", **base
        )


def _compare_grants(name: str, exp: dict[str, Any], act: dict[str, Any]) -> Iterator[Finding]:
    yield from _grant_findings(name, name, exp.get("grants", {}), act["grants"])
    exp_cols: dict[str, Any] = exp.get("column_grants", {})
    act_cols: dict[str, Any] = act.get("column_grants", {})
    for column in sorted(set(exp_cols) | set(act_cols)):
        yield from _grant_findings(
            name, f"{name}.{column}", exp_cols.get(column, {}), act_cols.get(column, {})
        )


def _grant_findings(
    table: str, what: str, exp_grants: dict[str, list[str]], act_grants: dict[str, list[str]]
) -> Iterator[Finding]:
    for role in sorted(set(exp_grants) | set(act_grants)):
        want = set(exp_grants.get(role, []))
        have = set(act_grants.get(role, []))
        if want == have:
            continue
        parts = []
        if want - have:
            parts.append("missing " + ", ".join(sorted(want - have)))
        if have - want:
            parts.append("extra " + ", ".join(sorted(have - want)))
        yield _err(
            "GRANT_MISMATCH",
            f"{what} to {role}",
            f"privileges of {role} on {what} differ: {'; '.join(parts)}",
            kind="grant",
            table=table,
            name=role,
        )


def _compare_publication(expected: dict[str, Any], actual: dict[str, Any]) -> Iterator[Finding]:
    for pub, members in sorted(expected.get("publications", {}).items()):
        have = actual["publications"].get(pub)
        if have is None:
            yield _err(
                "REALTIME_MISSING",
                pub,
                f"publication {pub} does not exist",
                kind="publication",
                name=pub,
            )
            continue
        if "*" in have:
            continue  # FOR ALL TABLES: every table is a member
        for table in sorted(set(members) - set(have)):
            yield _err(
                "REALTIME_MISSING",
                table,
                f"{table} is not in publication {pub}",
                kind="publication_member",
                name=pub,
                table=table,
            )
        for table in sorted(set(have) - set(members)):
            if is_supabase_schema(table.partition(".")[0]):
                continue  # e.g. realtime's own tables: Supabase's business
            yield _extra(
                "realtime", table, f"{table} is in {pub} but not in the manifest", name=pub
            )


def check_schema(
    conn: Any,
    config: Config | None = None,
    manifest: dict[str, Any] | None = None,
    *,
    pending: bool | None = None,
    catalog: Catalog | None = None,
) -> list[Finding]:
    """Every drift and lint finding for the database behind ``conn`` (from ``ops.db.connect``).

    ``manifest`` defaults to the committed one. ``pending`` (default: only with
    the committed manifest, which the shipped migrations produce) adds the
    runner's status findings that are not ok: SCHEMA_PENDING_MIGRATIONS,
    MIGRATE_CHECKSUM_MISMATCH… (``config`` adds ``[migrate] dirs``). A clean
    schema yields one ``SCHEMA_OK`` finding. Raises ManifestError when the
    manifest cannot be read, DatabaseError/DatabaseUnreachable when the
    catalog cannot. ``catalog`` is one already read from ``conn`` (preflight
    reads it once and shares it); without it the catalog is read here.
    """
    return run_check(conn, config, manifest, pending=pending, catalog=catalog).findings


def run_check(
    conn: Any,
    config: Config | None = None,
    manifest: dict[str, Any] | None = None,
    *,
    pending: bool | None = None,
    catalog: Catalog | None = None,
) -> CheckResult:
    """:func:`check_schema` with its cost: catalog queries, seconds, tables seen."""
    from ops.migrate.lints import lint

    expected = manifest if manifest is not None else load_manifest()
    started = time.monotonic()
    cat = catalog if catalog is not None else read_catalog(conn)
    found = compare(expected, cat)
    found.extend(lint(cat, expected))
    seconds = time.monotonic() - started
    if pending is None:
        pending = manifest is None
    if pending:
        found = _pending(conn, config) + found
    if not any(f.severity >= F.Severity.WARNING for f in found):
        found.insert(
            0,
            F.ok(
                "SCHEMA_OK",
                "schema",
                f"{len(cat.tables)} tables match the manifest",
            ),
        )
    return CheckResult(found, cat.queries, seconds, len(cat.tables))


def _pending(conn: Any, config: Config | None) -> list[Finding]:
    """The runner's status findings that are not ``ok`` (SCHEMA_PENDING_MIGRATIONS…)."""
    from ops.migrate import history
    from ops.migrate.common import RunnerSettings, migrations_for
    from ops.migrate.status import build_status

    settings = RunnerSettings.from_config(config)
    try:
        local = migrations_for(config)
        applied = history.read_applied(conn, settings.history_schema)
        failed = history.read_failed(conn, settings.history_schema)
    except OpsError as exc:
        return [
            F.error(
                "SCHEMA_PENDING_MIGRATIONS",
                "migrations",
                f"cannot read the migration status: {exc.message_with_hint}",
                runbook=_rb("SCHEMA_PENDING_MIGRATIONS"),
            )
        ]
    report = build_status("", local, applied, failed)
    return [f for f in report.findings if f.severity > F.Severity.OK]


def check_target(target: DatabaseTarget, config: Config | None = None) -> CheckResult:
    """Connect to ``target`` and run the check. Raises DatabaseUnreachable (exit 4)."""
    conn = db.connect(target.dsn, target.options, autocommit=True)
    try:
        return run_check(conn, config)
    finally:
        conn.close()
