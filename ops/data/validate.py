"""Validation of a row before any write: every bad field named at once, nothing written.

:func:`check_row` holds a row (a mapping of column → value) to its table's
:class:`~ops.data.model.TableSpec`: unknown fields, missing required ones
(on insert), NULL in a NOT NULL column, a value of the wrong type, a value
outside a check constraint's set, pattern or lower bound, text over
``max_text`` characters (or a ``varchar(n)``'s n), a vector of the wrong
dimensions. Messages name the field and what is wrong, never the value
(a value may be personal data or a secret).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ops.data.model import ColumnSpec, TableSpec

_INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}
_NUMERIC = re.compile(r"^numeric(?:\((\d+),(\d+)\))?$")
DEFAULT_MAX_TEXT = 1_000_000


def check_row(
    table: TableSpec,
    row: Mapping[str, Any],
    *,
    insert: bool,
    max_text: int = DEFAULT_MAX_TEXT,
) -> dict[str, str]:
    """Field → what is wrong with it, for every bad field of ``row`` (empty: the row is good).

    ``insert`` also requires every required column (NOT NULL, no default);
    an update checks only the fields it sets.
    """
    problems: dict[str, str] = {}
    for name, value in row.items():
        column = table.columns.get(name)
        if column is None:
            problems[name] = f"{table.qualified} has no column {name!r}"
            continue
        problem = check_value(column, value, max_text=max_text)
        if problem:
            problems[name] = problem
    if insert:
        for column in table.columns.values():
            if column.required and column.name not in row:
                problems[column.name] = "is required (NOT NULL, no default)"
    return problems


def check_value(column: ColumnSpec, value: Any, *, max_text: int = DEFAULT_MAX_TEXT) -> str:
    """What is wrong with ``value`` for ``column`` ("" when nothing is)."""
    if value is None:
        return "may not be NULL" if column.not_null else ""
    kind = column.type
    problem = _type_problem(kind, column, value, max_text)
    if problem:
        return problem
    if column.choices and value not in column.choices:
        return f"must be one of {', '.join(column.choices)}"
    if column.pattern and isinstance(value, str) and not re.search(column.pattern, value):
        return f"does not match the pattern {column.pattern}"
    number = isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if column.minimum is not None and number and value < column.minimum:
        return f"must be at least {column.minimum:g}"
    return ""


def _type_problem(kind: str, column: ColumnSpec, value: Any, max_text: int) -> str:
    if kind in ("text", "character varying") or column.max_length is not None:
        if not isinstance(value, str):
            return f"must be text ({kind}), not {type(value).__name__}"
        limit = column.max_length or max_text
        if len(value) > limit:
            return f"is {len(value)} characters long, over the limit of {limit}"
        if "\x00" in value:
            return "holds a NUL character, which PostgreSQL text cannot store"
        return ""
    if kind in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer ({kind}), not {type(value).__name__}"
        bound = _INT_RANGES[kind]
        return "" if -bound <= value < bound else f"is out of range for {kind}"
    if kind in ("double precision", "real") or _NUMERIC.match(kind):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            return f"must be a number ({kind}), not {type(value).__name__}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        return _numeric_precision(kind, value)
    if kind == "boolean":
        ok = isinstance(value, bool)
        return "" if ok else f"must be true or false, not {type(value).__name__}"
    if kind == "uuid":
        return "" if _is_uuid(value) else "must be a UUID"
    if kind in ("jsonb", "json"):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return "must be JSON (objects, arrays, strings, finite numbers, booleans, null)"
        return ""
    if kind.startswith("timestamp"):
        return "" if _is_time(value, datetime) else "must be a date and time (ISO 8601)"
    if kind == "date":
        return "" if _is_time(value, date) else "must be a date (YYYY-MM-DD)"
    if kind == "inet":
        return "" if _is_inet(value) else "must be an IP address"
    if kind.endswith("[]"):
        if not isinstance(value, list | tuple):
            return f"must be a list ({kind})"
        inner = ColumnSpec(column.name, kind[:-2], False, None)
        bad = [i for i, v in enumerate(value) if _type_problem(inner.type, inner, v, max_text)]
        return f"items {bad[:5]} are not {kind[:-2]}" if bad else ""
    if column.dimensions is not None:
        return _vector_problem(column.dimensions, value)
    return ""  # another type: PostgreSQL is the judge


def _numeric_precision(kind: str, value: Any) -> str:
    m = _NUMERIC.match(kind)
    if not m or not m.group(1):
        return ""
    precision, scale = int(m.group(1)), int(m.group(2))
    try:
        digits = Decimal(str(value)).quantize(Decimal(1).scaleb(-scale))
    except InvalidOperation:
        return f"does not fit {kind}"
    whole = len(digits.as_tuple().digits) - scale
    return "" if whole <= precision - scale else f"does not fit {kind}"


def _vector_problem(dimensions: int, value: Any) -> str:
    if isinstance(value, str):  # pgvector's text form, as a read returns it: "[0.1,0.2]"
        try:
            value = json.loads(value)
        except ValueError:
            return f"must be a list of {dimensions} finite numbers (a vector)"
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        return f"must be a list of {dimensions} finite numbers (a vector)"
    if len(value) != dimensions:
        return f"has {len(value)} dimensions, the column has {dimensions}"
    return ""


def _is_uuid(value: Any) -> bool:
    if isinstance(value, uuid.UUID):
        return True
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _is_time(value: Any, kind: type) -> bool:
    if isinstance(value, kind):
        return True
    if not isinstance(value, str):
        return False
    try:
        (datetime if kind is datetime else date).fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_inet(value: Any) -> bool:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return True
    try:
        ipaddress.ip_interface(str(value))
    except ValueError:
        return False
    return isinstance(value, str)
