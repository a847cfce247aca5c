"""Findings: the one result type of every check.

A :class:`Finding` has a stable ``code`` (``SECRETS_MISSING``, ``DB_UNREACHABLE``),
a :class:`Severity`, a ``subject`` (which secret, table or backup), a message that
never contains a secret value, and the runbook that fixes it. Preflight turns
findings into an exit code, the alerter into e-mails, the dashboard into rows.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from ops.errors import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SECRETS,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)

# The version of the ``--json`` envelope (docs/json.md). Bump it when a key of
# the envelope changes meaning or goes away; adding keys under ``data`` does not.
SCHEMA_VERSION = 1
ENVELOPE_KEYS = ("schema_version", "ok", "exit_code", "findings", "data")


class Severity(IntEnum):
    """How bad a finding is; ordered, so ``max()`` gives the worst."""

    OK = 0
    INFO = 1
    WARNING = 2
    ERROR = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Return the severity named ``text`` (case-insensitive); raise ValueError."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            known = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (known: {known})") from None


# Which exit code an error-level finding maps to, by the most specific first.
# Findings that name none fall back to EXIT_FAILED. Busy (5) comes after the
# causes a user must fix (2, 3, 4): waiting for the other run would not help
# them, while a retry after a busy answer is only worth it once they are fixed.
_EXIT_PRIORITY = (EXIT_USAGE, EXIT_SECRETS, EXIT_UNREACHABLE, EXIT_BUSY, EXIT_FAILED)


def runbook_for(code: str) -> str:
    """The runbook of a finding code: ``runbooks/<CODE>.md``, relative to the runbooks' root.

    Every finding of warning severity or worse names it, so one function
    decides where runbooks are (the docs test checks each exists).
    """
    return f"runbooks/{code}.md"


@dataclass(frozen=True)
class Finding:
    """One named result of a check. ``message`` must never hold a secret value.

    ``runbook`` defaults to :func:`runbook_for` of the code for a warning or
    worse (ok and info findings need no fixing, so they name none).
    """

    code: str
    severity: Severity
    subject: str
    message: str
    runbook: str | None = None
    exit_code: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.runbook is None and self.severity >= Severity.WARNING:
            object.__setattr__(self, "runbook", runbook_for(self.code))

    @property
    def is_problem(self) -> bool:
        return self.severity >= Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.label
        data["exit_code"] = self.effective_exit_code
        return data

    @property
    def effective_exit_code(self) -> int:
        if not self.is_problem:
            return EXIT_OK
        return self.exit_code if self.exit_code is not None else EXIT_FAILED


def ok(code: str, subject: str, message: str, **kw: Any) -> Finding:
    return Finding(code, Severity.OK, subject, message, **kw)


def info(code: str, subject: str, message: str, **kw: Any) -> Finding:
    return Finding(code, Severity.INFO, subject, message, **kw)


def warning(code: str, subject: str, message: str, **kw: Any) -> Finding:
    return Finding(code, Severity.WARNING, subject, message, **kw)


def error(code: str, subject: str, message: str, **kw: Any) -> Finding:
    return Finding(code, Severity.ERROR, subject, message, **kw)


def critical(code: str, subject: str, message: str, **kw: Any) -> Finding:
    return Finding(code, Severity.CRITICAL, subject, message, **kw)


def worst(findings: Iterable[Finding]) -> Severity:
    """The highest severity among ``findings`` (``OK`` when there are none)."""
    return max((f.severity for f in findings), default=Severity.OK)


def exit_code_for(findings: Iterable[Finding]) -> int:
    """0 unless a finding is an error or worse; then the most specific exit code.

    Specific means: a configuration gap (2) explains more than a missing secret
    (3), which explains more than an unreachable service (4), which explains
    more than another run holding the lock (5), which explains more than a
    generic failure (1).
    """
    codes = {f.effective_exit_code for f in findings if f.is_problem}
    if not codes:
        return EXIT_OK
    for code in _EXIT_PRIORITY:
        if code in codes:
            return code
    return min(codes)


class FindingsReport:
    """Mixin for a report that holds ``findings``: its exit code and its ``--json`` envelope.

    Subclasses (usually dataclasses) add their keys to the envelope's ``data``
    by overriding :meth:`extra`; ``data`` always holds ``worst`` and ``summary``
    too. The envelope is the same everywhere: see :func:`envelope`.
    """

    if TYPE_CHECKING:  # a field of the subclass, or a property computing them

        @property
        def findings(self) -> list[Finding]: ...

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.findings)

    def extra(self) -> dict[str, Any]:
        """Report-specific keys of the envelope's ``data`` (none by default)."""
        return {}

    def json_data(self) -> dict[str, Any]:
        """The envelope's ``data``: ``worst``, ``summary`` and :meth:`extra`."""
        return {"worst": worst(self.findings).label, "summary": summary(self.findings)} | (
            self.extra()
        )

    def envelope(self) -> dict[str, Any]:
        """The ``--json`` envelope of this report (not yet redacted)."""
        return envelope(self.findings, self.json_data(), exit_code=self.exit_code)

    def to_json(self) -> str:
        """The envelope as redacted JSON text (see :func:`dumps`)."""
        return dumps(self.envelope())


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    """Counts per severity label, every label present."""
    counts = {s.label: 0 for s in Severity}
    for f in findings:
        counts[f.severity.label] += 1
    return counts


