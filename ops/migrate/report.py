"""The shape every migrate report shares: a target, findings, an exit code, stable JSON."""

from __future__ import annotations

from dataclasses import dataclass

from ops import findings as F
from ops.findings import Finding


@dataclass
class FindingsReport(F.FindingsReport):
    """A report of findings about one target. Subclasses add fields to the JSON via ``extra``."""

    target: str
    findings: list[Finding]

    def to_json(self) -> str:
        """``{ok, exit_code, worst, summary, findings, target, ...extra}``."""
        return F.to_json(self.findings, target=self.target, **self.extra())
