"""``empire-ops export``: tables (or a preset view) to JSONL, CSV or Parquet for AI/ML work.

What it promises (issue 12, part 7):

- **Constant memory, at the server's pace.** Each table streams through
  ``COPY (select …) TO STDOUT`` and is written as it arrives, about 256 KiB
  at a time. PostgreSQL formats every row (CSV, or JSON with
  ``row_to_json``); Python only fills in the hashed columns (see "filling in
  the hashes" below).
- **One snapshot.** All tables are read in one ``repeatable read, read only``
  transaction, so the files agree with each other.
- **A PII policy** (``[data.export]``): ``drop`` columns are left out, ``hash``
  columns are replaced by HMAC-SHA256 keyed with the secret
  ``pii_key_secret`` (``EXPORT_PII_KEY``), which keeps joins possible without
  the values. The hashing happens in Python while streaming, so the key never
  reaches SQL text, ``pg_stat_activity`` or the server's logs. Without the
  key, hashed columns are dropped and an ``EXPORT_PII_KEY_MISSING`` warning
  says so. :data:`NEVER_EXPORTED` columns and the ``empire_private`` schema
  are left out whatever the config says.
- **Nothing half written.** Each file is written under a temporary name,
  fsynced and renamed when complete; ``manifest.json`` (rows, bytes, sha256,
  columns exported, dropped and hashed, schema version, filters, format,
  times) is written last, the same way. A failure removes the temporary file.

Presets: ``rlhf`` (preference pairs for tuning) and ``conversions`` (the A/B
view); see :func:`rlhf_query` and :func:`conversions_query` and docs/data.md.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ops import db
from ops import findings as F
from ops.data.model import TableSpec, find_table, load_tables, vector_dimensions
from ops.errors import SecretsError, UsageError, storage_error
from ops.findings import Finding, FindingsReport
from ops.fsutil import atomic_write_bytes, ensure_dir

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "parquet")
PRESETS = ("rlhf", "conversions")
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
PRIVATE_SCHEMA = "empire_private"
# Credentials and secret references: never in an export, whatever [data.export] says.
NEVER_EXPORTED = frozenset({"password_hash", "session_tokens", "api_key_ref", "license_key"})
TIME_COLUMNS = ("occurred_at", "created_at")  # --since filters on the first one a table has
MIN_KEY_LENGTH = 32
_FLUSH_BYTES = 1 << 20
_WRITE_OUT_BYTES = 16 << 20  # how much an export file grows before the kernel is asked to write it


# -- the PII policy (pure) ---------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnPlan:
    """What becomes of one table's columns: exported as is, hashed, or dropped."""

    kept: tuple[str, ...]
    hashed: tuple[str, ...]
    dropped: tuple[str, ...]

    @property
    def exported(self) -> tuple[str, ...]:
        """The columns of the file, in order: the kept ones, then the hashed ones."""
        return self.kept + self.hashed


@dataclass(frozen=True)
class PiiPolicy:
    """``drop`` and ``hash`` entries: a column name (any table) or ``schema.table.column``.

    ``keyed`` says whether a key is there to hash with; without one, hashed
    columns are dropped. :data:`NEVER_EXPORTED` columns are always dropped.
    """

    drop: frozenset[str]
    hash: frozenset[str]
    keyed: bool

    @classmethod
    def from_config(cls, config: Config, *, keyed: bool) -> PiiPolicy:
        return cls(
            frozenset(config.get("data.export.drop")),
            frozenset(config.get("data.export.hash")),
            keyed,
        )

    def _matches(self, entries: frozenset[str], qualified: str, column: str) -> bool:
        return column in entries or f"{qualified}.{column}" in entries

    def plan(self, qualified: str, columns: Iterable[str]) -> ColumnPlan:
        kept: list[str] = []
        hashed: list[str] = []
        dropped: list[str] = []
        for col in columns:
            if col in NEVER_EXPORTED or self._matches(self.drop, qualified, col):
                dropped.append(col)
            elif self._matches(self.hash, qualified, col):
                (hashed if self.keyed else dropped).append(col)
            else:
                kept.append(col)
        return ColumnPlan(tuple(kept), tuple(hashed), tuple(dropped))

    def would_hash(self, qualified: str, columns: Iterable[str]) -> list[str]:
        """The columns the policy hashes when a key is there (for the missing-key warning)."""
        return [
            c for c in columns
            if c not in NEVER_EXPORTED and not self._matches(self.drop, qualified, c)
            and self._matches(self.hash, qualified, c)
        ]  # fmt: skip


