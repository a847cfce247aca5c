"""The shape every migrate report shares: a target, findings, an exit code, stable JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ops import findings as F
from ops.findings import Finding


@dataclass
class FindingsReport(F.FindingsReport):
    """A report of findings about one target. Subclasses add fields to the JSON via ``extra``."""

    target: str
    findings: list[Finding]

    def json_data(self) -> dict[str, Any]:
        """The envelope's ``data``: ``target``, then ``worst``, ``summary`` and ``extra``."""
        return {"target": self.target, **super().json_data()}
