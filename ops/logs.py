"""Logging: human lines on a terminal, JSON lines for machines, and redaction.

The redaction filter is the last line of defence of "never print a secret
value": the secrets loader registers every loaded value with
:func:`register_secret_values` (and takes back, with
:func:`forget_public_values`, the values of entries declared not secret), and
every log record, exception text and CLI error message passes through
:func:`redact`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

REDACTED = "[REDACTED]"
# Values shorter than this are not redacted: they would blank ordinary words,
# and the blanks would give the value away. The spec flags them as weak
# (SECRETS_WEAK); see docs/decisions/0004.
MIN_REDACT_LENGTH = 8
# Values that occur in ordinary output (a DSN's user, a version string, a
# word of a message): redacting them garbles that output and reveals them.
# Compared case-insensitively. Like the short ones, they are flagged as weak.
COMMON_VALUES = frozenset(
    {
        "postgres", "postgresql", "supabase", "password", "passw0rd", "p@ssw0rd", "password1",
        "admin", "administrator", "root", "secret", "changeme", "default", "letmein",
        "welcome", "welcome1", "qwerty", "qwertyuiop", "iloveyou", "sunshine", "football",
        "superuser", "localhost", "production", "development", "staging", "example",
        "service_role", "authenticated", "anonymous", "12345678", "123456789",
        "1234567890", "00000000", "11111111", "abcdefgh", "trustno1", "database",
    }
)  # fmt: skip

_lock = threading.Lock()
_values: set[str] = set()
_pattern: re.Pattern[str] | None = None


def is_redactable(value: str) -> bool:
    """True when ``value`` can be redacted without garbling ordinary output.

    False for values shorter than :data:`MIN_REDACT_LENGTH` and for
    :data:`COMMON_VALUES`: such a value is *weak*, and output must keep it out
    by construction (messages are built from names and fingerprints), not by
    redaction.
    """
    return len(value) >= MIN_REDACT_LENGTH and value.strip().lower() not in COMMON_VALUES


def is_weak_secret(value: str) -> bool:
    """True when ``value``, or for a PostgreSQL URL its password, is not :func:`is_redactable`.

    A weak value gets no fingerprint either: eight hex characters of the hash
    of a common word are one dictionary lookup away from the word.
    """
    if not isinstance(value, str) or not value.startswith(("postgres://", "postgresql://")):
        return not is_redactable(value)
    parts = _secret_parts(value)
    return any(not is_redactable(p) for p in parts if p != value)


def register_secret_values(values: Iterable[str]) -> None:
    """Redact these values from all output from now on (those :func:`is_redactable`)."""
    with _lock:
        for value in (part for v in values for part in _secret_parts(v)):
            if isinstance(value, str) and is_redactable(value):
                _values.add(value)
                # A multi-line value may be printed one line at a time.
                for line in value.splitlines():
                    if is_redactable(line):
                        _values.add(line)
        _compile()


def forget_public_values(public: Iterable[str], keep: Iterable[str]) -> None:
    """Stop redacting ``public`` values, except those that are, or are part of, a ``keep`` value.

    ``public`` are the values of spec entries declared ``secret = false`` (a
    host name, an address), registered like every loaded value; ``keep`` are
    the other values known to be secret. A value that is both (one string
    under a public and a secret name) stays redacted, and so does a public
    value found inside a secret (inside what is registered of it: a DSN with a
    password whole and its password, a DSN without one not at all). Every
    other registered value is left as it is.
    """
    # Why this cannot un-redact a secret. The pattern is one alternation,
    # longest first, scanned left to right: wherever a secret S begins in the
    # text, S is tried before any shorter value and replaced whole, whether or
    # not a public value P lies inside it. Taking P out of the alternation only
    # removes P's own matches; S still matches at its start. (Where P's tail
    # overlaps S's head in the text, P matched first and ate S's head, leaving
    # the rest of S in clear: forgetting P lets S match there, so it helps.)
    # What longest-first cannot cover is a secret printed cut (a truncated or
    # wrapped line): S no longer matches whole, and its pieces are hidden only
    # if they are registered themselves. So a P that is part of a secret is
    # kept, and the set never loses a piece of a secret.
    keep_parts = [part for v in keep for part in _secret_parts(v) if isinstance(part, str)]
    with _lock:
        for value in (part for v in public for part in _secret_parts(v)):
            if not isinstance(value, str):
                continue
            # The value and the lines register_secret_values added for it.
            for form in (value, *value.splitlines()):
                if not any(form in secret for secret in keep_parts):
                    _values.discard(form)
        _compile()


def _compile() -> None:
    """Rebuild the pattern from :data:`_values` (call with :data:`_lock` held)."""
    global _pattern
    if not _values:
        _pattern = None
        return
    # Longest first, so a value that contains another is replaced whole.
    ordered = sorted(_values, key=len, reverse=True)
    _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def _secret_parts(value: str) -> list[str]:
    """What of ``value`` is secret: a PostgreSQL URL's password, else the whole value.

    A DSN's host, port, user and database are shown (masked) in every report;
    only its password is secret, and a DSN without one carries no secret. The
    DSN is read by :func:`ops.db.dsn_secret_parts` (libpq's parser, imported
    only when a DSN is registered).
    """
    if not isinstance(value, str) or not value.startswith(("postgres://", "postgresql://")):
        return [value]
    from ops.db import dsn_secret_parts

    return dsn_secret_parts(value)


def clear_secret_values() -> None:
    """Forget every registered value (tests use this between cases)."""
    global _pattern
    with _lock:
        _values.clear()
        _pattern = None


def redact(text: str) -> str:
    """``text`` with every registered secret value replaced by ``[REDACTED]``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