def hmac_sha256(key: bytes) -> Callable[[bytes], str]:
    """HMAC-SHA256 with ``key``, as hex: equal to ``hmac.new(key, value, "sha256")``.

    The stdlib keys a new object for every value (1.9 µs); here the padded
    key's two SHA-256 states are computed once (RFC 2104), and a value costs
    two copies of them (0.8 µs). An export of users hashes three columns of
    every row, none repeating.
    """
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded)).copy
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded)).copy

    def digest(value: bytes) -> str:
        mac = inner()
        mac.update(value)
        out = outer()
        out.update(mac.digest())
        return out.hexdigest()

    return digest


def hasher(key: bytes) -> Callable[[str | None], str | None]:
    """HMAC-SHA256 of a value's text with ``key`` (hex); None stays None."""
    mac = hmac_sha256(key)

    def digest(value: str | None) -> str | None:
        return None if value is None else mac(value.encode("utf-8"))

    return digest


# -- what is exported ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One output file: its name, a plain ``select`` of ``plan.exported`` columns, the plan."""

    name: str
    query: db.Composable
    plan: ColumnPlan
    filters: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # column -> SQL type (parquet)


def parse_since(text: str | None) -> datetime | None:
    """``--since``: an ISO 8601 time (a date, or a time without zone, is taken as UTC).

    Raises UsageError (exit 2) when it is not one.
    """
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is not a time",
            hint="use ISO 8601, e.g. 2026-01-31 or 2026-01-31T12:00:00Z",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _time_column(spec: TableSpec) -> str | None:
    return next((c for c in TIME_COLUMNS if c in spec.columns), None)


def table_source(spec: TableSpec, policy: PiiPolicy, since: datetime | None) -> Source:
    """The :class:`Source` of one table. Raises UsageError for a private table, or for
    ``since`` on a table without a time column."""
    if spec.schema == PRIVATE_SCHEMA:
        raise UsageError(
            f"{spec.qualified} is in {PRIVATE_SCHEMA}, which is never exported",
            hint="export the public tables (`--all` leaves the private schema out)",
        )
    plan = policy.plan(spec.qualified, spec.columns)
    where: db.Composable = db.SQL("")
    filters: dict[str, str] = {}
    if since is not None:
        column = _time_column(spec)
        if column is None:
            raise UsageError(
                f"--since: {spec.qualified} has no {' or '.join(TIME_COLUMNS)} column to filter on",
                hint="export it without --since, in a run of its own",
            )
        where = db.SQL(" where {} >= {}").format(db.Identifier(column), db.Literal(since))
        filters = {"column": column, "since": since.isoformat()}
    query = db.SQL("select {} from {}.{}{}").format(
        db.SQL(", ").join(db.Identifier(c) for c in plan.exported),
        db.Identifier(spec.schema),
        db.Identifier(spec.name),
        where,
    )
    types = {c: spec.columns[c].type for c in plan.exported}
    return Source(spec.qualified, query, plan, filters, types)


def _since_clause(column: str, since: datetime | None) -> db.Composable:
    if since is None:
        return db.SQL("true")
    return db.SQL("{} >= {}").format(db.SQL(column), db.Literal(since))


def rlhf_query(since: datetime | None = None) -> db.Composable:
    """Preference pairs from ``rlhf_feedback`` and ``prompts`` (see docs/data.md, Exports).

    A feedback row belongs to the prompt whose id is its ``meta.prompt_id``;
    the response it judges is ``meta.response``, else its ``target``
    reference. It is positive for ``thumbs_up`` or a ``rating`` of 4 or 5,
    negative for ``thumbs_down`` or a ``rating`` of 1 or 2; other signals are
    left out. Per prompt, the n-th positive (by time) is paired with the n-th
    negative: ``chosen`` and ``rejected`` (pairs with the same response are
    left out). No user or session id is in a record.
    """
    return db.SQL(
        """
        with fb as (
          select f.id, f.agent_id, f.signal, f.value, f.target, f.occurred_at,
                 p.id as prompt_id, p.name as prompt_name, p.version as prompt_version,
                 p.body as prompt_body, p.model as prompt_model,
                 coalesce(f.meta->>'response', f.target) as response,
                 case when f.signal = 'thumbs_up' or (f.signal = 'rating' and f.value >= 4) then 1
                      when f.signal = 'thumbs_down' or (f.signal = 'rating' and f.value <= 2)
                      then -1 end as polarity
          from public.rlhf_feedback f
          join public.prompts p on p.id::text = f.meta->>'prompt_id'
          where {since}
        ), ranked as (
          select fb.*, row_number() over (partition by prompt_id, polarity
                                          order by occurred_at, id) as n
          from fb where polarity is not null and response is not null
        )
        select c.prompt_body as prompt, c.response as chosen, r.response as rejected,
               jsonb_build_object(
                 'prompt_id', c.prompt_id, 'prompt_name', c.prompt_name,
                 'prompt_version', c.prompt_version, 'model', c.prompt_model,
                 'agent_id', c.agent_id,
                 'chosen', jsonb_build_object('feedback_id', c.id, 'signal', c.signal,
                                              'value', c.value, 'target', c.target,
                                              'occurred_at', c.occurred_at),
                 'rejected', jsonb_build_object('feedback_id', r.id, 'signal', r.signal,
                                                'value', r.value, 'target', r.target,
                                                'occurred_at', r.occurred_at)
               ) as metadata
        from ranked c
        join ranked r on r.prompt_id = c.prompt_id and r.n = c.n and r.polarity = -1
        where c.polarity = 1 and c.response is distinct from r.response
        order by c.prompt_name, c.prompt_version, c.n
        """
    ).format(since=_since_clause("f.occurred_at", since))


