"""The open-findings ledger in the database itself, shared by every host.

Each host spools and delivers its own messages (the state store), but the
decision "has this (code, subject) been alerted, and when" must be one for all
hosts, or a finding seen by jobs that run on two hosts would reach people once
per host. So when the database answers, :func:`ops.alerts.alerter.evaluate`
keeps open findings here, in ``<history schema>.alert_findings`` (created on
first use, like the scheduler's tables), inside a transaction that holds an
advisory transaction lock: evaluations on several hosts take turns. When the
database does not answer (or refuses the table), the state store's own
``open_findings`` is the ledger, and what was opened there is carried over to
this one the next time the database answers.

The methods mirror :class:`ops.alerts.store.StateStore`'s ledger methods.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from ops import db
from ops.alerts.store import OpenFinding

log = logging.getLogger("ops.alerts")

_COLUMNS = (
    "code", "subject", "source", "severity", "message", "runbook", "first_seen", "last_seen",
    "times_seen", "alerted_at", "alerted_severity",
)  # fmt: skip


class DatabaseLedger:
    """Open findings in PostgreSQL (a :class:`~ops.alerts.store.FindingsBook`); use inside
    :meth:`locked` (one transaction, serialised)."""

    def __init__(self, conn: Any, config: Any) -> None:
        self.conn = conn
        self.table = db.Identifier(config.get("migrate.history_schema"), "alert_findings")
        self.schema = db.Identifier(config.get("migrate.history_schema"))

    def ensure_table(self) -> None:
        """Create the ledger's schema and table when missing. Raises DatabaseError.

        An existing table is not created again: a role that may use it but not
        create in its schema (least privilege) still shares the ledger.
        """
        found = db.run_query(
            self.conn, "select to_regclass(%s) is not null as here", (db.render(self.table),)
        )
        if found and found[0]["here"]:
            return
        db.run_query(self.conn, db.SQL("create schema if not exists {}").format(self.schema))
        db.run_query(
            self.conn,
            db.SQL(
                "create table if not exists {} (code text not null, subject text not null,"
                " source text not null, severity text not null, message text not null,"
                " runbook text, first_seen float8 not null, last_seen float8 not null,"
                " times_seen integer not null, alerted_at float8, alerted_severity text,"
                " primary key (code, subject))"
            ).format(self.table),
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One transaction holding the ledger's advisory transaction lock (hosts take turns)."""
        with db.transaction(self.conn):
            db.run_query(
                self.conn, "select pg_advisory_xact_lock(%s)", (db.lock_key("alert-ledger"),)
            )
            yield

    def _rows(self, where: db.Composable, params: tuple[Any, ...]) -> list[OpenFinding]:
        rows = db.run_query(
            self.conn, db.SQL("select * from {} where ").format(self.table) + where, params
        )
        return [OpenFinding(**{k: r[k] for k in _COLUMNS}) for r in rows]

    def open_findings(self, source: str | None = None) -> list[OpenFinding]:
        if source is None:
            return self._rows(db.SQL("true"), ())
        # position, not like: a source's _ is a character, not a wildcard
        return self._rows(db.SQL("position(%s in ',' || source || ',') > 0"), (f",{source},",))

    def get_open(self, code: str, subject: str) -> OpenFinding | None:
        rows = self._rows(db.SQL("code = %s and subject = %s"), (code, subject))
        return rows[0] if rows else None

    def put_open(self, f: OpenFinding) -> None:
        cols = db.SQL(", ").join(map(db.Identifier, _COLUMNS))
        updates = db.SQL(", ").join(
            db.SQL("{} = excluded.{}").format(db.Identifier(c), db.Identifier(c))
            for c in _COLUMNS[2:]
        )
        db.run_query(
            self.conn,
            db.SQL(
                "insert into {} ({}) values ({}) on conflict (code, subject) do update set {}"
            ).format(
                self.table, cols, db.SQL(", ").join([db.Placeholder()] * len(_COLUMNS)), updates
            ),
            tuple(getattr(f, c) for c in _COLUMNS),
        )

    def close_open(self, code: str, subject: str) -> None:
        db.run_query(
            self.conn,
            db.SQL("delete from {} where code = %s and subject = %s").format(self.table),
            (code, subject),
        )


def database_ledger(config: Any, target: Any) -> tuple[DatabaseLedger | None, Any]:
    """A ledger on ``target``'s database and its connection, or (None, None) when it
    cannot be used (unreachable, no privilege to create its table): then the state
    store is the ledger. The caller closes the connection."""
    from ops.errors import OpsError

    if target is None:
        return None, None
    try:
        # A session of its own: through a transaction pooler (which the scheduler's
        # locks refuse too) the ledger is not used, and nothing connects there.
        conn = db.connect(target.dsn, target.options, autocommit=True, session="the alert ledger")
    except OpsError as exc:
        log.info("alerts: this host's own ledger (the database's is out of reach: %s)",
                 exc.message)  # fmt: skip
        return None, None
    ledger = DatabaseLedger(conn, config)
    try:
        ledger.ensure_table()
    except OpsError as exc:
        conn.close()
        log.warning(
            "alerts: the database's shared ledger cannot be used (%s): each host decides "
            "alone, so several hosts may alert one finding", exc.message,
        )  # fmt: skip
        return None, None
    return ledger, conn