def redact_data(data: Any) -> Any:
    """A JSON-ready copy of ``data`` with every string in it (keys too) through :func:`redact`.

    Dicts, lists, tuples and sets are walked; ``None``, booleans and numbers
    are kept; anything else (a Path, a datetime) becomes its redacted ``str``.
    Serialise the result, never redact serialised text: a value holding a
    quote, a newline or non-ASCII is escaped by ``json.dumps`` and would no
    longer match.
    """
    if isinstance(data, str):
        return redact(data)
    if data is None or isinstance(data, bool | int | float):
        return data
    if isinstance(data, dict):
        return {redact(str(k)): redact_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple | set | frozenset):
        return [redact_data(v) for v in data]
    return redact(str(data))


class RedactingFilter(logging.Filter):
    """Rewrites each record's final message (and exception text) through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (and exc when present)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_text:
            payload["exc"] = record.exc_text
        elif record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False)


# --log-format, $EMPIRE_OPS_LOG_FORMAT and [logging] format take these.
LOG_FORMATS = ("auto", "text", "plain", "json")


class PlainFormatter(logging.Formatter):
    """``2026-01-31T02:00:00.123Z INFO ops.secrets: message``: one line, UTC, for cron and pipes."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


# The logger trees of empire-ops's own code (the top-level packages).
OWN_LOGGERS = ("ops", "dashboards")


def setup_logging(level: str = "info", fmt: str = "auto", file: str | None = None) -> None:
    """Configure our logger trees (:data:`OWN_LOGGERS`): stderr (text, plain or JSON) plus an
    optional file.

    ``fmt`` is one of :data:`LOG_FORMATS`: ``text`` is short lines for a
    terminal, ``plain`` timestamped lines for cron and pipes, ``json`` one
    object per line, ``auto`` text on a terminal and plain otherwise. The file,
    when given, gets JSON lines. Idempotent: calling again replaces the
    handlers it installed. Raises ValueError for another format.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    roots = [logging.getLogger(name) for name in OWN_LOGGERS]
    for root in roots:
        for handler in list(root.handlers):
            if getattr(handler, "_empire_ops", False):
                root.removeHandler(handler)
        root.setLevel(getattr(logging, level.upper(), logging.INFO))
        root.propagate = False
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "plain"
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    elif fmt == "text":
        formatter = logging.Formatter("%(levelname).1s %(message)s")
    else:
        formatter = PlainFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file:
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter if handler is handlers[0] else JsonFormatter())
        handler.addFilter(RedactingFilter())
        handler._empire_ops = True  # type: ignore[attr-defined]
        for root in roots:
            root.addHandler(handler)