RLHF_COLUMNS = ("prompt", "chosen", "rejected", "metadata")


def conversions_query(since: datetime | None = None) -> db.Composable:
    """One row per A/B variant: its test, assignments, the assignments that converted, the
    conversions and their value, and the conversion rate.

    A conversion counts for an assignment when it has the same ``session_id``
    and happened at or after ``assigned_at``. ``since`` keeps assignments
    made (and conversions that happened) at or after it.
    """
    return db.SQL(
        """
        select t.slug as test, t.status as test_status, v.name as variant, v.weight,
               count(distinct a.id) as assignments,
               count(distinct a.id) filter (where c.id is not null) as converted,
               count(distinct c.id) as conversions,
               coalesce(sum(c.value), 0) as conversion_value,
               round(count(distinct a.id) filter (where c.id is not null)::numeric
                     / nullif(count(distinct a.id), 0), 4) as conversion_rate
        from public.ab_variants v
        join public.ab_tests t on t.id = v.test_id
        left join public.ab_assignments a on a.variant_id = v.id and {a_since}
        left join public.conversions c
          on c.session_id = a.session_id and c.occurred_at >= a.assigned_at and {c_since}
        group by t.slug, t.status, v.name, v.weight
        order by t.slug, v.name
        """
    ).format(
        a_since=_since_clause("a.assigned_at", since),
        c_since=_since_clause("c.occurred_at", since),
    )


CONVERSIONS_COLUMNS = (
    "test", "test_status", "variant", "weight", "assignments", "converted", "conversions",
    "conversion_value", "conversion_rate",
)  # fmt: skip
CONVERSIONS_TYPES = {
    "assignments": "bigint", "converted": "bigint", "conversions": "bigint",
    "weight": "numeric", "conversion_value": "numeric", "conversion_rate": "numeric",
}  # fmt: skip


def preset_source(name: str, since: datetime | None) -> Source:
    """The :class:`Source` of a preset. Raises UsageError for an unknown one."""
    filters = {"since": since.isoformat()} if since else {}
    if name == "rlhf":
        plan = ColumnPlan(RLHF_COLUMNS, (), ())
        return Source("rlhf", rlhf_query(since), plan, filters, {"metadata": "jsonb"})
    if name == "conversions":
        plan = ColumnPlan(CONVERSIONS_COLUMNS, (), ())
        return Source("conversions", conversions_query(since), plan, filters, CONVERSIONS_TYPES)
    raise UsageError(f"no preset {name!r}", hint=f"the presets are {', '.join(PRESETS)}")


