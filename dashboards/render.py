"""Render a :class:`~dashboards.collect.HealthSnapshot` as one self-contained HTML page.

The page needs nothing but itself: CSS inline, charts drawn at build time as
inline SVG, no script, no font, no image, no request. Jinja2 autoescapes
every value (a table may be named ``<script>``); chart geometry is computed
here as numbers only, and every label is text the template escapes. Colours
always come with words (``warning``, ``failed``), so the page reads in grey.

:func:`build_dashboard` writes ``db-health.html`` and ``db-health.json``
side by side, each atomically.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops import findings as F

if TYPE_CHECKING:
    from dashboards.collect import HealthSnapshot
    from ops.config import Config

HTML_NAME = "db-health.html"
JSON_NAME = "db-health.json"
_TEMPLATES = Path(__file__).resolve().parent / "templates"
_CHART_W, _CHART_H, _PAD = 320, 120, 4


@dataclass
class Chart:
    """A line chart's geometry (SVG coordinates) and its labels; empty when fewer than 2 points."""

    title: str
    points: str  # "x,y x,y …" for a polyline
    first: str
    last: str
    low: str
    high: str
    count: int
    since: str = ""  # the first point's time
    until: str = ""  # the last point's time
    target_y: float | None = None  # a dashed line (the RTO target) when inside the box
    target: str = ""


@dataclass
class Bars:
    """A horizontal bar chart: (label, width in %, value text) rows."""

    title: str
    rows: list[tuple[str, float, str]]


def human_bytes(value: Any) -> str:
    """``1.5 MB`` (decimal units); ``-`` for none."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} PB"  # pragma: no cover (the loop returns at TB)


def human_seconds(value: Any) -> str:
    """``0.4 s``, ``12 s``, ``5m``, ``3.5h``, ``2.0 d``; ``-`` for none."""
    from ops.config import format_duration

    if value is None:
        return "-"
    seconds = float(value)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds >= 172800:
        return f"{seconds / 86400:.1f} d"
    return format_duration(seconds)


def human_count(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"


def percent(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2%}"


def short_time(value: Any) -> str:
    """An ISO time or epoch seconds as ``2026-12-07 13:05 UTC``; ``-`` for none."""
    if value in (None, ""):
        return "-"
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(float(value), UTC)
    else:
        moment = datetime.fromisoformat(str(value))
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def line_chart(
    title: str, values: list[tuple[float, float]], fmt: Any, target: float | None = None
) -> Chart:
    """A polyline of (time, value) pairs scaled into the chart box (the y axis starts at 0);
    ``target`` adds a dashed line at that value (the RTO target), the box grown to show it."""
    pts = sorted((t, v) for t, v in values if v is not None)
    if len(pts) < 2:
        return Chart(title, "", "", "", "", "", len(pts))
    t0, t1 = pts[0][0], pts[-1][0]
    high = max(v for _, v in pts)
    low = min(v for _, v in pts)
    span_t = (t1 - t0) or 1.0
    top = max(high, target or 0) or 1.0
    coords = []
    for t, v in pts:
        x = _PAD + (t - t0) / span_t * (_CHART_W - 2 * _PAD)
        coords.append(f"{x:.1f},{_y(v, top):.1f}")
    return Chart(
        title, " ".join(coords), fmt(pts[0][1]), fmt(pts[-1][1]), fmt(low), fmt(high), len(pts),
        since=short_time(t0), until=short_time(t1),
        target_y=_y(target, top) if target else None, target=fmt(target) if target else "",
    )  # fmt: skip


def _y(value: float, top: float) -> float:
    return round(_CHART_H - _PAD - value / top * (_CHART_H - 2 * _PAD), 1)


def bars(title: str, rows: list[tuple[str, float]], fmt: Any) -> Bars:
    high = max((v for _, v in rows), default=0) or 1
    return Bars(title, [(label, round(100 * v / high, 1), fmt(v)) for label, v in rows])


def charts_for(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The page's charts from the snapshot (its history, backups and drills)."""
    history = snapshot["history"]
    at = [datetime.fromtimestamp(p["at"], UTC).timestamp() for p in history]

    def series(key: str) -> list[tuple[float, float]]:
        return list(zip(at, [p.get(key) for p in history], strict=True))

    backups = sorted(
        (b for r in snapshot["parts"]["backups"].get("repositories", []) for b in r["backups"]
         if b["status"] == "complete"),
        key=lambda b: b["started_at"],
    )[-60:]  # fmt: skip
    backup_t = [datetime.fromisoformat(b["started_at"]).timestamp() for b in backups]
    drills = sorted(snapshot["parts"]["drills"].get("drills", []), key=lambda d: d["at"])
    drill_t = [datetime.fromisoformat(d["at"]).timestamp() for d in drills]
    tables = snapshot["parts"]["database"].get("tables", [])[:10]
    return {
        "growth": line_chart("Database size", series("db_bytes"), human_bytes),
        "cache": line_chart("Table cache hit", series("cache_hit"), percent),
        "backup_size": line_chart(
            "Backup size", list(zip(backup_t, [b["size"] for b in backups], strict=True)),
            human_bytes,
        ),
        "backup_seconds": line_chart(
            "Backup duration", list(zip(backup_t, [b["seconds"] for b in backups], strict=True)),
            human_seconds,
        ),
        "rto": line_chart(
            "Restore drill RTO",
            list(zip(drill_t, [d["rto_seconds"] for d in drills], strict=True)),
            human_seconds,
            target=next((d["rto_target_seconds"] for d in reversed(drills)
                         if d.get("rto_target_seconds")), None),
        ),
        "largest": bars("Largest tables", [(t["table"], t["total_bytes"] or 0) for t in tables],
                        human_bytes),
    }  # fmt: skip


