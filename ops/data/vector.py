"""Nearest-neighbour search over the pgvector columns (issue 12, part 6).

``public.blogs`` and ``public.memory_nodes`` hold a 1536-dimension
``vector_embedding`` with an HNSW index on ``vector_cosine_ops``. The search
orders by cosine distance (``<=>``, the operator that index serves) and
takes ``limit k``, so PostgreSQL walks the index instead of sorting the table.
What it promises:

- **The statement is checked before it is sent**: the table must have a
  vector column, the embedding its dimensions, ``k`` 1 to :data:`MAX_K`, the
  fields and filters columns of the table (the manifest's). Every bad one is
  named in one :class:`~ops.data.service.DataValidationError` (exit 2).
- **It runs in the service's frame**: one transaction as the
  :class:`~ops.data.service.Principal`, so row level security decides which
  rows a user may find (published blogs only), and failures are mapped and
  recorded as every other call's.
- **Enough candidates**: HNSW returns at most ``hnsw.ef_search`` rows, so the
  call raises it to ``k`` for its transaction (``SET LOCAL``), and turns on
  pgvector's iterative scan (0.8+, ``strict_order``) so that filters and
  policies, applied after the index, still leave ``k`` rows when there are.
- ``bump_usage`` adds 1 to ``usage_score`` of exactly the rows returned, in
  the same transaction (an admin's bump is audited per row).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops import db
from ops.data.model import ColumnSpec, TableSpec, find_table
from ops.data.validate import check_value
from ops.errors import UsageError
from ops.findings import Finding, FindingsReport

if TYPE_CHECKING:
    from ops.data.service import DataService, Principal

MAX_K = 1000  # also pgvector's largest hnsw.ef_search
MIN_EF_SEARCH = 40  # pgvector's default: never search with fewer candidates than that
USAGE_COLUMN = "usage_score"


@dataclass(frozen=True)
class Neighbour:
    """One row found: its primary key, its cosine distance (0 same direction, 2 opposite)
    and the fields asked for."""

    id: Any
    distance: float
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "distance": self.distance, "fields": self.fields}


Neighbours = list[Neighbour]  # for DataService, whose own ``list`` method hides the builtin


@dataclass(frozen=True)
class NearestQuery:
    """A checked search: the statement and its parameters, ready to run (or to EXPLAIN)."""

    table: TableSpec
    column: ColumnSpec
    k: int
    fields: tuple[str, ...]
    statement: db.Query
    params: list[Any]


def vector_column(spec: TableSpec) -> ColumnSpec | None:
    """The table's pgvector column, or None when it has none."""
    return next((c for c in spec.columns.values() if c.dimensions is not None), None)


def nearest_query(
    table: str | TableSpec,
    embedding: Sequence[float],
    k: int,
    *,
    filters: Mapping[str, Any] | None = None,
    fields: Sequence[str] = (),
) -> NearestQuery:
    """Check a search and build its statement (no I/O).

    Raises UsageError for an unknown table, DataValidationError naming every
    bad argument (``table`` without a vector column, ``embedding``, ``k``,
    each unknown field or filter column).
    """
    from ops.data.service import DataValidationError, _filters, _ident

    spec = table if isinstance(table, TableSpec) else find_table(table)
    column = vector_column(spec)
    if column is None:
        vectors = sorted(t.qualified for t in _vector_tables())
        raise DataValidationError(
            spec.qualified,
            {"table": f"has no vector column (those with one: {', '.join(vectors)})"},
        )
    problems: dict[str, str] = {}
    if embedding is None:
        problems["embedding"] = "is required"
    elif problem := check_value(column, list(embedding) if _is_sequence(embedding) else embedding):
        problems["embedding"] = problem
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        problems["k"] = f"must be an integer from 1 to {MAX_K}"
    for name in fields:
        if name not in spec.columns:
            problems[name] = f"{spec.qualified} has no column {name!r}"
    try:
        where, params = _filters(spec, filters or {})
    except DataValidationError as exc:
        problems.update(exc.problems)
    if problems:
        raise DataValidationError(spec.qualified, problems)
    key = spec.primary_key
    chosen = tuple(dict.fromkeys(f for f in fields if f not in key))
    where.insert(0, db.SQL("{} is not null").format(db.Identifier(column.name)))
    # Order by the bare ``column <=> vector`` expression (through its alias):
    # that is the form the HNSW index's ordering operator serves. The operator
    # is schema-qualified: pgvector lives in ``extensions``, which a role's
    # search_path may lack.
    statement = db.SQL(
        "select {key}, {fields}{vector} operator(extensions.<=>) %s::extensions.vector "
        "as distance from {table} "
        "where {where} order by distance limit {k}"
    ).format(
        key=db.SQL(", ").join(db.Identifier(c) for c in key),
        fields=db.SQL("").join(db.Identifier(f) + db.SQL(", ") for f in chosen),
        vector=db.Identifier(column.name),
        table=_ident(spec),
        where=db.SQL(" and ").join(where),
        k=db.Literal(k),
    )
    return NearestQuery(spec, column, k, chosen, statement, [_vector_text(embedding), *params])