# -- writing ------------------------------------------------------------------------------------
class _ExportFile:
    """A binary file an export is writing: counts and sha256s what goes through it.

    The file is durable when it is renamed into place, so it is fsynced at the end. A
    helper thread has the kernel write it out every :data:`_WRITE_OUT_BYTES` as it
    grows (``fdatasync``, which waits without the GIL), so that the final fsync waits
    for the last few MiB only: on a 160 MB file that wait was 55-85 ms, a quarter to
    a third of the command's fixed start. Call :meth:`finish` when everything is written, and
    :meth:`stop` on every path (it is idempotent).
    """

    def __init__(self, fh: BinaryIO) -> None:
        self.fh, self.size, self.sha = fh, 0, hashlib.sha256()
        self._asked = 0  # the size when a write-out was last asked for
        self._wake = threading.Event()
        self._stopping = False
        self._error: OSError | None = None
        self._helper = threading.Thread(target=self._write_out, name="export-write-out",
                                        daemon=True)  # fmt: skip
        self._helper.start()

    def write(self, data: bytes) -> int:
        self.fh.write(data)
        self.sha.update(data)
        self.size += len(data)
        if self.size - self._asked >= _WRITE_OUT_BYTES:
            self.fh.flush()  # into the kernel, for the helper's fdatasync to write out
            self._asked = self.size
            self._wake.set()
        return len(data)

    def _write_out(self) -> None:
        sync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                sync(self.fh.fileno())
            except OSError as exc:
                # Kept for finish(): the kernel reports a write-out error once, to this
                # call, not again to the final fsync.
                self._error = exc
                return

    def stop(self) -> None:
        """End the helper thread (before the file is closed)."""
        self._stopping = True
        self._wake.set()
        self._helper.join()

    def finish(self) -> None:
        """Stop, flush and fsync the file; raise the OSError a write-out met, if any."""
        self.stop()
        if self._error is not None:
            raise self._error
        self.fh.flush()
        os.fsync(self.fh.fileno())


# -- filling in the hashes ---------------------------------------------------------------------
# A hashed value leaves the server as a placeholder, ``%(u<text>)s`` for a type
# whose text is only [0-9a-f-] (uuid, integers), ``%(h<hex of the UTF-8 text>)s``
# for any other, ``%(n)s`` for NULL, and the server formats everything else
# (CSV, or JSON with row_to_json). Python then fills a whole batch of rows with
# one ``bytes % mapping``, in C: the HMAC of each distinct value is computed
# once (a user's id repeats in every event of theirs). Per row, Python does no
# more than take the message: an export keeps up with the server, which a
# parse-and-rewrite of every row (about 15 µs a row) could not.
_PLAIN_TYPES = frozenset({"uuid", "smallint", "integer", "bigint"})
_HASHES_KEPT = 100_000  # distinct values remembered: about 20 MB, whatever the table's size
_COLLECT_BYTES = 64 << 20  # the young generations collected every 64 MiB written (~3 ms each)
_JSON_NULL = b"\x01"  # what a NULL fills in JSON ("\x01" then becomes null: JSON has no raw \x01)


class _Hashes(dict[bytes, bytes]):
    """Placeholder name -> what the file shows: the value's HMAC-SHA256 (hex), or for NULL
    ``null``. A name not made by :func:`_placeholder` raises ValueError."""

    def __init__(self, key: bytes, null: bytes) -> None:
        super().__init__()
        self._mac = hmac_sha256(key)
        self._null = null
        self.forget()

    def forget(self) -> None:
        """Forget every hash computed (memory stays bounded: see :data:`_HASHES_KEPT`)."""
        self.clear()
        self[b"n"] = self._null

    def __missing__(self, name: bytes) -> bytes:
        kind, text = name[:1], name[1:]
        if kind == b"u":
            value = text
        elif kind == b"h":
            value = bytes.fromhex(text.decode("ascii"))
        else:
            raise ValueError("not an export placeholder")
        digest = self[name] = self._mac(value).encode("ascii")
        return digest


def _placeholder(column: str, sql_type: str) -> db.Composable:
    text = db.SQL("q.{}::text").format(db.Identifier(column))
    if sql_type in _PLAIN_TYPES:
        named = db.SQL("'u' || {}").format(text)
    else:
        named = db.SQL("'h' || encode(convert_to({}, 'UTF8'), 'hex')").format(text)
    return db.SQL("coalesce('%(' || {} || ')s', '%(n)s') as {}").format(
        named, db.Identifier(column)
    )


def _copy_statement(source: Source, fmt: str) -> db.sql.Composed:
    """``COPY … TO STDOUT``: CSV with a header, or one JSON object per row (row_to_json, in
    CSV mode with a delimiter and quote JSON never holds raw, so nothing is escaped);
    hashed columns last, as placeholders. Parquet reads PostgreSQL's text format."""
    if fmt == "parquet":
        return db.SQL("copy ({}) to stdout").format(source.query)
    select = source.query
    if source.plan.hashed:
        columns: list[db.Composable] = [
            db.SQL("q.{}").format(db.Identifier(c)) for c in source.plan.kept
        ]
        columns += [_placeholder(c, source.types.get(c, "text")) for c in source.plan.hashed]
        select = db.SQL("select {} from ({}) q").format(db.SQL(", ").join(columns), select)
    if fmt == "csv":
        return db.SQL("copy ({}) to stdout (format csv, header)").format(select)
    return db.SQL(
        "copy (select row_to_json(r) from ({}) r) to stdout "
        "(format csv, delimiter e'\\x1f', quote e'\\x1e')"
    ).format(select)