def envelope(
    findings: Sequence[Finding] = (),
    data: Mapping[str, Any] | None = None,
    *,
    exit_code: int | None = None,
) -> dict[str, Any]:
    """The one ``--json`` shape: ``{schema_version, ok, exit_code, findings, data}``.

    ``exit_code`` is the code the command exits with; it defaults to
    :func:`exit_code_for` the findings (commands without findings pass their
    own). ``ok`` is true exactly when it is 0. ``data`` holds what is specific
    to the command. Documented in docs/json.md.
    """
    code = exit_code_for(findings) if exit_code is None else exit_code
    return {
        "schema_version": SCHEMA_VERSION,
        "ok": code == EXIT_OK,
        "exit_code": code,
        "findings": [f.to_dict() for f in findings],
        "data": dict(data or {}),
    }


def is_envelope(payload: Any) -> bool:
    """True when ``payload`` is a dict with exactly the envelope's keys."""
    return isinstance(payload, dict) and set(payload) == set(ENVELOPE_KEYS)


def dumps(payload: Any) -> str:
    """``payload`` as JSON text, every string in it redacted *before* serialising.

    Redacting the structure (not the text) is what keeps a secret holding a
    quote, a newline or non-ASCII from slipping through as its JSON escape.
    """
    from ops.logs import redact_data

    return json.dumps(redact_data(payload), indent=2)


def to_json(
    findings: Sequence[Finding] = (),
    data: Mapping[str, Any] | None = None,
    *,
    exit_code: int | None = None,
) -> str:
    """:func:`envelope` as redacted JSON text: what every ``--json`` prints."""
    return dumps(envelope(findings, data, exit_code=exit_code))


_COLOURS = {
    Severity.OK: "\033[32m",
    Severity.INFO: "\033[36m",
    Severity.WARNING: "\033[33m",
    Severity.ERROR: "\033[31m",
    Severity.CRITICAL: "\033[1;31m",
}


def render_table(findings: Sequence[Finding], *, colour: bool = False) -> str:
    """A terminal table, one finding a line, wrapped to the terminal width."""
    if not findings:
        return "no findings"
    width = shutil.get_terminal_size((120, 20)).columns
    sev_w = max(len(f.severity.label) for f in findings)
    code_w = max(len(f.code) for f in findings)
    subj_w = min(32, max(len(f.subject) for f in findings))
    lines = []
    for f in findings:
        sev = f.severity.label.ljust(sev_w)
        if colour:
            sev = f"{_COLOURS[f.severity]}{sev}\033[0m"
        subject = f.subject if len(f.subject) <= subj_w else f.subject[: subj_w - 1] + "…"
        head = f"{sev}  {f.code.ljust(code_w)}  {subject.ljust(subj_w)}  "
        room = max(30, width - sev_w - code_w - subj_w - 6)
        msg = f.message
        if f.runbook and f.is_problem:
            msg += f" (runbook: {f.runbook})"
        wrapped = textwrap.wrap(msg, room, break_on_hyphens=False) or [""]
        pad = " " * (sev_w + code_w + subj_w + 6)
        lines.append(head + wrapped[0])
        lines.extend(pad + rest for rest in wrapped[1:])
    return "\n".join(lines)
