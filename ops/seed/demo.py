"""`empire-ops db seed-demo`: deterministic demo data in every table, loaded with COPY.

:func:`seed_demo` fills every table of the Empire schema with rows from
:mod:`ops.seed.generators` (same seed, same rows), in one transaction: a
failure leaves nothing half-seeded. It refuses a database that already holds
rows unless ``truncate=True``; :func:`guard_target` refuses a non-embedded or
production target unless the caller confirmed with ``--yes``.

Event rows are spread over the months that have a monthly partition in the
target (read from the catalog), plus a share before them that lands in each
table's DEFAULT partition. Two databases migrated in the same month therefore
receive identical rows; every other timestamp is an offset from a fixed epoch.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ops import db
from ops import findings as F
from ops.errors import DatabaseError, MigrationError, UsageError
from ops.seed import generators as G

if TYPE_CHECKING:
    from ops.findings import Finding
    from ops.up import UpState

log = logging.getLogger(__name__)

LOCK_NAME = "seed-demo"
# The scale `up --demo` seeds: a few thousand rows, about 1 MB, a second or two.
UP_DEMO_SCALE = 0.1
MAX_SCALE = 1000.0
# The actor_id empire-ops records its own actions under in admin_logs.
OWN_ACTOR = "empire-ops"


class SeedRefused(UsageError):
    """Seeding would destroy or mix with existing data, or hit a target not confirmed."""


class SchemaNotReady(MigrationError):
    """The Empire schema is not (fully) applied to the target database."""


@dataclass(frozen=True)
class TableReport:
    """What one table received."""

    table: str
    rows: int
    bytes: int
    seconds: float


@dataclass
class SeedReport:
    """What :func:`seed_demo` wrote: per-table rows, bytes (size growth, indexes included)."""

    scale: float
    seed: int
    truncated: bool
    tables: list[TableReport] = field(default_factory=list)
    seconds: float = 0.0
    event_months: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        """A stable shape for ``--json``."""
        return {
            "scale": self.scale,
            "seed": self.seed,
            "truncated": self.truncated,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "event_months": self.event_months,
            "tables": [{**asdict(t), "seconds": round(t.seconds, 3)} for t in self.tables],
        }


def _needs_confirmation(*, embedded: bool, env: str) -> str | None:
    """Why demo data may not go to this target unconfirmed, or None when it may."""
    if env == "prod":
        return "the production environment"
    return None if embedded else "not the embedded server"


def guard_target(masked: str, *, embedded: bool, env: str, yes: bool) -> None:
    """Refuse (SeedRefused, exit 2) a non-embedded or production target unless ``yes``."""
    why = _needs_confirmation(embedded=embedded, env=env)
    if yes or why is None:
        return
    raise SeedRefused(
        f"refusing to seed demo data into {masked}: it is {why}",
        hint="check the target above; rerun with --yes if you really mean this database",
    )


def seed_demo(
    dsn_or_conn: str | db.Connection[Any],
    *,
    scale: float = 1,
    seed: int = 42,
    truncate: bool = False,
    options: db.ConnectOptions | None = None,
    lock_timeout: float = 10.0,
) -> SeedReport:
    """Fill every Empire table with deterministic demo rows, in one transaction.

    ``scale`` 1 is about 10 MB; row counts grow linearly with it. Given a DSN
    the connection is opened and closed here; given a connection, the seed
    runs in one transaction on it and is committed on success (with any
    transaction the caller had open), rolled back on failure.

    Raises SeedRefused (exit 2) when a table already holds rows and
    ``truncate`` is false, or for a scale out of range; SchemaNotReady (exit 1)
    when a table is missing; LockBusy (exit 5) when another seed runs;
    DatabaseError when the server rejects a row (nothing is written then).
    """
    if not 0 < scale <= MAX_SCALE:
        raise SeedRefused(
            f"scale {scale:g} is out of range", hint=f"use a scale > 0 and <= {MAX_SCALE:g}"
        )
    with _connection(dsn_or_conn, options) as conn, db.advisory_lock(conn, LOCK_NAME, lock_timeout):
        # One transaction (BEGIN..COMMIT even on an autocommit connection):
        # any error, or an interrupt, rolls every table back.
        with db.transaction(conn):
            report = _seed(conn, scale=scale, seed=seed, truncate=truncate)
        if not conn.autocommit:
            conn.commit()  # a transaction the caller had open
    return report


def seed_demo_if_empty(
    dsn: str,
    *,
    scale: float = UP_DEMO_SCALE,
    seed: int = 42,
    options: db.ConnectOptions | None = None,
) -> SeedReport | None:
    """For ``up --demo``: seed a small dataset, or return None when data is already there."""
    with _connection(dsn, options) as conn:
        _require_schema(conn)
        if _non_empty_tables(conn):
            conn.rollback()
            return None
        conn.rollback()
        return seed_demo(conn, scale=scale, seed=seed)


def step_demo(state: UpState) -> list[Finding]:
    """The ``up --demo`` step: seed a small dataset into the embedded database, once.

    Runs after the migrations step. Yields DEMO_SEEDED (ok), or DEMO_SKIPPED
    (info) when the database already holds data or is not one demo data may
    go to without confirmation (a non-embedded server, or prod). Raises what
    :func:`seed_demo` raises.
    """
    target = state.target
    if target is None:
        return []
    why = _needs_confirmation(embedded=target.embedded, env=state.config.env)
    if why:
        return [
            F.info(
                "DEMO_SKIPPED",
                target.masked,
                f"no demo data seeded: the target is {why} "
                "(use `empire-ops db seed-demo --yes` to seed it deliberately)",
            )
        ]
    report = seed_demo_if_empty(target.dsn, options=target.options)
    if report is None:
        return [
            F.info("DEMO_SKIPPED", target.masked, "the database already holds data; left as is")
        ]
    return [
        F.ok(
            "DEMO_SEEDED",
            target.masked,
            f"{report.rows} demo rows ({report.bytes / 1e6:.1f} MB) in {report.seconds:.1f}s, "
            f"scale {report.scale:g}, seed {report.seed}",
        )
    ]


@contextlib.contextmanager
def _connection(
    dsn_or_conn: str | db.Connection[Any], options: db.ConnectOptions | None
) -> Iterator[db.Connection[Any]]:
    if not isinstance(dsn_or_conn, str):
        yield dsn_or_conn
        return
    conn = db.connect(
        dsn_or_conn, options, autocommit=False, session=f"the '{LOCK_NAME}' advisory lock"
    )
    try:
        yield conn
    finally:
        conn.close()


def _seed(conn: db.Connection[Any], *, scale: float, seed: int, truncate: bool) -> SeedReport:
    started = time.monotonic()
    # A scale-100 COPY streams for minutes: lift the per-statement limit, for
    # this transaction only.
    db.run_query(conn, "set local statement_timeout = 0")
    _require_schema(conn)
    busy = _non_empty_tables(conn)
    if busy and not truncate:
        raise SeedRefused(
            f"the database already holds data (in {_some(busy)}); nothing was changed",
            hint="seed an empty database, or pass --truncate to delete every row of the "
            "Empire tables first",
        )
    if truncate:
        # admin_logs is append-only (its trigger refuses TRUNCATE, whoever
        # asks); the owner lifts it for this transaction only, in plain view.
        guard = db.SQL("alter table public.admin_logs {} trigger admin_logs_no_truncate")
        db.run_query(conn, guard.format(db.SQL("disable")))
        db.run_query(conn, db.SQL("truncate table {}").format(_empire_tables()))
        db.run_query(conn, guard.format(db.SQL("enable")))
    months = event_months(conn)
    world = G.World(seed=seed, counts=G.counts_for(scale), event_months=months)
    sizes_before = table_sizes(conn)
    report = SeedReport(
        scale=scale,
        seed=seed,
        truncated=truncate,
        event_months=[m.strftime("%Y-%m") for m in months],
    )
    timings: dict[str, tuple[int, float]] = {}
    for spec in G.TABLES:
        t0 = time.monotonic()
        rows = _copy(conn, spec, world)
        timings[spec.label] = (rows, time.monotonic() - t0)
        log.debug("seeded %s: %d rows", spec.label, rows)
    sizes_after = table_sizes(conn)
    for name, (rows, seconds) in timings.items():
        grown = sizes_after.get(name, 0) - sizes_before.get(name, 0)
        report.tables.append(TableReport(name, rows, max(0, grown), seconds))
    # Fresh statistics, so the planner (and any benchmark) sees the new rows.
    db.run_query(conn, db.SQL("analyze {}").format(_empire_tables()))
    report.seconds = time.monotonic() - started
    return report


def _empire_tables() -> db.sql.Composed:
    """Every seeded table as a comma-separated list of quoted ``schema.name`` identifiers."""
    return db.SQL(", ").join(db.Identifier(t.schema, t.name) for t in G.TABLES)


def _copy(conn: db.Connection[Any], spec: G.TableSpec, world: G.World) -> int:
    statement = db.SQL("copy {} ({}) from stdin").format(
        db.Identifier(spec.schema, spec.name), db.SQL(", ").join(map(db.Identifier, spec.columns))
    )
    rng = world.rng(spec.name)
    try:
        return db.copy_rows(conn, statement, spec.generate(world, rng, world.counts[spec.name]))
    except DatabaseError as exc:
        fix = (
            exc.hint
            if exc.sqlstate == "42501" and exc.hint
            else ("check that the schema matches the migrations (`empire-ops migrate check`)")
        )
        raise DatabaseError(
            f"loading demo rows into {spec.qualified} failed: {exc.server_message or exc.message}",
            hint=f"nothing was written (the seed runs in one transaction); {fix}",
            sqlstate=exc.sqlstate,
        ) from None


def _require_schema(conn: db.Connection[Any]) -> None:
    query = "select t from unnest(%s::text[]) t where to_regclass(t) is null"
    qualified = [t.qualified for t in G.TABLES]
    missing = [r["t"].removeprefix("public.") for r in db.run_query(conn, query, (qualified,))]
    if missing:
        raise SchemaNotReady(
            f"the Empire schema is not applied: missing table(s) {_some(missing)}",
            hint="apply the migrations first (`empire-ops migrate up`)",
        )


def _some(names: list[str], shown: int = 5) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _non_empty_tables(conn: db.Connection[Any]) -> list[str]:
    """The Empire tables that hold at least one row (one query for all of them).

    The admin_logs rows empire-ops itself writes (``migrate heal`` records its
    repairs there) do not make a database "non-empty": they are not data a
    seed could clash with, and a healed but otherwise empty database is still
    a fine place for demo data.
    """
    parts = [
        db.SQL("select {} as t where exists (select 1 from {} where {})").format(
            db.Literal(t.label),
            db.Identifier(t.schema, t.name),
            db.SQL("actor_id is distinct from {}").format(db.Literal(OWN_ACTOR))
            if t.qualified == "public.admin_logs"
            else db.SQL("true"),
        )
        for t in G.TABLES
    ]
    return [r["t"] for r in db.run_query(conn, db.SQL(" union all ").join(parts))]


def table_sizes(conn: db.Connection[Any]) -> dict[str, int]:
    """Bytes on disk (heap, TOAST and indexes) per seeded table (its label), partitions included."""
    query = """
        select t, sum(pg_total_relation_size(r))::bigint as bytes
        from unnest(%s::text[]) t,
             lateral (select t::regclass as r
                      union select relid from pg_partition_tree(t::regclass)) p
        group by t
    """
    labels = {t.qualified: t.label for t in G.TABLES}
    rows = db.run_query(conn, query, (list(labels),))
    return {labels[r["t"]]: int(r["bytes"]) for r in rows}


_PARTITION_SUFFIX = re.compile(r"_p(\d{4})(\d{2})$")


def event_months(conn: db.Connection[Any]) -> list[datetime]:
    """Months (first day, UTC) with a monthly partition on every event table, sorted."""
    query = """
        select p.relname as parent, c.relname as child
        from pg_inherits i
        join pg_class c on c.oid = i.inhrelid
        join pg_class p on p.oid = i.inhparent
        join pg_namespace n on n.oid = p.relnamespace
        where n.nspname = 'public' and p.relname = any(%s)
    """
    per_table: dict[str, set[tuple[int, int]]] = {t: set() for t in G.EVENT_TABLES}
    for row in db.run_query(conn, query, (list(G.EVENT_TABLES),)):
        m = _PARTITION_SUFFIX.search(row["child"])
        if m and row["child"] == f"{row['parent']}{m.group(0)}":
            per_table[row["parent"]].add((int(m.group(1)), int(m.group(2))))
    common = set.intersection(*per_table.values())
    return [datetime(y, mo, 1, tzinfo=UTC) for y, mo in sorted(common)]


def render_report(report: SeedReport) -> str:
    """A table per seeded table (rows, size growth, seconds), then the totals."""
    lines = [f"{'table':<20} {'rows':>9} {'bytes':>12} {'seconds':>8}"]
    for t in report.tables:
        lines.append(f"{t.table:<20} {t.rows:>9} {t.bytes:>12} {t.seconds:>8.2f}")
    lines.append(
        f"{'total':<20} {report.rows:>9} {report.bytes:>12} {report.seconds:>8.2f}"
        f"  (scale {report.scale:g}, seed {report.seed}, {report.bytes / 1e6:.1f} MB)"
    )
    return "\n".join(lines)