def search_settings(k: int) -> tuple[db.Query, list[Any]]:
    """The statement that sets the search's pgvector settings for its transaction only.

    ``hnsw.ef_search`` (the candidates the index returns, at most 1000) to at
    least ``k``; ``hnsw.iterative_scan`` to ``strict_order`` where this
    pgvector has it (read from pg_settings, which lists pgvector's settings
    once the cast to vector has loaded the library).
    """
    statement = db.SQL(
        "select set_config('hnsw.ef_search', %s, true), "
        "'[0]'::extensions.vector is not null as loaded, "
        "(select set_config(name, 'strict_order', true) from pg_settings "
        "where name = 'hnsw.iterative_scan') as iterative"
    )
    return statement, [str(max(k, MIN_EF_SEARCH))]


def search(
    service: DataService,
    who: Principal,
    table: str,
    embedding: Sequence[float],
    k: int,
    *,
    filters: Mapping[str, Any] | None = None,
    fields: Sequence[str] = (),
    bump_usage: bool = False,
) -> list[Neighbour]:
    """The body of :meth:`DataService.nearest` (the one way in), which records its refusals."""
    from ops.data.service import DataValidationError

    query = nearest_query(table, embedding, k, filters=filters, fields=fields)
    spec = query.table
    if bump_usage and USAGE_COLUMN not in spec.columns:
        raise DataValidationError(
            spec.qualified, {"bump_usage": f"the table has no {USAGE_COLUMN} column"}
        )
    settings, settings_params = search_settings(k)
    with service._call(who, spec, "nearest") as audit:
        db.run_query(service.conn, settings, settings_params)
        rows = db.run_query(service.conn, query.statement, query.params)
        if bump_usage and rows:
            _bump(service, spec, rows, audit)
    return [_neighbour(spec, query.fields, row) for row in rows]


def load_embedding(path: str | Path) -> list[float]:
    """The embedding in a JSON file: a list of numbers, or an object with ``embedding``.

    Raises UsageError (exit 2) saying what is wrong with the file; its
    dimensions are checked against the table by :func:`nearest_query`.
    """
    path = Path(path)
    hint = "give a JSON file holding a list of numbers, e.g. [0.1, -0.2, …]"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"embedding file {path}: no such file", hint=hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"embedding file {path}: cannot read it ({exc})", hint=hint) from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"embedding file {path}: not JSON ({exc})", hint=hint) from None
    if isinstance(value, dict):
        value = value.get("embedding")
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise UsageError(f"embedding file {path}: not a list of finite numbers", hint=hint)
    return [float(v) for v in value]


def _bump(service: DataService, spec: TableSpec, rows: list[dict[str, Any]], audit: Any) -> None:
    from ops.data.service import _ident

    (key,) = spec.primary_key
    bumped = db.run_query(
        service.conn,
        db.SQL("update {table} set {u} = coalesce({u}, 0) + 1 where {key} = any(%s) "
               "returning {key}, {u}").format(
            table=_ident(spec), u=db.Identifier(USAGE_COLUMN), key=db.Identifier(key),
        ),
        [[row[key] for row in rows]],
    )  # fmt: skip
    if audit.wanted:
        for row in bumped:
            before = {key: row[key], USAGE_COLUMN: row[USAGE_COLUMN] - 1}
            audit(before, row)


def _neighbour(spec: TableSpec, fields: tuple[str, ...], row: dict[str, Any]) -> Neighbour:
    key = spec.primary_key
    ident = row[key[0]] if len(key) == 1 else {c: row[c] for c in key}
    return Neighbour(ident, float(row["distance"]), {f: row[f] for f in fields})


def _vector_tables() -> list[TableSpec]:
    from ops.data.model import load_tables

    return [t for t in load_tables().values() if vector_column(t) is not None]


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _vector_text(embedding: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in embedding) + "]"


@dataclass
class NearestReport(FindingsReport):
    """``data nearest``'s result: the neighbours found, for the console or ``--json``."""

    table: str
    k: int
    principal: str
    bumped: bool
    neighbours: list[Neighbour]
    findings: list[Finding] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "k": self.k,
            "principal": self.principal,
            "bumped": self.bumped,
            "neighbours": [n.to_dict() for n in self.neighbours],
        }


def nearest_report(
    service: DataService,
    table: str,
    embedding_file: str | Path,
    k: int,
    *,
    fields: Sequence[str] = (),
    filters: Sequence[str] = (),
    bump: bool = False,
    actor: str = "",
) -> NearestReport:
    """``data nearest``: read the embedding file, parse ``COLUMN=VALUE`` filters, search as
    the service role (or ``actor`` as admin). Raises UsageError for a bad file or filter,
    DataValidationError for arguments the table refuses."""
    from ops.data.service import Principal

    wanted: dict[str, Any] = {}
    for item in filters:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise UsageError(f"--filter {item!r}: expected COLUMN=VALUE")
        wanted[column] = value
    embedding = load_embedding(embedding_file)
    who = Principal.admin(actor) if actor else Principal.service()
    spec = find_table(table)
    found = service.nearest(
        who, spec.qualified, embedding, k, filters=wanted, fields=fields, bump_usage=bump
    )
    return NearestReport(spec.qualified, k, who.kind, bump, found)
