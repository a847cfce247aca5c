"""The expected-schema manifest: build it from a catalog, write it, load it, diff it.

``ops/migrate/expected_schema.json`` is what the migrations produce on an
empty database: every table of ``public`` and ``empire_private`` with its
columns, indexes, constraints, triggers, RLS flags, policies and API-role
grants (``column_grants`` too, only where a column has some), the
``supabase_realtime`` members, the extensions with their schemas, and the
schemas, roles and functions the migrations create (those in ``auth`` and
``extensions`` only by name). ``migrate snapshot`` regenerates it on a scratch
database; a test fails when the committed file differs from what the
migrations produce. The JSON is written with sorted keys and sorted lists so
a change to the migrations shows as a small, reviewable diff.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops import db
from ops.errors import MigrationError
from ops.fsutil import atomic_write_text
from ops.migrate.catalog import (
    API_ROLES,
    EXISTENCE_SCHEMAS,
    OWNED_SCHEMAS,
    REALTIME_PUBLICATION,
    Catalog,
    read_catalog,
)

log = logging.getLogger(__name__)

MANIFEST_PATH = Path(__file__).resolve().parent / "expected_schema.json"
FORMAT = 1

ApplyFn = Callable[[str], object]
"""Applies every migration to the database at a DSN (the runner's ``apply_all_to``)."""


class ManifestError(MigrationError):
    """The expected-schema manifest is missing, unreadable or of an unknown format."""


def build_manifest(cat: Catalog) -> dict[str, Any]:
    """The manifest (a JSON-able dict) for what ``cat`` holds.

    Only the realtime publication is kept; extension functions and the bodies of
    functions outside the owned schemas are not part of it.
    """
    return {
        "format": FORMAT,
        "scope": {
            "owned_schemas": list(OWNED_SCHEMAS),
            "existence_schemas": list(EXISTENCE_SCHEMAS),
            "roles": list(API_ROLES),
            "publication": REALTIME_PUBLICATION,
            "dynamic_partitions": "<table>_pYYYYMM partitions of the event tables are ignored",
        },
        "tables": cat.tables,
        "publications": {
            name: members
            for name, members in cat.publications.items()
            if name == REALTIME_PUBLICATION
        },
        "extensions": cat.extensions,
        "schemas": cat.schemas,
        "roles": cat.roles,
        "functions": cat.functions,
    }


def dumps(manifest: dict[str, Any]) -> str:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(_sorted(manifest), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _sorted(value: Any) -> Any:
    # Lists in the manifest are sets (roles, privileges, members): sort them.
    if isinstance(value, dict):
        return {k: _sorted(v) for k, v in value.items()}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sorted(value)
    return value


def load_manifest(path: Path | None = None) -> dict[str, Any]:
    """Read the manifest (default: the committed one).

    Raises ManifestError when the file is missing, not JSON, or of another format.
    """
    path = path or MANIFEST_PATH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(
            f"the expected-schema manifest {path} does not exist",
            hint="run `empire-ops migrate snapshot` to generate it",
        ) from None
    except (OSError, ValueError) as exc:
        raise ManifestError(
            f"cannot read the expected-schema manifest {path}: {exc}",
            hint="restore it from git, or regenerate it with `empire-ops migrate snapshot`",
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestError(
            f"{path} is not an expected-schema manifest of format {FORMAT}",
            hint="regenerate it with `empire-ops migrate snapshot`",
        )
    return data


def manifest_of(conn: Any) -> dict[str, Any]:
    """The manifest of the database behind ``conn`` (normalised like the committed one)."""
    return json.loads(dumps(build_manifest(read_catalog(conn))))


def diff(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Human-readable paths where two manifests differ (``[]`` when equal)."""
    out: list[str] = []
    _diff(expected, actual, "", out)
    return out


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(f"- {sub}")
            elif key not in a:
                out.append(f"+ {sub}")
            else:
                _diff(a[key], b[key], sub, out)
    elif a != b:
        out.append(f"~ {path}: {a!r} -> {b!r}")


@dataclass(frozen=True)
class SnapshotResult:
    """Where the manifest was written, how many tables it holds, and what changed."""

    path: Path
    tables: int
    changes: list[str]


def snapshot_dsn(
    admin_dsn: str, *, apply: ApplyFn | None = None, options: Any = None
) -> dict[str, Any]:
    """Apply every migration to a temporary database on ``admin_dsn``'s server; return its manifest.

    The scratch database is created from ``template0`` (so nothing from
    ``template1`` leaks in) and dropped afterwards, even on failure. ``apply``
    defaults to the runner's ``apply_all_to``. Needs CREATEDB on that server.
    Raises MigrationError when a migration fails, DatabaseError when the
    scratch database cannot be created.
    """
    if apply is None:
        from ops.migrate.apply import apply_all_to

        apply = apply_all_to
    with db.scratch_database(
        admin_dsn, options, prefix="empire_ops_snapshot", purpose="the snapshot"
    ) as scratch_dsn:
        apply(scratch_dsn)
        conn = db.connect(scratch_dsn, options, autocommit=True)
        try:
            return manifest_of(conn)
        finally:
            conn.close()


def write_snapshot(
    admin_dsn: str,
    path: Path | None = None,
    *,
    apply: ApplyFn | None = None,
    options: Any = None,
) -> SnapshotResult:
    """:func:`snapshot_dsn`, then write the manifest atomically to ``path`` (default: committed)."""
    path = path or MANIFEST_PATH
    manifest = snapshot_dsn(admin_dsn, apply=apply, options=options)
    try:
        previous = load_manifest(path)
    except ManifestError:
        previous = {}
    changes = diff(previous, manifest) if previous else ["+ (new manifest)"]
    atomic_write_text(path, dumps(manifest))
    return SnapshotResult(path, len(manifest["tables"]), changes)
