"""The Empire's tables as the data service sees them, read from the committed schema manifest.

The manifest (``ops/migrate/expected_schema.json``, made by ``migrate
snapshot``) already describes every table the migrations create: columns
with their types, nullability and defaults, the primary key, unique
constraints and check constraints. :func:`load_tables` turns it into
:class:`TableSpec` values; nothing here touches the database. The checks a
value can be held to before any write (a column's type, a check
constraint's set of values, its pattern, its lower bound, a vector's
dimensions, a varchar's length) are read from the same text PostgreSQL will
enforce, so the service's validation and the database's agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

# CHECK ((status = ANY (ARRAY['draft'::text, 'active'::text])))
_CHOICES = re.compile(r"^CHECK \(\(\(?\"?(\w+)\"?\)?(?:::text)? = ANY \(ARRAY\[(.*)\]\)\)\)$")
_CHOICE = re.compile(r"'((?:[^']|'')*)'::[\w ]+")
# CHECK ((currency ~ '^[A-Z]{3}$'::text))
_PATTERN = re.compile(r"^CHECK \(\(\"?(\w+)\"? ~ '((?:[^']|'')*)'::text\)\)$")
# CHECK ((version >= 1)), CHECK ((weight >= (0)::numeric)), CHECK (((x IS NULL) OR (x >= 0)))
_MINIMUM = re.compile(
    r"^CHECK \(\((?:\(\"?(?P<n>\w+)\"? IS NULL\) OR \()?\"?(?P<col>\w+)\"? >= \(?(?P<v>-?[\d.]+)\)?"
    r"(?:::numeric)?\)?\)\)$"
)
_VECTOR = re.compile(r"^(?:extensions\.)?vector\((\d+)\)$")
_LENGTH = re.compile(r"^(?:character varying|character)\((\d+)\)$")
_KEY = re.compile(r"^(?:PRIMARY KEY|UNIQUE) \((.*)\)$")


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its SQL type, whether it may be NULL or omitted, and what it may hold."""

    name: str
    type: str
    not_null: bool
    default: str | None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    minimum: float | None = None

    @property
    def required(self) -> bool:
        """An insert must give it: NOT NULL and no default."""
        return self.not_null and self.default is None

    @property
    def dimensions(self) -> int | None:
        """A pgvector column's dimensions."""
        return vector_dimensions(self.type)

    @property
    def max_length(self) -> int | None:
        """A ``varchar(n)`` or ``character(n)`` column's length."""
        m = _LENGTH.match(self.type)
        return int(m.group(1)) if m else None


def vector_dimensions(sql_type: str) -> int | None:
    """The dimensions of a pgvector type (``extensions.vector(1536)``), else None."""
    m = _VECTOR.match(sql_type)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class TableSpec:
    """One table of the Empire schema."""

    schema: str
    name: str
    columns: dict[str, ColumnSpec]
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, ...], ...] = ()
    partition_of: str | None = None
    checks: tuple[str, ...] = field(default=(), repr=False)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def is_unique_key(self, columns: tuple[str, ...]) -> bool:
        """Whether ``columns`` (in any order) are the primary key or a declared unique key."""
        wanted = set(columns)
        return any(set(k) == wanted for k in (self.primary_key, *self.unique_keys))


def _key_columns(definition: str) -> tuple[str, ...]:
    m = _KEY.match(definition)
    return tuple(c.strip().strip('"') for c in m.group(1).split(",")) if m else ()


def table_spec(qualified: str, data: dict[str, Any]) -> TableSpec:
    """A :class:`TableSpec` from one table of the manifest."""
    choices: dict[str, tuple[str, ...]] = {}
    patterns: dict[str, str] = {}
    minimums: dict[str, float] = {}
    primary: tuple[str, ...] = ()
    unique: list[tuple[str, ...]] = []
    checks = []
    for con in (data.get("constraints") or {}).values():
        definition = con["definition"]
        if con["type"] == "primary key":
            primary = _key_columns(definition)
        elif con["type"] == "unique":
            unique.append(_key_columns(definition))
        elif con["type"] == "check":
            checks.append(definition)
            if m := _CHOICES.match(definition):
                values = tuple(v.replace("''", "'") for v in _CHOICE.findall(m.group(2)))
                choices[m.group(1)] = values
            elif m := _PATTERN.match(definition):
                patterns[m.group(1)] = m.group(2).replace("''", "'")
            elif (m := _MINIMUM.match(definition)) and m.group("n") in (None, m.group("col")):
                minimums[m.group("col")] = float(m.group("v"))
    columns = {
        name: ColumnSpec(
            name, col["type"], bool(col["not_null"]), col.get("default"),
            choices.get(name, ()), patterns.get(name), minimums.get(name),
        )
        for name, col in (data.get("columns") or {}).items()
    }  # fmt: skip
    schema, _, name = qualified.partition(".")
    return TableSpec(
        schema, name, columns, primary, tuple(unique),
        partition_of=data.get("partition_of"), checks=tuple(checks),
    )  # fmt: skip


@cache
def load_tables() -> dict[str, TableSpec]:
    """Every table of the committed manifest by qualified name (``public.users``).

    Partitions (``analytics_events_default``) are left out: the service reads
    and writes their parent. Raises ManifestError when the manifest cannot be
    read.
    """
    from ops.migrate.manifest import load_manifest

    tables = load_manifest()["tables"]
    return {
        name: table_spec(name, data)
        for name, data in tables.items()
        if not data.get("partition_of")
    }


def find_table(name: str) -> TableSpec:
    """The table called ``name`` (``users`` means ``public.users``).

    Raises UsageError naming the close matches when there is none.
    """
    import difflib

    from ops.errors import UsageError

    tables = load_tables()
    qualified = name if "." in name else f"public.{name}"
    if qualified in tables:
        return tables[qualified]
    close = difflib.get_close_matches(qualified, list(tables), n=3)
    raise UsageError(
        f"no table {name!r} in the Empire schema"
        + (f" (did you mean {', '.join(close)}?)" if close else ""),
        hint="the tables are the schema manifest's: `empire-ops migrate check` lists them",
    )