@functools.cache
def _environment() -> Any:
    """The page's Jinja2 environment, made once: it keeps the compiled template (compiling
    it took ~80 ms, most of a render; Jinja2 still reloads it when the file changes)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(bytes=human_bytes, seconds=human_seconds, count=human_count,
                       percent=percent, when=short_time)  # fmt: skip
    return env


def render_html(snapshot: dict[str, Any], *, top: int = 20, runbook_base: str = "") -> str:
    """The page for a snapshot dict (:meth:`HealthSnapshot.to_dict`).

    ``runbook_base`` prefixes runbook links (``/runbooks/`` when served, a
    ``file://`` folder when built); empty shows the command only.
    """
    findings = snapshot["findings"]
    problems = [f for f in findings if f["severity"] in ("warning", "error", "critical")]
    template = _environment().get_template("dashboard.html.j2")
    return template.render(
        s=snapshot,
        p=snapshot["parts"],
        top=top,
        problems=problems,
        notes=[f for f in findings if f["severity"] in ("ok", "info")],
        worst=problems[0] if problems else None,
        charts=charts_for(snapshot),
        runbook_base=runbook_base,
        severities=[s.label for s in reversed(F.Severity)],
        chart_w=_CHART_W,
        chart_h=_CHART_H,
    )


@dataclass
class BuiltDashboard(F.FindingsReport):
    """What `dashboard build` wrote, and what it found."""

    html: Path
    json: Path
    status: str
    counts: dict[str, int]
    seconds: float
    findings: list[F.Finding]

    @property
    def exit_code(self) -> int:
        """0 once both files are written: the page reports the health, it does not judge it
        (``preflight`` and the jobs exit non-zero for what they find)."""
        return 0

    def extra(self) -> dict[str, Any]:
        return {"html": str(self.html), "json": str(self.json), "status": self.status,
                "counts": self.counts, "seconds": round(self.seconds, 3)}  # fmt: skip


def out_dir(config: Config, override: str | Path | None = None) -> Path:
    """Where the dashboard goes: ``override``, ``[dashboard] out_dir`` or ``<state>/dashboard``."""
    chosen = override or config.get("dashboard.out_dir")
    return config.resolve_path(str(chosen)) if chosen else config.state_dir / "dashboard"


def json_text(data: dict[str, Any]) -> str:
    """db-health.json's text: compact (at a thousand tables it is megabytes; ``jq .``
    indents it), keys sorted."""
    return json.dumps(data, sort_keys=True, default=str, separators=(",", ":")) + "\n"


def write_dashboard(snapshot: HealthSnapshot, folder: Path, *, top: int = 20) -> tuple[Path, Path]:
    """Write db-health.json, then db-health.html, each atomically; return their paths.

    Raises PathNotUsable (exit 2) or DiskFull (exit 1) when the folder cannot take them.
    """
    from ops.fsutil import atomic_write_text, ensure_dir
    from ops.runbook import runbooks_dir

    ensure_dir(folder, purpose="dashboard folder")
    data = snapshot.to_dict()
    html = render_html(data, top=top, runbook_base=runbooks_dir().as_uri() + "/")
    json_path, html_path = folder / JSON_NAME, folder / HTML_NAME
    atomic_write_text(json_path, json_text(data))
    atomic_write_text(html_path, html)
    return html_path, json_path


def build_dashboard(
    config: Config, out: str | Path | None = None, **collect: Any
) -> BuiltDashboard:
    """Collect a snapshot (recording its history) and write both files.

    ``collect`` goes to :func:`~dashboards.collect.collect_snapshot` (``loaded``,
    ``target``). Raises what :func:`write_dashboard` raises.
    """
    from dashboards.collect import collect_snapshot

    snapshot = collect_snapshot(config, **collect)
    html, json_path = write_dashboard(snapshot, out_dir(config, out),
                                      top=int(config.get("dashboard.top")))  # fmt: skip
    return BuiltDashboard(html, json_path, snapshot.status, snapshot.counts(), snapshot.seconds,
                          snapshot.findings)  # fmt: skip
