"""Alert rules: which findings alert, at what severity, to whom, how often, and when not.

A pure policy object built from ``[alerts]``: no I/O, tested on synthetic
findings and clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ops.config import parse_duration
from ops.findings import Finding, Severity


@dataclass(frozen=True)
class CodeRule:
    """``[alerts.codes.<CODE>]``: this code's own switch, severity, recipients, repeat."""

    enabled: bool = True
    severity: Severity | None = None
    recipients: tuple[str, ...] = ()
    repeat_after: float | None = None


@dataclass(frozen=True)
class AlertRules:
    """The alerting policy. ``quiet`` is (start, end) in minutes after midnight, or None."""

    enabled: bool = True
    min_severity: Severity = Severity.WARNING
    repeat_after: float = 6 * 3600
    quiet: tuple[int, int] | None = None
    timezone: str = "UTC"
    recipients: dict[Severity, tuple[str, ...]] = field(default_factory=dict)
    codes: dict[str, CodeRule] = field(default_factory=dict)
    retry_max: float = 3600
    give_up_after: float = 7 * 86400

    @classmethod
    def from_config(cls, config: Any) -> AlertRules:
        """The rules of ``config``'s ``[alerts]`` section (already validated)."""
        section = config.get("alerts")
        codes = {
            code: CodeRule(
                enabled=rule.get("enabled", True),
                severity=Severity.parse(rule["severity"]) if rule.get("severity") else None,
                recipients=tuple(rule.get("recipients", ())),
                repeat_after=parse_duration(rule["repeat_after"])
                if rule.get("repeat_after")
                else None,
            )
            for code, rule in section["codes"].items()
        }
        return cls(
            enabled=section["enabled"],
            min_severity=Severity.parse(section["min_severity"]),
            repeat_after=parse_duration(section["repeat_after"]),
            quiet=_parse_quiet(section["quiet_hours"]),
            timezone=section["timezone"],
            recipients={Severity.parse(k): tuple(v) for k, v in section["recipients"].items() if v},
            codes=codes,
            retry_max=parse_duration(section["retry_max"]),
            give_up_after=parse_duration(section["give_up_after"]),
        )

    def rule(self, code: str) -> CodeRule:
        return self.codes.get(code, CodeRule())

    def severity_of(self, finding: Finding) -> Severity:
        """The severity a finding alerts at: its code's override, else its own."""
        return self.rule(finding.code).severity or finding.severity

    def alerts(self, finding: Finding) -> bool:
        """True when ``finding`` should reach a person (its code on, severity high enough)."""
        if not self.enabled or not self.rule(finding.code).enabled:
            return False
        return self.severity_of(finding) >= max(self.min_severity, Severity.INFO)

    def repeat_for(self, code: str) -> float:
        own = self.rule(code).repeat_after
        return own if own is not None else self.repeat_after

    def repeat_due(self, code: str, alerted_at: float | None, now: float) -> bool:
        """True when an open finding last alerted at ``alerted_at`` may be alerted again.

        A negative interval (the clock went back) is "not yet", never "long ago".
        """
        if alerted_at is None:
            return True
        elapsed = now - alerted_at
        return elapsed >= 0 and elapsed >= self.repeat_for(code)

    def extra_recipients(self, code: str, severity: Severity) -> tuple[str, ...]:
        """Addresses beside ALERT_TO: the tiers at or below ``severity``, and the code's."""
        found = {a for level, addrs in self.recipients.items() if severity >= level for a in addrs}
        found.update(self.rule(code).recipients)
        return tuple(sorted(found))

    def quiet_until(self, now: float, severity: Severity) -> float | None:
        """When quiet hours hold a non-critical alert at ``now``: their end; else None."""
        if self.quiet is None or severity >= Severity.CRITICAL:
            return None
        start, end = self.quiet
        local = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        inside = start <= minute < end if start <= end else (minute >= start or minute < end)
        if not inside:
            return None
        end_at = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
        if end_at <= local:
            end_at += timedelta(days=1)
        return end_at.timestamp()


def _parse_quiet(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    first, second = text.split("-")
    h1, m1 = first.split(":")
    h2, m2 = second.split(":")
    start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
    return None if start == end else (start, end)


def backoff(attempts: int, retry_max: float) -> float:
    """Seconds to wait after ``attempts`` failed tries: 30 s doubling, capped at ``retry_max``."""
    return float(min(retry_max, 30 * 2 ** max(0, attempts - 1)))