def _fill(batch: list[db.Buffer], per_row: int, hashes: _Hashes, fmt: str) -> bytes:
    """The batch's rows with their placeholders filled in."""
    block = b"".join(batch)
    if per_row:
        expected = len(batch) * per_row
        if block.count(b"%") == expected:  # every % is a placeholder's
            block = block % hashes
        elif (escaped := block.replace(b"%", b"%%").replace(b"%%(", b"%(")).count(
            b"%("
        ) == expected:  # the data's own % escaped, and none of it was followed by "("
            block = escaped % hashes
        else:
            block = b"".join(_fill_row(bytes(m), per_row, hashes) for m in batch)
        if fmt == "jsonl" and _JSON_NULL in block:
            block = block.replace(b'"' + _JSON_NULL + b'"', b"null")
        if len(hashes) > _HASHES_KEPT:
            hashes.forget()
    return block


def _fill_row(row: bytes, per_row: int, hashes: _Hashes) -> bytes:
    """One row whose data holds "%(": its placeholders are its last ``per_row`` "%(…)s",
    since the hashed columns come last."""
    parts: list[bytes] = []
    end = len(row)
    for _ in range(per_row):
        start = row.rfind(b"%(", 0, end)
        stop = row.index(b")s", start)
        parts += (row[stop + 2 : end], hashes[row[start + 2 : stop]])
        end = start
    parts.append(row[:end])
    return b"".join(reversed(parts))


@dataclass
class TableResult:
    """One file of an export, as the manifest records it."""

    name: str
    file: str
    rows: int
    bytes: int
    sha256: str
    columns: list[str]
    hashed: list[str]
    dropped: list[str]
    filters: dict[str, str]


def _write_source(
    conn: db.Connection[Any], source: Source, fmt: str, out: Path, key: bytes | None
) -> TableResult:
    """Stream ``source`` into ``out/<name>.<fmt>`` under a temporary name, then rename it.
    ``key`` is the PII key (None when the plan hashes nothing)."""
    target = out / f"{source.name}.{fmt}"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=out)
    except OSError as exc:
        raise _storage(exc, "write", target) from exc
    statement = _copy_statement(source, fmt)
    # closing(): on any failure the COPY is ended here, before the caller rolls back
    # (a COPY left suspended in its generator would make the rollback wait forever).
    stream: Generator[Any, None, None] = (
        db.copy_out_rows(conn, statement) if fmt == "parquet"
        else db.copy_out_batches(conn, statement)
    )  # fmt: skip
    try:
        with os.fdopen(fd, "wb", buffering=_FLUSH_BYTES) as fh, contextlib.closing(stream):
            if fmt == "parquet":
                counted = _write_parquet(fh, stream, source, hasher(key or b""))
                fh.flush()
                os.fsync(fh.fileno())
            else:
                sink = _ExportFile(fh)
                try:
                    counted = _write_text(sink, stream, source, fmt, key)
                    sink.finish()
                finally:
                    sink.stop()
        size_bytes, sha = (sink.size, sink.sha.hexdigest()) if fmt != "parquet" else _sum(tmp)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and (mapped := storage_error(exc, "write", target)):
            raise mapped from exc
        raise
    log.info("export: %s: %d rows, %d bytes", source.name, counted, size_bytes)
    return TableResult(
        source.name, target.name, counted, size_bytes, sha,
        list(source.plan.exported), list(source.plan.hashed), list(source.plan.dropped),
        source.filters,
    )  # fmt: skip


def _write_text(
    sink: _ExportFile, batches: Iterator[list[db.Buffer]], source: Source, fmt: str,
    key: bytes | None,
) -> int:  # fmt: skip
    """CSV or JSONL batches, their placeholders filled, into ``sink``; return the rows."""
    per_row = len(source.plan.hashed)
    hashes = _Hashes(key or b"", b"" if fmt == "csv" else _JSON_NULL)
    counted = 0
    header = fmt == "csv"
    # Each COPY message comes with a tuple, which the cyclic collector counts: it
    # would run every 700 rows and walk the remembered hashes each time (about a
    # sixth of the CPU of an export). This loop makes no cycles, so the collector
    # is paused, and run once every _COLLECT_BYTES in case a library made some.
    collecting = gc.isenabled()
    gc.disable()
    written = 0
    try:
        for batch in batches:
            if header:  # the CSV header: the column names, as the server wrote them
                sink.write(bytes(batch.pop(0)))
                header = False
            counted += len(batch)
            written += sink.write(_fill(batch, per_row, hashes, fmt))
            if written >= _COLLECT_BYTES:
                gc.collect(1)  # what the loop made; a full collection walks every module (30 ms)
                written = 0
    finally:
        if collecting:
            gc.enable()
    return counted


