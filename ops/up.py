"""`empire-ops up`: the main job, every step built so far, in order.

Each step returns findings; ``up`` runs them all (a failed step stops the
ones that depend on it) and ends with a one-screen summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.config import Config
from ops.errors import OpsError
from ops.findings import Finding
from ops.target import DatabaseTarget, resolve_target

if TYPE_CHECKING:
    from ops.secrets import LoadResult


@dataclass
class UpState:
    """What steps hand to each other."""

    config: Config
    target: DatabaseTarget | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    secrets: LoadResult | None = None
    yes: bool = False  # `up --yes`: writes confirmed (see ops.migrate.confirm)


@dataclass
class StepResult:
    name: str
    findings: list[Finding]
    seconds: float

    @property
    def status(self) -> str:
        return F.worst(self.findings).label


Step = Callable[[UpState], list[Finding]]


def step_database(state: UpState) -> list[Finding]:
    """Load the secrets, then resolve the database from them (embedded when none is set).

    A secrets gap stops ``up`` here, before anything boots: its findings are returned.
    """
    from ops.secrets import load_secrets

    state.secrets = load_secrets(state.config)
    if state.secrets.exit_code:
        return state.secrets.findings
    state.target = resolve_target(state.config, state.secrets.secrets)
    kind = "embedded PostgreSQL" if state.target.embedded else f"from {state.target.source}"
    return [F.ok("DB_TARGET", state.target.masked, f"using {kind}")]


def step_migrate(state: UpState) -> list[Finding]:
    """Apply pending migrations where ``[migrate] auto_apply_in`` allows it.

    On a non-embedded database whose environment was not chosen explicitly,
    only with ``up --yes`` (else MIGRATE_NOT_CONFIRMED, exit 2, nothing written).
    """
    from ops.migrate.apply import ensure_migrated

    assert state.target is not None
    return ensure_migrated(state.target, state.config, confirmed=state.yes)


def step_demo(state: UpState) -> list[Finding]:
    """Seed a small demo dataset into an empty embedded database (``up --demo``)."""
    from ops.seed.demo import step_demo as seed_step

    return seed_step(state)


def step_preflight(state: UpState) -> list[Finding]:
    from ops.preflight import run_preflight

    report = run_preflight(state.config, state.target, secrets=state.secrets)
    state.facts.update(report.facts)
    return report.findings


def step_backup(state: UpState) -> list[Finding]:
    """Back up the embedded database (another database is backed up by `backup run` from cron)."""
    assert state.target is not None
    if not state.target.embedded:
        return [
            F.info("BACKUP_SKIPPED", "backup", "up backs up only the embedded database; "
                   "schedule `empire-ops backup run` (and `drill run`) for this one")
        ]  # fmt: skip
    from ops.backup.dump import run_backup

    report = run_backup(state.target, state.config)
    if not report.exit_code:
        state.facts["backup_id"] = report.backup_id
    return report.findings


def step_drill(state: UpState) -> list[Finding]:
    """Prove the backup just taken restores, and say how long it took (the RTO)."""
    backup_id = state.facts.get("backup_id")
    if not backup_id:
        return [F.info("DRILL_SKIPPED", "drill", "no backup was taken by this run")]
    from ops.backup.drill import run_drill

    return run_drill(state.config, str(backup_id)).findings


def step_alerts(state: UpState) -> list[Finding]:
    """Evaluate every finding of this run for alerts: sent, spooled, or (no channel) listed.

    It runs last, whatever happened before, since a failed run is what alerts are for.
    A channel that is down is not a failure of ``up``: the alert waits in the spool.
    """
    from ops.alerts import alert_findings

    if not state.config.get("alerts.enabled"):
        return [F.info("ALERTS_OFF", "alerts", "alerts are off ([alerts] enabled = false)")]
    secrets = state.secrets.secrets if state.secrets is not None else {}
    # A run that stopped early did not run every check: what it did not see stays open.
    evaluation, flushed = alert_findings(
        state.config, "up", state.facts.get("findings", []), secrets, target=state.target,
        resolve=state.facts.get("complete", False),
    )  # fmt: skip
    from ops.alerts.store import open_store

    with open_store(state.config) as store:
        rows = {m["message_id"]: m for m in store.messages(limit=1000)}
    mine = [rows[i] for i in evaluation.messages if i in rows]
    if not mine:
        if evaluation.still_open:
            return [F.info("ALERTS_ALREADY_SENT", "alerts",
                           f"{len(evaluation.still_open)} finding(s) already alerted, not "
                           "repeated before [alerts] repeat_after")]  # fmt: skip
        return [F.ok("ALERTS_NONE", "alerts", "nothing to alert")]
    listed = {"alerts": [f"{m['channel']} {m['state']}: {m['title']}" for m in mine]}
    sent = [m for m in mine if m["state"] == "sent"]
    if any(m["state"] == "unrouted" for m in mine):
        message = f"no alert channel is on; {len(mine)} alert(s) would be sent"
        return [F.info("ALERTS_WOULD_SEND", "alerts", message, details=listed)]
    if len(sent) == len(mine):
        channels = ", ".join(sorted({m["channel"] for m in sent}))
        return [F.ok("ALERTS_SENT", "alerts", f"{len(sent)} sent by {channels}", details=listed)]
    why = flushed.findings[0].message if flushed and flushed.findings else "not yet delivered"
    message = f"{len(mine) - len(sent)} alert(s) wait in the spool: {why}"
    return [F.warning("ALERTS_SPOOLED", "alerts", message, details=listed)]


def step_dashboard(state: UpState) -> list[Finding]:
    """Build the health dashboard from what this run left, and say where it is.

    The page's own findings are the other steps' (already listed); a part it
    could not read is a warning here.
    """
    from dashboards.render import build_dashboard

    report = build_dashboard(state.config, loaded=state.secrets, target=state.target)
    failed = [f for f in report.findings if f.code == "DASHBOARD_PART_FAILED"]
    note = f"status {report.status}, built in {report.seconds:.2f}s"
    return [*failed, F.ok("DASHBOARD_BUILT", str(report.html), note)]


STEPS: list[tuple[str, Step]] = [
    ("database", step_database),
    ("migrate", step_migrate),
    ("preflight", step_preflight),
    ("backup", step_backup),
    ("drill", step_drill),
]
DEMO_STEP: tuple[str, Step] = ("demo", step_demo)
# Steps that run after the others, even when one of them stopped the run.
FINAL_STEPS: list[tuple[str, Step]] = [("alerts", step_alerts), ("dashboard", step_dashboard)]


@dataclass
class UpReport:
    steps: list[StepResult]

    @property
    def findings(self) -> list[Finding]:
        return [f for s in self.steps for f in s.findings]

    @property
    def exit_code(self) -> int:
        return F.exit_code_for(self.findings)


def run_up(
    config: Config,
    steps: list[tuple[str, Step]] | None = None,
    *,
    demo: bool = False,
    yes: bool = False,
) -> UpReport:
    """Run each step in order; stop after a step that yields an error or raises.

    ``demo`` adds the demo-data step after the checks. ``yes`` confirms
    writes to a non-embedded database when no environment was chosen
    (``--env`` / ``$EMPIRE_ENV``); see :mod:`ops.migrate.confirm`.
    """
    results: list[StepResult] = []
    state = UpState(config=config, yes=yes)
    planned = [*(steps or STEPS), *([DEMO_STEP] if demo else [])]
    for name, step in planned:
        results.append(_run_step(name, step, state))
        if F.exit_code_for(results[-1].findings):
            break
    # Every planned step ran, and none raised: only then is a finding's absence news.
    state.facts["complete"] = len(results) == len(planned) and not any(
        f.code.startswith("UP_") and f.code.endswith("_FAILED") for f in results[-1].findings
    )
    if steps is None:
        state.facts["findings"] = [f for r in results for f in r.findings]
        results.extend(_run_step(name, step, state) for name, step in FINAL_STEPS)
    return UpReport(results)


def _run_step(name: str, step: Step, state: UpState) -> StepResult:
    started = time.monotonic()
    try:
        found = step(state)
    except OpsError as exc:
        # The hint is the fix; the summary is the only place the user sees it.
        found = [
            F.critical(
                f"UP_{name.upper()}_FAILED", name, exc.message_with_hint, exit_code=exc.exit_code
            )
        ]
    return StepResult(name, found, time.monotonic() - started)


def render_summary(report: UpReport) -> str:
    """The one-screen summary: a line per step, then the problems."""
    lines = ["empire-ops up"]
    for step in report.steps:
        note = step.findings[-1].message if step.findings else ""
        if len(note) > 60:
            note = note[:59] + "…"
        lines.append(f"  {step.name:<10} {step.status:<8} {step.seconds:6.2f}s  {note}")
    for f in report.findings:
        lines.extend(f"  {'':<10} {line}" for line in f.details.get("alerts", []))
    problems = [f for f in report.findings if f.severity >= F.Severity.WARNING]
    if problems:
        lines.append("")
        lines.append(F.render_table(problems))
    lines.append("")
    built = [f for f in report.findings if f.code == "DASHBOARD_BUILT"]
    if built:
        lines.append(f"dashboard: {built[0].subject}")
    lines.append(
        "result: " + ("ok" if report.exit_code == 0 else f"FAILED (exit {report.exit_code})")
    )
    return "\n".join(lines)
