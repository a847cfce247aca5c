"""Security and performance lints in the spirit of Supabase's database linter.

Pure functions over a :class:`~ops.migrate.catalog.Catalog` (no queries):

- ``LINT_RLS_DISABLED_IN_PUBLIC`` (error): a table in ``public`` without row
  level security is readable through the API by anyone. Tables the manifest
  knows are reported as ``RLS_DISABLED`` by the drift check instead, so one
  problem is never reported twice.
- ``LINT_UNINDEXED_FOREIGN_KEY`` (warning): no index starts with the
  foreign key's columns, so deletes on the referenced table scan this one.
- ``LINT_DUPLICATE_INDEX`` (warning): two indexes with the same definition.
- ``LINT_RLS_ENABLED_NO_POLICY`` (warning): RLS on, no policy: every API
  request is denied. Partitions are left out: they are read through their
  parent, whose policies apply.
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
    "LINT_UNINDEXED_FOREIGN_KEY",
    "LINT_DUPLICATE_INDEX",
    "LINT_RLS_ENABLED_NO_POLICY",
    "LINT_AUTH_RLS_INITPLAN",
)

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
        out.extend(_rls(name, table, known))
        out.extend(_unindexed_fks(cat, name, table, keys.get(name, [])))
        out.extend(_duplicate_indexes(name, table))
        out.extend(_initplan(name, table))
    return out


def _rls(name: str, table: dict[str, Any], known: set[str]) -> Iterator[Finding]:
    if not table["rls_enabled"]:
        if name.startswith("public.") and name not in known:
            yield F.error(
                "LINT_RLS_DISABLED_IN_PUBLIC",
                name,
                f"{name} is in public without row level security: the API exposes every row",
                runbook=_rb("LINT_RLS_DISABLED_IN_PUBLIC"),
                details={"kind": "rls", "table": name},
            )
    elif not table["policies"] and "partition_of" not in table:
        yield F.warning(
            "LINT_RLS_ENABLED_NO_POLICY",
            name,
            f"{name} has row level security but no policy: every API request is denied",
            runbook=_rb("LINT_RLS_ENABLED_NO_POLICY"),
            details={"kind": "rls", "table": name},
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
