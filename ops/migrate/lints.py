"""Security and performance lints in the spirit of Supabase's database linter.

Pure functions over a :class:`~ops.migrate.catalog.Catalog` (no queries):

- ``LINT_RLS_DISABLED_IN_PUBLIC``: a table in ``public`` without row level
  security. An error when ``anon`` or ``authenticated`` hold a privilege on
  it (the API exposes every row); a warning otherwise (nothing reaches it
  today, but one grant would expose every row). Tables the manifest knows are
  reported as ``RLS_DISABLED`` by the drift check instead, so one problem is
  never reported twice.
- ``LINT_SENSITIVE_COLUMN_EXPOSED`` (error): a credential column (see
  :data:`SENSITIVE_COLUMNS` and :data:`SENSITIVE_PATTERN`) that ``anon`` or
  ``authenticated`` can SELECT, through a table or column privilege, PUBLIC
  or a role membership.
- ``LINT_UNINDEXED_FOREIGN_KEY`` (warning): no index starts with the
  foreign key's columns, so deletes on the referenced table scan this one.
- ``LINT_DUPLICATE_INDEX`` (warning): two indexes with the same definition.
- ``LINT_RLS_ENABLED_NO_POLICY`` (warning): RLS on, no policy: every API
  request is denied. Partitions are left out: they are read through their
  parent, whose policies apply; so are tables neither ``anon`` nor
  ``authenticated`` may use (``empire_private``), which no request reaches.
- ``LINT_AUTH_RLS_INITPLAN`` (warning): a policy calls ``auth.uid()`` (or
  ``auth.jwt()``/``auth.role()``) per row instead of once, as
  ``(select auth.uid())``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ops import findings as F
from ops.findings import Finding
from ops.migrate.catalog import Catalog

LINT_CODES = (
    "LINT_RLS_DISABLED_IN_PUBLIC",
    "LINT_SENSITIVE_COLUMN_EXPOSED",
    "LINT_UNINDEXED_FOREIGN_KEY",
    "LINT_DUPLICATE_INDEX",
    "LINT_RLS_ENABLED_NO_POLICY",
    "LINT_AUTH_RLS_INITPLAN",
)

SENSITIVE_COLUMNS = ("password_hash", "session_tokens")
"""Columns that hold credentials by name: never readable by anon or authenticated."""

SENSITIVE_PATTERN = re.compile(
    r"password|passwd|secret|(?:^|_)tokens?$|(?:^|_)(?:api|private)_key$", re.IGNORECASE
)
"""The naming rule for columns like them: *password*, *secret*, *_token(s), *_api_key…"""


def is_sensitive_column(name: str) -> bool:
    """True for a column that holds credentials, by its name (the declared list or the rule)."""
    return name in SENSITIVE_COLUMNS or SENSITIVE_PATTERN.search(name) is not None


_AUTH_CALL = re.compile(r"\bauth\.(uid|jwt|role)\(\)")
_WRAPPED_AUTH_CALL = re.compile(r"\(\s*SELECT\s+auth\.(uid|jwt|role)\(\)", re.IGNORECASE)
_INDEX_NAME = re.compile(r"^(CREATE (?:UNIQUE )?INDEX )\S+( ON )")


def _rb(code: str) -> str:
    return f"runbooks/{code}.md"


def lint(cat: Catalog, manifest: dict[str, Any] | None = None) -> list[Finding]:
    """Every lint finding for ``cat``; tables in ``manifest`` skip the RLS-disabled lint."""
    known = set((manifest or {}).get("tables", {}))
    keys: dict[str, list[list[str]]] = {}
    for (table_name, _index), columns in cat.index_keys.items():
        keys.setdefault(table_name, []).append(columns)
    out: list[Finding] = []
    for name in sorted(cat.tables):
        table = cat.tables[name]
        out.extend(_rls(name, table, known, cat.reachable_by.get(name)))
        out.extend(_sensitive(cat, name, table))
        out.extend(_unindexed_fks(cat, name, table, keys.get(name, [])))
        out.extend(_duplicate_indexes(name, table))
        out.extend(_initplan(name, table))
    return out


def _rls(
    name: str, table: dict[str, Any], known: set[str], reachable_by: list[str] | None
) -> Iterator[Finding]:
    # reachable_by is None when the catalog did not say (a hand-built one):
    # assume the worst, as before privileges were read.
    if not table["rls_enabled"]:
        if not name.startswith("public.") or name in known:
            return
        details = {"kind": "rls", "table": name, "reachable_by": reachable_by}
        if reachable_by is None or reachable_by:
            who = " and ".join(reachable_by or ["the API roles"])
            yield F.error(
                "LINT_RLS_DISABLED_IN_PUBLIC",
                name,
                f"{name} is in public without row level security and {who} hold privileges "
                "on it: the API exposes every row",
                runbook=_rb("LINT_RLS_DISABLED_IN_PUBLIC"),
                details=details,
            )
        else:
            yield F.warning(
                "LINT_RLS_DISABLED_IN_PUBLIC",
                name,
                f"{name} is in public without row level security; anon and authenticated "
                "hold no privilege on it, so the API cannot reach it today, but any grant "
                "(or Supabase's default privileges on a re-created table) would expose every row",
                runbook=_rb("LINT_RLS_DISABLED_IN_PUBLIC"),
                details=details,
            )
    elif not table["policies"] and "partition_of" not in table and reachable_by != []:
        yield F.warning(
            "LINT_RLS_ENABLED_NO_POLICY",
            name,
            f"{name} has row level security but no policy: every API request is denied",
            runbook=_rb("LINT_RLS_ENABLED_NO_POLICY"),
            details={"kind": "rls", "table": name},
        )


def _sensitive(cat: Catalog, name: str, table: dict[str, Any]) -> Iterator[Finding]:
    for column in sorted(table["columns"]):
        readers = cat.readable_by.get((name, column))
        if not readers or not is_sensitive_column(column):
            continue
        yield F.error(
            "LINT_SENSITIVE_COLUMN_EXPOSED",
            f"{name}.{column}",
            f"{name}.{column} holds credentials and {' and '.join(readers)} can read it "
            "through the API; revoke it (or move it to a schema the API does not use)",
            runbook=_rb("LINT_SENSITIVE_COLUMN_EXPOSED"),
            details={"kind": "column", "table": name, "name": column, "readable_by": readers},
        )


def _unindexed_fks(
    cat: Catalog, name: str, table: dict[str, Any], keys: list[list[str]]
) -> Iterator[Finding]:
    for con in sorted(table["constraints"]):
        cols = cat.fk_columns.get((name, con))
        # A partition's copy of its parent's key is reported once, on the parent.
        if not cols or table["constraints"][con].get("inherited"):
            continue
        n = len(cols)
        if any(len(k) >= n and set(k[:n]) == set(cols) for k in keys):
            continue
        yield F.warning(
            "LINT_UNINDEXED_FOREIGN_KEY",
            f"{name}.{con}",
            f"foreign key {con} ({', '.join(cols)}) has no index starting with its columns",
            runbook=_rb("LINT_UNINDEXED_FOREIGN_KEY"),
            details={"kind": "constraint", "table": name, "name": con},
        )


def _duplicate_indexes(name: str, table: dict[str, Any]) -> Iterator[Finding]:
    seen: dict[str, list[str]] = {}
    for idx in sorted(table["indexes"]):
        shape = _INDEX_NAME.sub(r"\1_\2", table["indexes"][idx]["definition"])
        seen.setdefault(shape, []).append(idx)
    for names in seen.values():
        if len(names) > 1:
            yield F.warning(
                "LINT_DUPLICATE_INDEX",
                f"{name}.{names[0]}",
                f"indexes {', '.join(names)} on {name} are identical; drop all but one",
                runbook=_rb("LINT_DUPLICATE_INDEX"),
                details={"kind": "index", "table": name, "names": names},
            )


def _initplan(name: str, table: dict[str, Any]) -> Iterator[Finding]:
    for pol in sorted(table["policies"]):
        spec = table["policies"][pol]
        for expr in (spec["using"], spec["with_check"]):
            if not expr:
                continue
            if len(_AUTH_CALL.findall(expr)) > len(_WRAPPED_AUTH_CALL.findall(expr)):
                yield F.warning(
                    "LINT_AUTH_RLS_INITPLAN",
                    f"{name}.{pol}",
                    f"policy {pol} on {name} calls auth functions per row; "
                    "write (select auth.uid()) so they run once per query",
                    runbook=_rb("LINT_AUTH_RLS_INITPLAN"),
                    details={"kind": "policy", "table": name, "name": pol},
                )
                break