def _storage(exc: OSError, action: str, path: Path) -> Exception:
    mapped = storage_error(exc, action, path)
    return mapped if mapped is not None else exc


def _sum(path: str) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(_FLUSH_BYTES):
            sha.update(block)
            size += len(block)
    return size, sha.hexdigest()


_PARQUET_BATCH = 10_000
_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")


def _arrow_type(sql_type: str) -> Any:
    """The Parquet (Arrow) type of a PostgreSQL column: integers, floats, booleans, times,
    dates, ``numeric(p,s)`` (decimal) and pgvector (fixed-size list of float32) typed;
    everything else, an unconstrained ``numeric`` included, as PostgreSQL's text."""
    import pyarrow as pa

    simple = {
        "smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(),
        "real": pa.float32(), "double precision": pa.float64(), "boolean": pa.bool_(),
        "timestamp with time zone": pa.timestamp("us", tz="UTC"),
        "timestamp without time zone": pa.timestamp("us"), "date": pa.date32(),
    }  # fmt: skip
    if sql_type in simple:
        return simple[sql_type]
    if (m := _NUMERIC.match(sql_type)) and int(m.group(1)) <= 38:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    if dimensions := vector_dimensions(sql_type):
        return pa.list_(pa.float32(), dimensions)
    return pa.string()


def _arrow_column(values: list[str | None], typ: Any, where: str) -> Any:
    """One column of a batch from PostgreSQL's text forms. Raises UsageError (exit 2) for a
    value the type cannot hold (an infinite time, a NaN numeric)."""
    import pyarrow as pa

    if pa.types.is_boolean(typ):
        return pa.array([None if v is None else v == "t" for v in values], typ)
    if pa.types.is_fixed_size_list(typ):  # pgvector's text is a JSON array
        return pa.array([None if v is None else json.loads(v) for v in values], typ)
    text = pa.array(values, pa.string())
    if pa.types.is_string(typ):
        return text
    try:
        return text.cast(typ)  # Arrow parses the text forms (times with their offset)
    except pa.ArrowInvalid:
        raise UsageError(
            f"{where} holds a value Parquet's {typ} cannot hold (an infinite time or a NaN "
            "numeric, say); nothing exported",
            hint="export this table as jsonl or csv, which keep PostgreSQL's text",
        ) from None


def _write_parquet(
    fh: BinaryIO, rows: Iterator[tuple[str | None, ...]], source: Source, digest: Any
) -> int:
    """Parquet in row groups of :data:`_PARQUET_BATCH` rows, typed by :func:`_arrow_type`
    (hashed columns are text). Returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = source.plan.exported
    n_kept = len(source.plan.kept)
    types = [
        _arrow_type(source.types.get(c, "text")) if i < n_kept else pa.string()
        for i, c in enumerate(columns)
    ]
    schema = pa.schema([pa.field(c, t) for c, t in zip(columns, types, strict=True)])

    def batch(buffer: list[tuple[str | None, ...]]) -> Any:
        arrays = []
        for i, (column, typ) in enumerate(zip(columns, types, strict=True)):
            values = [r[i] for r in buffer]
            if i >= n_kept:
                values = [digest(v) for v in values]
            arrays.append(_arrow_column(values, typ, f"{source.name}.{column}"))
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    counted = 0
    with pq.ParquetWriter(fh, schema) as writer:
        buffer: list[tuple[str | None, ...]] = []
        wrote = False
        for row in rows:
            counted += 1
            buffer.append(row)
            if len(buffer) >= _PARQUET_BATCH:
                writer.write_batch(batch(buffer))
                buffer, wrote = [], True
        if buffer or not wrote:
            writer.write_batch(batch(buffer))
    return counted


def require_pyarrow() -> None:
    """Raise UsageError (exit 2) with the install command when pyarrow is missing."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError(
            "--format parquet needs pyarrow, which is not installed",
            hint="pip install 'empire-ops[parquet]' (or pip install pyarrow)",
        ) from None


