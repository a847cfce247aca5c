"""The data service: every module's reads and writes of the Empire's tables, in one place.

:class:`DataService` offers ``get``, ``list`` (filters, order, keyset
pagination), ``insert``, ``update``, ``upsert`` (on a declared unique key)
and ``delete`` on the tables of the committed schema manifest. What it
promises:

- **Parameterized, always.** Values travel as parameters; table and column
  names are checked against the manifest and composed with
  :mod:`psycopg.sql`. No SQL is built from strings.
- **Validated before any write** (:mod:`ops.data.validate`): every bad field
  is named in one :class:`DataValidationError` (exit 2) and nothing is sent.
- **PostgreSQL enforces access.** Each call runs in one transaction as a
  :class:`Principal`: ``service`` and ``admin`` as ``service_role``, ``user``
  as ``authenticated`` with ``request.jwt.claims`` carrying its id, all set
  with ``SET LOCAL`` so nothing outlives the transaction. The schema's row
  level security policies decide what a user sees and changes; the service
  is the second line, not the first.
- **An audit trail.** An ``admin`` write adds one ``admin_logs`` row (action,
  actor, subject, before and after with ``[data] masked_fields`` as ``****``)
  in the same transaction: both or neither. A failed call adds an
  ``error_logs`` row (code, message, context; values never quoted) in a
  transaction of its own.
- **Graceful failure.** A table or column the call needs that the database
  lacks (drift) is :class:`SchemaDrift` and a ``DATA_SCHEMA_DRIFT`` finding;
  the transaction is rolled back, so nothing is half written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.data.model import TableSpec, find_table
from ops.data.validate import DEFAULT_MAX_TEXT, check_row
from ops.errors import EXIT_FAILED, EXIT_USAGE, OpsError

if TYPE_CHECKING:
    from ops.config import Config
    from ops.data.vector import Neighbours

log = logging.getLogger(__name__)

MASK = "****"
_OPERATORS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_DRIFT_STATES = {"42P01", "42703", "42704"}  # undefined table, column, object


class DataError(OpsError):
    """A data service call that did not happen (nothing was written)."""

    exit_code = EXIT_FAILED


class DataValidationError(DataError):
    """Fields that do not fit the table: ``problems`` maps each to what is wrong."""

    exit_code = EXIT_USAGE

    def __init__(self, table: str, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        listed = "; ".join(f"{k}: {v}" for k, v in sorted(self.problems.items()))
        super().__init__(
            f"{table}: {len(self.problems)} bad field(s), nothing written: {listed}",
            hint="fix every field named (the schema is `empire-ops migrate check`'s manifest)",
        )


class SchemaDrift(DataError):
    """The database lacks a table or column the call needs; nothing was written."""

    def __init__(self, table: str, reason: str) -> None:
        self.finding = F.error("DATA_SCHEMA_DRIFT", table, f"{table}: {reason}; nothing was "
                               "written")  # fmt: skip
        super().__init__(
            self.finding.message,
            hint="`empire-ops migrate check` shows the drift; `empire-ops migrate heal` "
            "or `migrate up` repairs it",
        )


class AccessDenied(DataError):
    """PostgreSQL refused the principal (a privilege or a row level security policy)."""


@dataclass(frozen=True)
class Principal:
    """Who a call runs as: ``service``, ``admin`` (with an actor id) or ``user`` (a user id)."""

    kind: str
    id: str | None = None

    @classmethod
    def service(cls) -> Principal:
        return cls("service")

    @classmethod
    def admin(cls, actor_id: str) -> Principal:
        if not actor_id:
            raise ValueError("an admin principal needs an actor id")
        return cls("admin", actor_id)

    @classmethod
    def user(cls, user_id: str) -> Principal:
        if not user_id:
            raise ValueError("a user principal needs a user id")
        return cls("user", str(user_id))

    @property
    def role(self) -> str:
        return "authenticated" if self.kind == "user" else "service_role"


@dataclass
class Page:
    """One page of :meth:`DataService.list`: its rows, and the key to pass as ``after``."""

    rows: list[dict[str, Any]]
    next_after: dict[str, Any] | None = None


def _refusals_recorded(method: Any) -> Any:
    """Record a call refused before it reached the database (bad fields, key, order…) in
    error_logs, as every other failure is."""
    import functools

    @functools.wraps(method)
    def call(self: DataService, who: Principal, table: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, who, table, *args, **kwargs)
        except DataValidationError as exc:
            self._record_failure(table, method.__name__, "DATA_INVALID", exc.message)
            raise

    return call


@dataclass
class DataService:
    """The service over one connection (from :func:`ops.db.connect`, not autocommit).

    Each call is one transaction, committed at its end (or a savepoint when
    the caller already holds one).
    """

    conn: db.Connection[Any]
    max_text: int = DEFAULT_MAX_TEXT
    masked_fields: frozenset[str] = field(default_factory=frozenset)
    page_size: int = 100
    max_page_size: int = 1000

    @classmethod
    def for_config(cls, conn: db.Connection[Any], config: Config) -> DataService:
        """A service with ``[data]``'s settings."""
        return cls(
            conn,
            max_text=int(config.get("data.max_text")),
            masked_fields=frozenset(config.get("data.masked_fields")),
            page_size=int(config.get("data.page_size")),
            max_page_size=int(config.get("data.max_page_size")),
        )

    # -- reads -----------------------------------------------------------------------------
    @_refusals_recorded
    def get(self, who: Principal, table: str, key: Any) -> dict[str, Any] | None:
        """The row whose primary key is ``key`` (a value, or a mapping for a composite key),
        or None when there is none *that ``who`` may see*."""
        spec = find_table(table)
        where, params = _key_clause(spec, key)
        query = db.SQL("select * from {} where {}").format(_ident(spec), where)
        with self._call(who, spec, "get"):
            rows = db.run_query(self.conn, query, params)
        return rows[0] if rows else None

    @_refusals_recorded
    def list(
        self,
        who: Principal,
        table: str,
        *,
        filters: Mapping[str, Any] | None = None,
        order: Sequence[str] = (),
        limit: int | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> Page:
        """Rows matching ``filters``, ordered, one page at a time (keyset pagination).

        ``filters`` maps a column to a value (equality), a list (``in``), None
        (``is null``) or ``(op, value)`` with op one of ``= != < <= > >=``.
        ``order`` names columns, ``-`` first for descending (all one
        direction); the primary key is added to make the order total.
        ``after`` is the previous page's ``next_after``.
        """
        spec = find_table(table)
        limit = self.page_size if limit is None else limit
        if not 1 <= limit <= self.max_page_size:
            raise DataValidationError(
                spec.qualified, {"limit": f"must be 1 to {self.max_page_size}"}
            )
        columns, descending = _order(spec, order)
        where, params = _filters(spec, filters or {})
        if after is not None:
            missing = [c for c in columns if c not in after]
            if missing:
                raise DataValidationError(spec.qualified, {"after": f"lacks {', '.join(missing)}"})
            where.append(
                db.SQL("({}) {} ({})").format(
                    db.SQL(", ").join(db.Identifier(c) for c in columns),
                    db.SQL("<" if descending else ">"),
                    db.SQL(", ").join(db.Placeholder() for _ in columns),
                )
            )
            params += [after[c] for c in columns]
        direction = db.SQL(" desc" if descending else "")
        query = db.SQL("select * from {} {} order by {} limit {}").format(
            _ident(spec),
            db.SQL("where ") + db.SQL(" and ").join(where) if where else db.SQL(""),
            db.SQL(", ").join(db.Identifier(c) + direction for c in columns),
            db.Literal(limit + 1),
        )
        with self._call(who, spec, "list"):
            rows = db.run_query(self.conn, query, params)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, {c: rows[-1][c] for c in columns} if more and rows else None)

    @_refusals_recorded
    def nearest(
        self,
        who: Principal,
        table: str,
        embedding: Sequence[float],
        k: int,
        *,
        filters: Mapping[str, Any] | None = None,
        fields: Sequence[str] = (),
        bump_usage: bool = False,
    ) -> Neighbours:
        """The ``k`` rows nearest to ``embedding`` by cosine distance (the HNSW index), nearest
        first, among those ``who`` may see and ``filters`` (as :meth:`list`'s) keeps: each
        row's primary key, distance and ``fields``. ``bump_usage`` adds 1 to their
        ``usage_score`` in the same transaction. See :mod:`ops.data.vector`."""
        from ops.data.vector import search

        return search(self, who, table, embedding, k, filters=filters, fields=fields,
                      bump_usage=bump_usage)  # fmt: skip

    # -- writes ----------------------------------------------------------------------------
    @_refusals_recorded
    def insert(self, who: Principal, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Insert ``row`` and return it as stored (defaults filled in)."""
        spec = find_table(table)
        self._validate(spec, row, insert=True)
        query = db.SQL("insert into {} ({}) values ({}) returning *").format(
            _ident(spec), _names(row), _values(spec, row)
        )
        with self._call(who, spec, "insert") as audit:
            stored = db.run_query(self.conn, query, _params(spec, row))
            if not stored:
                raise AccessDenied(f"{spec.qualified}: the insert returned no row (a policy)")
            audit(None, stored[0])
        return stored[0]

    @_refusals_recorded
    def update(
        self, who: Principal, table: str, key: Any, changes: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Change the row whose primary key is ``key``; the row after, or None when there is
        none that ``who`` may change."""
        spec = find_table(table)
        if not changes:
            raise DataValidationError(spec.qualified, {"changes": "nothing to change"})
        self._validate(spec, changes, insert=False)
        where, params = _key_clause(spec, key)
        assignments = db.SQL(", ").join(
            db.SQL("{} = {}").format(db.Identifier(c), _placeholder(spec, c)) for c in changes
        )
        query = db.SQL("update {} set {} where {} returning *").format(
            _ident(spec), assignments, where
        )
        with self._call(who, spec, "update") as audit:
            before = self._before(spec, key) if audit.wanted else None
            rows = db.run_query(self.conn, query, [*_params(spec, changes), *params])
            if rows:
                audit(before, rows[0])
        return rows[0] if rows else None

    @_refusals_recorded
    def upsert(
        self, who: Principal, table: str, row: Mapping[str, Any], on: Sequence[str]
    ) -> dict[str, Any]:
        """Insert ``row``, or update the row with the same ``on`` key (the primary key or a
        declared unique key); the row as stored."""
        spec = find_table(table)
        key = tuple(on)
        if not spec.is_unique_key(key):
            keys = [", ".join(k) for k in (spec.primary_key, *spec.unique_keys)]
            why = f"is not a unique key of the table (those are: {'; '.join(keys)})"
            raise DataValidationError(spec.qualified, {"on": why})
        self._validate(spec, row, insert=True)
        missing = [c for c in key if c not in row]
        if missing:
            raise DataValidationError(spec.qualified, dict.fromkeys(missing, "is the upsert key"))
        changed = [c for c in row if c not in key]
        action = (
            db.SQL("do update set ")
            + db.SQL(", ").join(
                db.SQL("{0} = excluded.{0}").format(db.Identifier(c)) for c in changed
            )
            if changed
            else db.SQL("do nothing")
        )
        query = db.SQL("insert into {} ({}) values ({}) on conflict ({}) {} returning *").format(
            _ident(spec), _names(row), _values(spec, row),
            db.SQL(", ").join(db.Identifier(c) for c in key), action,
        )  # fmt: skip
        with self._call(who, spec, "upsert") as audit:
            before = self._before(spec, {c: row[c] for c in key}, by=key) if audit.wanted else None
            rows = db.run_query(self.conn, query, _params(spec, row))
            if not rows:  # do nothing on a conflict: the stored row is the answer
                rows = db.run_query(
                    self.conn,
                    db.SQL("select * from {} where {}").format(
                        _ident(spec), _key_clause(spec, {c: row[c] for c in key}, by=key)[0]
                    ),
                    [row[c] for c in key],
                )
            audit(before, rows[0] if rows else None)
        if not rows:
            raise AccessDenied(f"{spec.qualified}: the upsert returned no row (a policy)")
        return rows[0]

    @_refusals_recorded
    def delete(self, who: Principal, table: str, key: Any) -> bool:
        """Delete the row whose primary key is ``key``; False when there is none that ``who``
        may delete."""
        spec = find_table(table)
        where, params = _key_clause(spec, key)
        query = db.SQL("delete from {} where {} returning *").format(_ident(spec), where)
        with self._call(who, spec, "delete") as audit:
            rows = db.run_query(self.conn, query, params)
            if rows:
                audit(rows[0], None)
        return bool(rows)

    # -- the frame of every call -----------------------------------------------------------
    def _validate(self, spec: TableSpec, row: Mapping[str, Any], *, insert: bool) -> None:
        problems = check_row(spec, row, insert=insert, max_text=self.max_text)
        if problems:
            raise DataValidationError(spec.qualified, problems)

    def _before(
        self, spec: TableSpec, key: Any, by: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        where, params = _key_clause(spec, key, by=by)
        rows = db.run_query(
            self.conn, db.SQL("select * from {} where {}").format(_ident(spec), where), params
        )
        return rows[0] if rows else None

    @contextmanager
    def _call(self, who: Principal, spec: TableSpec, op: str) -> Iterator[_Audit]:
        """One transaction as ``who``; an admin's write is audited inside it; a failure is
        mapped (drift, denied) and recorded in error_logs."""
        audit = _Audit(self, who, spec, op)
        try:
            with db.transaction(self.conn):
                _become(self.conn, who)
                yield audit
        except DataValidationError:
            raise  # recorded by the public method
        except DataError as exc:
            self._record_failure(spec, op, type(exc).__name__, exc.message)
            raise
        except OpsError as exc:
            raise self._failed(spec, op, exc, getattr(exc, "sqlstate", None)) from None

    def _failed(self, spec: TableSpec, op: str, exc: OpsError, state: str | None) -> OpsError:
        if state in _DRIFT_STATES:
            error: OpsError = SchemaDrift(spec.qualified, exc.message)
        elif state in ("42501",) or "row-level security" in exc.message:
            error = AccessDenied(f"{spec.qualified}: {op} refused: {exc.message}")
        else:
            error = exc
        code = "DATA_SCHEMA_DRIFT" if isinstance(error, SchemaDrift) else type(error).__name__
        self._record_failure(spec, op, code, error.message)
        return error

    def _record_failure(self, table: TableSpec | str, op: str, code: str, message: str) -> None:
        """One error_logs row for a failed call (its own transaction; best effort)."""
        from ops.logs import redact

        name = table.qualified if isinstance(table, TableSpec) else table
        context = {"table": name, "operation": op, "code": code}
        try:
            with db.transaction(self.conn):
                db.run_query(
                    self.conn,
                    "insert into public.error_logs (severity, source, message, context) "
                    "values ('error', 'data', %s, %s::jsonb)",
                    (redact(f"{code}: {message}")[:2000], json.dumps(context)),
                )
        except OpsError as exc:  # the table itself may be what is missing
            log.warning("data: could not record the failure in error_logs: %s", exc.message)


class _Audit:
    """Records an admin's write in admin_logs, inside the call's transaction."""

    def __init__(self, service: DataService, who: Principal, spec: TableSpec, op: str) -> None:
        self.service, self.who, self.spec, self.op = service, who, spec, op
        self.wanted = who.kind == "admin"

    def __call__(self, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        if not self.wanted:
            return
        row = after or before or {}
        subject = ",".join(str(row.get(c, "")) for c in self.spec.primary_key)
        db.run_query(
            self.service.conn,
            "insert into public.admin_logs (action, subject, actor_id, before, after, meta) "
            "values (%s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb)",
            (
                f"data.{self.spec.name}.{self.op}",
                f"{self.spec.qualified}:{subject}",
                self.who.id,
                _masked_json(before, self.service.masked_fields),
                _masked_json(after, self.service.masked_fields),
                json.dumps({"table": self.spec.qualified, "operation": self.op}),
            ),
        )


def _masked_json(row: Mapping[str, Any] | None, masked: frozenset[str]) -> str | None:
    if row is None:
        return None
    return json.dumps({k: (MASK if k in masked and v is not None else v) for k, v in row.items()},
                      default=str)  # fmt: skip


def _become(conn: db.Connection[Any], who: Principal) -> None:
    """``SET LOCAL ROLE`` for the principal, and for a user the JWT claims its policies read."""
    db.run_query(conn, db.SQL("set local role {}").format(db.Identifier(who.role)))
    claims = {"role": who.role}
    if who.kind == "user":
        claims["sub"] = str(who.id)
    db.run_query(conn, "select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))


def _ident(spec: TableSpec) -> db.Composable:
    return db.Identifier(spec.schema, spec.name)


def _names(row: Mapping[str, Any]) -> db.Composable:
    return db.SQL(", ").join(db.Identifier(c) for c in row)


def _placeholder(spec: TableSpec, column: str) -> db.Composable:
    """``%s``, cast for the types a Python value does not say (json, vector)."""
    kind = spec.columns[column].type
    if kind in ("jsonb", "json"):
        return db.SQL("%s::jsonb")
    if spec.columns[column].dimensions is not None:
        return db.SQL("%s::extensions.vector")
    return db.Placeholder()


def _values(spec: TableSpec, row: Mapping[str, Any]) -> db.Composable:
    return db.SQL(", ").join(_placeholder(spec, c) for c in row)


def _params(spec: TableSpec, row: Mapping[str, Any]) -> list[Any]:
    out = []
    for column, value in row.items():
        kind = spec.columns[column].type
        if value is not None and kind in ("jsonb", "json"):
            value = json.dumps(value)
        elif value is not None and spec.columns[column].dimensions is not None:
            # A str is pgvector's text form already (as a read returns it).
            value = (
                value
                if isinstance(value, str)
                else "[" + ",".join(map(repr, map(float, value))) + "]"
            )
        out.append(value)
    return out


def _key_clause(
    spec: TableSpec, key: Any, by: Sequence[str] | None = None
) -> tuple[db.Composable, list[Any]]:
    columns = tuple(by or spec.primary_key)
    if not columns:
        raise DataValidationError(spec.qualified, {"key": "the table has no primary key"})
    if not isinstance(key, Mapping):
        if len(columns) != 1:
            raise DataValidationError(spec.qualified, {"key": f"give {', '.join(columns)}"})
        key = {columns[0]: key}
    missing = [c for c in columns if c not in key]
    if missing or set(key) - set(columns):
        raise DataValidationError(spec.qualified, {"key": f"must be exactly {', '.join(columns)}"})
    clause = db.SQL(" and ").join(db.SQL("{} = %s").format(db.Identifier(c)) for c in columns)
    return clause, [key[c] for c in columns]


def _order(spec: TableSpec, order: Sequence[str]) -> tuple[list[str], bool]:
    names = [o.lstrip("-") for o in order]
    descending = {o.startswith("-") for o in order}
    unknown = [n for n in names if n not in spec.columns]
    if unknown or len(descending) > 1:
        why = f"unknown column(s) {', '.join(unknown)}" if unknown else "mixes directions"
        raise DataValidationError(spec.qualified, {"order": why})
    columns = names + [c for c in spec.primary_key if c not in names]
    return columns, descending == {True}


def _filters(spec: TableSpec, filters: Mapping[str, Any]) -> tuple[list[db.Composable], list[Any]]:
    where: list[db.Composable] = []
    params: list[Any] = []
    bad = {}
    for column, wanted in filters.items():
        if column not in spec.columns:
            bad[column] = f"{spec.qualified} has no column {column!r}"
            continue
        ident = db.Identifier(column)
        if wanted is None:
            where.append(db.SQL("{} is null").format(ident))
        elif isinstance(wanted, list):
            where.append(db.SQL("{} = any(%s)").format(ident))
            params.append(wanted)
        elif isinstance(wanted, tuple):
            op, value = wanted if len(wanted) == 2 else (None, None)
            if op not in _OPERATORS:
                bad[column] = f"the operator must be one of {' '.join(_OPERATORS)}"
                continue
            where.append(db.SQL("{} {} %s").format(ident, db.SQL(_OPERATORS[op])))
            params.append(value)
        else:
            where.append(db.SQL("{} = %s").format(ident))
            params.append(wanted)
    if bad:
        raise DataValidationError(spec.qualified, bad)
    return where, params
