"""Supabase Realtime: which tables the ``supabase_realtime`` publication carries (issue 12, part 8).

Supabase streams a table's changes to clients only while the table is a
member of the ``supabase_realtime`` publication. The schema manifest's
``publications`` key says which tables should be; :func:`realtime_status`
compares that with ``pg_publication_tables`` in one query:

- ``REALTIME_OK`` (ok): the members are exactly the declared tables;
- ``REALTIME_MISSING`` (warning): a declared table is not published, so its
  clients see no change;
- ``REALTIME_EXTRA`` (info): a published table the schema does not declare
  (its changes reach every subscriber its policies allow: worth a look);
- ``REALTIME_NO_PUBLICATION`` (warning): the publication does not exist.

A status command: drift is a warning here (exit 0); ``migrate check`` is the
gate that fails on it, and ``migrate heal --apply`` repairs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ops import db
from ops import findings as F
from ops.findings import Finding, FindingsReport
from ops.migrate.catalog import REALTIME_PUBLICATION

_QUERY = (
    "select exists (select from pg_catalog.pg_publication where pubname = %(pub)s) as present, "
    "array(select schemaname || '.' || tablename from pg_catalog.pg_publication_tables "
    "where pubname = %(pub)s order by 1) as tables"
)


@dataclass
class RealtimeReport(FindingsReport):
    """The publication's members against the declared ones, and a finding for each gap."""

    publication: str
    exists: bool
    declared: list[str]
    published: list[str]
    findings: list[Finding] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        return {
            "publication": self.publication,
            "exists": self.exists,
            "declared": self.declared,
            "published": self.published,
        }


def declared_tables(publication: str = REALTIME_PUBLICATION) -> list[str]:
    """The tables the committed schema manifest puts in ``publication`` (qualified, sorted)."""
    from ops.migrate.manifest import load_manifest

    return sorted((load_manifest().get("publications") or {}).get(publication) or [])


def compare(
    declared: list[str], published: list[str] | None, publication: str = REALTIME_PUBLICATION
) -> list[Finding]:
    """The findings for ``published`` (None: no such publication) against ``declared``."""
    if published is None:
        if not declared:
            return [F.ok("REALTIME_OK", publication, f"{publication} is neither declared nor "
                         "present")]  # fmt: skip
        return [
            F.warning(
                "REALTIME_NO_PUBLICATION",
                publication,
                f"the publication {publication} does not exist: no change of "
                f"{', '.join(declared)} reaches Realtime clients",
                details={"declared": declared},
            )
        ]
    found = [
        F.warning("REALTIME_MISSING", table, f"{table} is not in {publication}: its changes "
                  "do not reach Realtime clients", details={"publication": publication})
        for table in declared
        if table not in published
    ] + [
        F.info("REALTIME_EXTRA", table, f"{table} is in {publication} but the schema does not "
               "declare it", details={"publication": publication})
        for table in published
        if table not in declared
    ]  # fmt: skip
    if not found:
        members = ", ".join(published) or "no table"
        found.append(F.ok("REALTIME_OK", publication, f"{publication} carries {members}, "
                          "as the schema declares"))  # fmt: skip
    return found


def realtime_status(
    conn: db.Connection[Any], publication: str = REALTIME_PUBLICATION
) -> RealtimeReport:
    """Compare ``publication``'s members with the manifest's (one catalog query).

    Raises DatabaseError / DatabaseUnreachable as :func:`ops.db.run_query`.
    """
    declared = declared_tables(publication)
    row = db.run_query(conn, _QUERY, {"pub": publication})[0]
    if not conn.autocommit:
        db.commit(conn)  # a read: end its transaction
    published = list(row["tables"]) if row["present"] else None
    return RealtimeReport(
        publication,
        bool(row["present"]),
        declared,
        published or [],
        compare(declared, published, publication),
    )