# -- the run ------------------------------------------------------------------------------------
@dataclass
class ExportReport(FindingsReport):
    """What an export wrote: the folder, the manifest and one result per file."""

    out: str
    format: str
    preset: str | None
    tables: list[TableResult]
    findings: list[Finding] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "manifest": str(Path(self.out) / MANIFEST_NAME),
            "format": self.format,
            "preset": self.preset,
            "tables": {t.name: {"file": t.file, "rows": t.rows, "bytes": t.bytes}
                       for t in self.tables},
        }  # fmt: skip


def pii_key(config: Config) -> bytes | None:
    """The PII key from the secrets chain, or None when it is not set.

    Raises SecretsError (exit 3) when it is set but shorter than 32 characters.
    The value is never shown.
    """
    from ops.secrets import load_secrets

    name = config.get("data.export.pii_key_secret")
    value = load_secrets(config).secrets.get(name) or ""
    if not value:
        return None
    if len(value) < MIN_KEY_LENGTH:
        raise SecretsError(
            f"the secret {name} is shorter than {MIN_KEY_LENGTH} characters; nothing exported",
            hint=f"set {name} to a random key, e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`",
        )
    return value.encode("utf-8")


# The temporary names _write_source gives files: a killed export leaves them behind.
_LEFTOVER = re.compile(r"^\..+\.(?:jsonl|csv|parquet)\.[^/]+\.tmp$")


def choose_out(out: Path | None, *, force: bool, now: datetime) -> Path:
    """The folder to write: ``out``, refused when it holds files (unless ``force``), or a new
    ``exports/<UTC time>`` folder (``-2``, ``-3``… when one started in the same second).

    With ``force``, the temporary files an interrupted export left (it writes
    ``manifest.json`` last, so a folder without one is incomplete) are removed.
    Raises UsageError / PathNotUsable (exit 2).
    """
    if out is None:
        return _new_folder(Path("exports") / now.strftime("%Y%m%dT%H%M%SZ"))
    if out.exists() and out.is_dir() and (entries := list(out.iterdir())):
        leftovers = [p for p in entries if _LEFTOVER.match(p.name) and p.is_file()]
        interrupted = bool(leftovers) and not (out / MANIFEST_NAME).exists()
        if not force:
            raise UsageError(
                f"the export folder {out} is not empty"
                + ("; it holds the temporary files of an interrupted export (no manifest.json)"
                   if interrupted else "")
                + "; nothing exported",
                hint="name a new folder with --out, or pass --force to write into it"
                + (" (which removes those files)" if interrupted else ""),
            )  # fmt: skip
        for leftover in leftovers:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
            log.info("export: removed %s, left by an interrupted export", leftover.name)
    ensure_dir(out, purpose="the export folder")
    if not os.access(out, os.W_OK | os.X_OK):
        raise _storage(PermissionError(13, "Permission denied", str(out)), "write", out)
    return out


