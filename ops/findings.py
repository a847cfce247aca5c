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
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any

from ops.errors import EXIT_FAILED, EXIT_OK, EXIT_SECRETS, EXIT_UNREACHABLE, EXIT_USAGE


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
# Findings that name none fall back to EXIT_FAILED.
_EXIT_PRIORITY = (EXIT_USAGE, EXIT_SECRETS, EXIT_UNREACHABLE, EXIT_FAILED)


@dataclass(frozen=True)
class Finding:
    """One named result of a check. ``message`` must never hold a secret value."""

    code: str
    severity: Severity
    subject: str
    message: str
    runbook: str | None = None
    exit_code: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

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
    more than a generic failure (1).
    """
    codes = {f.effective_exit_code for f in findings if f.is_problem}
    if not codes:
        return EXIT_OK
    for code in _EXIT_PRIORITY:
        if code in codes:
            return code
    return min(codes)


class FindingsReport:
    """Mixin for a report that holds ``findings``: its exit code and stable ``--json``.

    Subclasses (usually dataclasses) add their own keys to the JSON by
    overriding :meth:`extra`; the shape is ``{ok, exit_code, worst, summary,
    findings, ...extra}`` everywhere.
    """

    findings: list[Finding]

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.findings)

    def extra(self) -> dict[str, Any]:
        """Keys added to the JSON beside ``findings`` (none by default)."""
        return {}

    def to_json(self) -> str:
        return to_json(self.findings, **self.extra())


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    """Counts per severity label, every label present."""
    counts = {s.label: 0 for s in Severity}
    for f in findings:
        counts[f.severity.label] += 1
    return counts


def to_json(findings: Sequence[Finding], **extra: Any) -> str:
    """The stable ``--json`` shape: ``{ok, exit_code, summary, findings, ...extra}``."""
    payload: dict[str, Any] = {
        "ok": exit_code_for(findings) == EXIT_OK,
        "exit_code": exit_code_for(findings),
        "worst": worst(findings).label,
        "summary": summary(findings),
        "findings": [f.to_dict() for f in findings],
    }
    payload.update(extra)
    return json.dumps(payload, indent=2, sort_keys=False, default=str)


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
