"""The names-only provenance report of `empire-ops secrets status`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ops import findings as F

if TYPE_CHECKING:
    from ops.config import Config
    from ops.secrets.merge import LoadResult


@dataclass
class SecretsStatus(F.FindingsReport):
    """Where each secret came from and how it checked, by name; never a value.

    Each row of ``secrets`` holds name, status (ok, warning, invalid, missing,
    unset), required, kind, source, detail and fingerprint; ``sources`` lists
    the sources consulted, in precedence order.
    """

    env: str
    sources: list[dict[str, Any]]
    secrets: list[dict[str, Any]]
    findings: list[F.Finding]

    def extra(self) -> dict[str, Any]:
        return {"env": self.env, "sources": self.sources, "secrets": self.secrets}


def status_report(loaded: LoadResult, config: Config) -> SecretsStatus:
    """The status of every declared secret and every other loaded name, in a stable order."""
    worst: dict[str, F.Severity] = {}
    for f in loaded.findings:
        worst[f.subject] = max(worst.get(f.subject, F.Severity.OK), f.severity)
    rows: list[dict[str, Any]] = []
    names = list(loaded.spec.entries) + sorted(
        n for n in loaded.secrets if n not in loaded.spec.entries
    )
    for name in names:
        entry = loaded.spec.entries.get(name)
        required = bool(entry and entry.required_in(config.env))
        meta = loaded.secrets.provenance(name).meta() if name in loaded.secrets else {}
        sev = worst.get(name, F.Severity.OK)
        if not meta:
            state = "missing" if required else "unset"
        elif sev >= F.Severity.ERROR:
            state = "invalid"
        else:
            state = "warning" if sev == F.Severity.WARNING else "ok"
        rows.append(
            {
                "name": name,
                "status": state,
                "required": required,
                "kind": entry.kind if entry else "",
                "source": meta.get("source", ""),
                "detail": meta.get("detail", ""),
                "fingerprint": meta.get("fingerprint", ""),
            }
        )
    return SecretsStatus(
        env=config.env,
        sources=[s.to_dict() for s in loaded.sources],
        secrets=rows,
        findings=list(loaded.findings),
    )


def render_status(report: SecretsStatus, *, colour: bool = False) -> str:
    """The terminal table: sources consulted in order, one line per secret, then problems."""
    lines = [f"secrets ({report.env}); sources in precedence order:"]
    for i, s in enumerate(report.sources, 1):
        note = f" - {s['note']}" if s["note"] else ""
        lines.append(
            f"  {i}. {s['name']:<8} {s['status']:<12} {s['count']:>3} names  {s['where']}{note}"
        )
    lines.append("")
    headers = ("NAME", "STATUS", "REQ", "SOURCE", "DETAIL", "FINGERPRINT")
    table = [headers] + [
        (r["name"], r["status"], "yes" if r["required"] else "no", r["source"] or "-",
         r["detail"] or "-", r["fingerprint"] or "-")
        for r in report.secrets
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
    for row in table:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    problems = [f for f in report.findings if f.severity >= F.Severity.WARNING]
    if problems:
        lines += ["", F.render_table(problems, colour=colour)]
    return "\n".join(lines)
