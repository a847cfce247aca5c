"""Alert messages: one digest of findings rendered for people (text, HTML) and webhooks (JSON).

Templates are Jinja2 (``ops/alerts/templates``), overridable by files of the
same name in ``[alerts] templates_dir``; HTML autoescapes. Every string that
goes in is redacted first, and every rendering is redacted again, so a secret
value can reach neither a message nor the spool, escaped or not.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ops.config import format_time
from ops.errors import ConfigError

_SHIPPED = Path(__file__).resolve().parent / "templates"
KINDS = ("alert", "resolved", "test")
_COLOURS = {"critical": "#8b0000", "error": "#c62828", "warning": "#b26a00", "info": "#1565c0"}
_MAX_STEPS = 8


@dataclass(frozen=True)
class AlertContext:
    """Where an alert comes from: project, environment, host and the database (masked)."""

    project: str
    env: str
    host: str
    database: str = ""

    @classmethod
    def from_config(cls, config: Any, database: str = "") -> AlertContext:
        return cls(config.get("project.name"), config.env, socket.gethostname(), database)


@dataclass(frozen=True)
class AlertItem:
    """One finding in a message, with what a person needs to act on it."""

    code: str
    severity: str
    subject: str
    message: str
    runbook: str | None = None
    first_seen: str = ""
    times_seen: int = 1
    cleared_at: str = ""
    steps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rendered:
    """A message as each channel sends it: a title, text and HTML bodies, a webhook payload."""

    title: str
    text: str
    html: str
    payload: str


def runbook_steps(code: str) -> list[str]:
    """The first lines of a runbook's "Fix" section (else its "Check"), or [] when none."""
    from ops.runbook import runbook_path

    try:
        text = runbook_path(code).read_text(encoding="utf-8")
    except Exception:  # no runbook (or none readable) is no steps, never a failed alert
        return []
    for heading in ("Fix", "Check", "Steps"):
        match = re.search(rf"^##+ [^\n]*{heading}[^\n]*\n(.*?)(?=^##+ |\Z)", text, re.M | re.S)
        if match:
            lines = [ln.rstrip() for ln in match.group(1).strip().splitlines()]
            lines = [ln for ln in lines if ln.strip() and not ln.startswith("```")]
            return lines[:_MAX_STEPS]
    return []


def title_for(kind: str, items: Sequence[AlertItem], ctx: AlertContext) -> str:
    """The subject line: ``[project env] CRITICAL BACKUP_FAILED: local (+2 more)``."""
    head = f"[{ctx.project} {ctx.env}]"
    if kind == "test":
        return f"{head} test alert from {ctx.host}"
    first = items[0]
    more = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
    if kind == "resolved":
        return f"{head} RESOLVED {first.code}: {first.subject}{more}"
    return f"{head} {first.severity.upper()} {first.code}: {first.subject}{more}"


def render_message(
    kind: str,
    items: Sequence[AlertItem],
    ctx: AlertContext,
    *,
    templates_dir: Path | None = None,
    now: float,
) -> Rendered:
    """Render one message (``kind`` alert, resolved or test) of ``items``, redacted.

    Raises ConfigError when an override template in ``templates_dir`` does not
    render (a syntax error or an unknown filter), naming the file.
    """
    from jinja2 import Environment, FileSystemLoader, TemplateError, select_autoescape

    from ops.logs import redact, redact_data

    safe_items = [AlertItem(**redact_data(asdict(i))) for i in items]
    context = redact_data(asdict(ctx)) | {
        "kind": kind,
        "items": safe_items,
        "generated_at": format_time(now),
        "colours": _COLOURS,
    }
    title = " ".join(redact(title_for(kind, safe_items, ctx)).split())
    context["title"] = title
    folders = [str(templates_dir)] if templates_dir else []
    env = Environment(
        loader=FileSystemLoader([*folders, str(_SHIPPED)]),
        autoescape=select_autoescape(["html", "html.j2"]),
        keep_trailing_newline=True,
    )
    try:
        text = env.get_template("message.txt.j2").render(context)
        html = env.get_template("message.html.j2").render(context)
    except TemplateError as exc:
        where = getattr(exc, "filename", None) or getattr(exc, "name", None) or "a template"
        raise ConfigError(
            f"alert template {where} does not render: {exc}",
            hint="fix the template in [alerts] templates_dir, or remove it to use the shipped one",
        ) from None
    payload = json.dumps(
        redact_data(
            {
                "text": f"{title}\n{text}",
                "empire_ops": {
                    "kind": kind,
                    "project": ctx.project,
                    "env": ctx.env,
                    "host": ctx.host,
                    "database": ctx.database,
                    "findings": [
                        {k: v for k, v in asdict(i).items() if k != "steps"} for i in safe_items
                    ],
                },
            }
        )
    )
    return Rendered(title, redact(text), redact(html), payload)


def templates_dir(config: Any) -> Path | None:
    """``[alerts] templates_dir`` resolved against the project root, or None when unset."""
    value = config.get("alerts.templates_dir")
    return config.resolve_path(value) if value else None