def _new_folder(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``…: the first that did not exist, created here."""
    ensure_dir(base.parent, purpose="the exports folder")
    for n in range(1, 1000):
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise _storage(exc, "write", folder) from exc
        return folder
    raise UsageError(f"{base}: a thousand exports started in this second; nothing exported")


def _folder_lock(config: Config, folder: Path) -> contextlib.AbstractContextManager[None]:
    """One export at a time into a folder: a second one exits 5 (LockBusy) at once.

    The lock file lives in the state folder, not in the export's folder, whose
    files are only the export's.
    """
    from ops.fsutil import file_lock

    key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return file_lock(config.state_dir / "locks" / f"export-{key}.lock", timeout=0,
                     what=f"an export into {folder}")  # fmt: skip


def _schema_version(conn: db.Connection[Any]) -> str | None:
    rows = db.run_query(
        conn, "select to_regclass('supabase_migrations.schema_migrations') is not null as ok"
    )
    if not rows[0]["ok"]:
        return None
    rows = db.run_query(conn, "select max(version) as v from supabase_migrations.schema_migrations")
    return rows[0]["v"]


def select_sources(
    tables: Sequence[str], *, all_tables: bool, preset: str | None, policy: PiiPolicy,
    since: datetime | None,
) -> list[Source]:  # fmt: skip
    """The files to write, checked before any connection. Raises UsageError (exit 2)."""
    if preset is not None:
        if tables or all_tables:
            raise UsageError("--preset exports its own view: name no table and no --all")
        return [preset_source(preset, since)]
    if all_tables and tables:
        raise UsageError("name tables or pass --all, not both")
    if not all_tables and not tables:
        raise UsageError("name the tables to export, or pass --all (or --preset)")
    specs = (
        [s for s in load_tables().values() if s.schema != PRIVATE_SCHEMA]
        if all_tables
        else [find_table(t) for t in dict.fromkeys(tables)]
    )
    return [table_source(s, policy, since) for s in specs]


def export(
    connect: Callable[[], db.Connection[Any]],
    config: Config,
    tables: Sequence[str] = (),
    *,
    all_tables: bool = False,
    since: str | None = None,
    fmt: str = "jsonl",
    out: Path | None = None,
    preset: str | None = None,
    force: bool = False,
    key: Callable[[], bytes | None] = lambda: None,
) -> ExportReport:
    """Export ``tables`` (or every public table, or a preset) into ``out``; see the module.

    Everything the caller gave is checked before ``connect`` (which opens a
    connection, closed here) and ``key`` (which returns the PII key, see
    :func:`pii_key`) are called. Raises UsageError (exit 2) for a
    bad table, format, preset, time or folder, LockBusy (exit 5) when
    another export is writing the named folder, DatabaseError /
    DatabaseUnreachable as :func:`ops.db.run_query`, StorageError for a
    folder that cannot be written.
    """
    if fmt not in FORMATS:
        raise UsageError(f"no format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        require_pyarrow()
    when = parse_since(since)
    # The sources are checked once without the key (usage errors first), then planned with it.
    select_sources(tables, all_tables=all_tables, preset=preset,
                   policy=PiiPolicy.from_config(config, keyed=False), since=when)  # fmt: skip
    pii = key()
    policy = PiiPolicy.from_config(config, keyed=pii is not None)
    sources = select_sources(tables, all_tables=all_tables, preset=preset, policy=policy,
                             since=when)  # fmt: skip
    findings: list[Finding] = []
    if pii is None:
        unkeyed = {s.name: policy.would_hash(s.name, s.plan.dropped) for s in sources}
        unkeyed = {k: v for k, v in unkeyed.items() if v}
        if unkeyed:
            name = config.get("data.export.pii_key_secret")
            listed = "; ".join(f"{t}: {', '.join(c)}" for t, c in unkeyed.items())
            findings.append(F.warning(
                "EXPORT_PII_KEY_MISSING", name,
                f"{name} is not set, so the columns the policy hashes were dropped ({listed})",
                details={"dropped": unkeyed},
            ))  # fmt: skip
    started = datetime.now(UTC)
    # A new default folder is this run's alone; a named one may be another run's too.
    with _folder_lock(config, out) if out is not None else contextlib.nullcontext():
        folder = choose_out(out, force=force, now=started)
        return _export_into(folder, connect, config, sources, fmt, pii, when, preset, started,
                            findings)  # fmt: skip


def _export_into(
    folder: Path, connect: Callable[[], db.Connection[Any]], config: Config,
    sources: Sequence[Source], fmt: str, pii: bytes | None, when: datetime | None,
    preset: str | None, started: datetime, findings: list[Finding],
) -> ExportReport:  # fmt: skip
    """Write every source into ``folder``, then the manifest (see :func:`export`)."""
    results: list[TableResult] = []
    conn = connect()
    try:
        db.run_query(conn, "set transaction isolation level repeatable read, read only")
        db.run_query(conn, "set local statement_timeout = 0")  # a big table takes its time
        version = _schema_version(conn)
        for source in sources:
            results.append(_write_source(conn, source, fmt, folder, pii))
    finally:
        with contextlib.suppress(Exception):
            conn.rollback()  # read only: nothing to keep
        conn.close()
    finished = datetime.now(UTC)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "format": fmt,
        "preset": preset,
        "schema_version": version,
        "filters": {"since": when.isoformat()} if when else {},
        "pii": {
            "key_secret": config.get("data.export.pii_key_secret"),
            "keyed": pii is not None,
            "hash": "hmac-sha256" if pii is not None else None,
        },
        "started_at": started.isoformat(timespec="microseconds"),
        "finished_at": finished.isoformat(timespec="microseconds"),
        "tables": {r.name: _manifest_entry(r) for r in results},
    }
    atomic_write_bytes(
        folder / MANIFEST_NAME, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    )
    total = sum(r.rows for r in results)
    findings.insert(0, F.ok("EXPORT_OK", str(folder), f"exported {len(results)} file(s), "
                            f"{total} rows, to {folder}"))  # fmt: skip
    return ExportReport(str(folder), fmt, preset, results, findings)


def _manifest_entry(r: TableResult) -> dict[str, Any]:
    return {
        "file": r.file, "rows": r.rows, "bytes": r.bytes, "sha256": r.sha256,
        "columns": r.columns, "hashed": r.hashed, "dropped": r.dropped, "filters": r.filters,
    }  # fmt: skip
