"""INVALID indexes left by a failed ``CREATE INDEX CONCURRENTLY``: found, dropped, rebuilt.

A failed concurrent build leaves an INVALID index behind, and ``IF NOT
EXISTS`` would then skip the rebuild. So before each concurrent build the
runner drops an INVALID index of the same name, and every ``up`` rebuilds the
INVALID indexes of applied no-transaction files.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ops import db
from ops.errors import DatabaseError
from ops.migrate.common import server_error, strip_comments
from ops.migrate.errors import MigrationFailed
from ops.migrate.files import Migration, Statement

log = logging.getLogger(__name__)

_CONCURRENT_INDEX_RE = re.compile(
    r"^\s*create\s+(?:unique\s+)?index\s+concurrently\s+(?:if\s+not\s+exists\s+)?"
    r"(?P<index>\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_$]*)\s+on\s+(?:only\s+)?"
    r"(?P<table>(?:(?:\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_$]*)\.)?(?:\"[^\"]+\"|[A-Za-z_][A-Za-z0-9_$]*))",
    re.IGNORECASE,
)


def drop_invalid_index(conn: db.Connection[Any], stmt: Statement) -> str | None:
    """Drop the INVALID index a failed ``CREATE INDEX CONCURRENTLY`` of ``stmt`` left behind.

    Returns ``schema.index`` when one was dropped, else None.
    """
    match = _CONCURRENT_INDEX_RE.match(strip_comments(stmt.sql))
    if not match:
        return None
    index = match.group("index").strip('"')
    rows = db.run_query(
        conn,
        "select n.nspname, ic.relname, format('%%I.%%I', n.nspname, ic.relname) as shown "
        "from pg_index i "
        "join pg_class ic on ic.oid = i.indexrelid "
        "join pg_namespace n on n.oid = ic.relnamespace "
        "where ic.relname = %s and i.indrelid = to_regclass(%s) and not i.indisvalid",
        (index, match.group("table")),
    )
    if not rows:
        return None
    ident = db.Identifier(str(rows[0]["nspname"]), str(rows[0]["relname"]))
    shown = str(rows[0]["shown"])  # as PostgreSQL prints it: quoted only where needed
    log.warning("dropping INVALID index %s left by a failed concurrent build", shown)
    db.run_query(conn, db.SQL("drop index concurrently if exists {}").format(ident))
    return shown


def invalid_index_statements(
    conn: db.Connection[Any], applied: list[Migration]
) -> list[tuple[str, Statement]]:
    """(index, its CREATE statement) for INVALID indexes built by applied no-transaction files."""
    candidates: list[tuple[str, Statement]] = []
    for mig in applied:
        if not mig.no_transaction:
            continue
        for stmt in mig.up_statements:
            match = _CONCURRENT_INDEX_RE.match(strip_comments(stmt.sql))
            if match:
                candidates.append((match.group("index").strip('"'), stmt))
    if not candidates:
        return []
    rows = db.run_query(
        conn,
        "select ic.relname from pg_index i join pg_class ic on ic.oid = i.indexrelid "
        "where not i.indisvalid",
    )
    invalid = {str(r["relname"]) for r in rows}
    return [(name, stmt) for name, stmt in candidates if name in invalid]


def invalid_indexes(conn: db.Connection[Any], applied: list[Migration]) -> list[str]:
    """Names of the INVALID indexes that applied no-transaction files build."""
    return [name for name, _ in invalid_index_statements(conn, applied)]


def rebuild_invalid_indexes(conn: db.Connection[Any], applied: list[Migration]) -> list[str]:
    """Rebuild INVALID indexes created by applied no-transaction files (drop + create).

    Raises MigrationFailed when a rebuild fails (e.g. duplicates for a unique index).
    """
    rebuilt: list[str] = []
    for _name, stmt in invalid_index_statements(conn, applied):
        dropped = drop_invalid_index(conn, stmt)
        if not dropped:
            continue
        try:
            db.run_query(conn, stmt.sql)
        except DatabaseError as exc:
            message, _ = server_error(exc)
            raise MigrationFailed(
                f"rebuilding INVALID index {dropped} failed: {message}",
                hint="fix the data the index rejects (e.g. duplicates for a unique "
                "index), then rerun `empire-ops migrate up`",
            ) from None
        rebuilt.append(dropped)
    return rebuilt
