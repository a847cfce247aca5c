"""Retention: which backups to keep and which to delete, and why. Pure: no I/O, no clock.

:func:`plan_retention` takes a repository's catalog (its manifests, and the
incomplete and unreadable backup ids with their start times) and a
:class:`RetentionPolicy`, and returns one :class:`RetentionDecision` for
*every* backup, ordered by start time (the manifest's ``started_at``, never
the id: WAL-G once deleted its newest backups because it sorted them by
name). ``backup prune`` (``ops/backup/prune.py``) carries the plan out.

The rules, in precedence order (the first that applies decides):

1. **Held.** When the newest backup of the repository (by start time, every
   status counted) is failed, incomplete or unreadable, nothing is deleted:
   every decision is ``keep`` and says so. A failing backup job is the moment
   the old backups matter most, and a young incomplete backup may be a run in
   progress.
2. **Unreadable** backups (a manifest that does not parse) are always kept:
   prune never deletes what it cannot read.
3. **Incomplete** backups (files, no manifest) older than a day
   (:data:`INCOMPLETE_GRACE`) are deleted; younger ones are kept (a run may
   still be writing them). Their start time is the one in their id: without a
   manifest it is the only one there is.
4. **The newest verified backup** (complete, ``verified_at`` set, newest by
   start time) is always kept, whatever ``max_age`` says: it is the last one
   proven to restore.
5. **The newest complete backup** is always kept: no rule, ``max_age``
   included, empties a repository of usable backups.
6. **Tiers keep complete backups over ``max_age``.** ``keep_daily``,
   ``keep_weekly`` and ``keep_monthly`` keep the newest complete backup of
   each of the last N UTC days, ISO weeks and months *that have a complete
   backup* (restic's and borg's meaning: periods without one are skipped,
   so a paused backup job does not age its last backups out). A backup kept
   by a tier is kept even when older than ``max_age``.
7. **``max_age`` deletes** any other complete or failed backup older than it:
   it overrides ``keep_last`` and the tiers' keeping of failed backups.
8. **``keep_last``** keeps the N newest complete backups.
9. **Failed backups** follow the tiers without counting for them: a failed
   backup is kept when it is the newest failed one of a period the tier
   still reaches and no newer complete backup of that period was kept, and
   that period still counts as empty, so the tier goes on to the next
   complete backup. ``keep_last`` counts complete backups only and keeps no
   failed one.
10. **Otherwise** the backup is deleted: no rule keeps it.

To cap the age of every backup (personal data), set ``max_age`` and lower the
tiers to fit it (``keep_monthly = 0`` with ``max_age = "30d"``): tiers win.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ops.backup.manifest import BackupManifest

# A backup without a manifest younger than this may be a run still writing it.
INCOMPLETE_GRACE = timedelta(days=1)

COMPLETE = "complete"
FAILED = "failed"
INCOMPLETE = "incomplete"
UNREADABLE = "unreadable"

# The ``[backup.retention]`` settings: name -> (type, default, doc). The config
# loader builds its table from these; ``max_age = ""`` means no limit.
RETENTION_FIELDS: dict[str, tuple[type, Any, str]] = {
    "keep_last": (int, 7, "always keep the newest N complete backups (unless max_age says no)"),
    "keep_daily": (int, 7, "keep the newest complete backup of each of the last N UTC days"),
    "keep_weekly": (int, 4, "... of each of the last N ISO weeks (UTC)"),
    "keep_monthly": (int, 6, "... of each of the last N months (UTC)"),
    "max_age": (
        str,
        "",
        "delete complete and failed backups older than this (e.g. 90d) unless a tier keeps "
        'them; "" = no limit',
    ),
}


@dataclass(frozen=True)
class RetentionPolicy:
    """How many backups to keep; see the module docstring for how the rules combine.

    Raises ValueError for a negative count, a ``max_age`` that is not a
    positive duration, or a policy that keeps nothing (every count 0): that
    one would delete every backup but the newest, which is never what was meant.
    """

    keep_last: int = 7
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 6
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        counts = {
            "keep_last": self.keep_last,
            "keep_daily": self.keep_daily,
            "keep_weekly": self.keep_weekly,
            "keep_monthly": self.keep_monthly,
        }
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number, 0 or more (got {value!r})")
        if not any(counts.values()):
            raise ValueError(
                "the retention policy keeps nothing (keep_last, keep_daily, keep_weekly and "
                "keep_monthly are all 0): set at least one of them"
            )
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise ValueError(f"max_age must be a positive duration (got {self.max_age})")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RetentionPolicy:
        """The policy of a ``[backup.retention]`` table (missing keys: the defaults).

        Raises ValueError naming the bad setting.
        """
        from ops.config import parse_duration

        values = {
            name: settings.get(name, default) for name, (_, default, _) in RETENTION_FIELDS.items()
        }
        raw_age = values.pop("max_age")
        max_age = None
        if raw_age not in ("", None):
            max_age = timedelta(seconds=parse_duration(raw_age))
        return cls(max_age=max_age, **values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "keep_last": self.keep_last,
            "keep_daily": self.keep_daily,
            "keep_weekly": self.keep_weekly,
            "keep_monthly": self.keep_monthly,
            "max_age_seconds": None if self.max_age is None else self.max_age.total_seconds(),
        }


@dataclass(frozen=True)
class RetentionDecision:
    """Keep or delete one backup, the rules that decided it, and why in words.

    ``rules`` holds tags from: ``held``, ``unreadable``, ``incomplete_recent``,
    ``incomplete_stale``, ``newest_verified``, ``newest_complete``,
    ``keep_last``, ``daily``, ``weekly``, ``monthly``, ``max_age``, ``no_rule``.
    """

    backup_id: str
    started_at: datetime
    status: str  # complete | failed | incomplete | unreadable
    keep: bool
    reason: str
    rules: tuple[str, ...] = field(default=())

    @property
    def action(self) -> str:
        return "keep" if self.keep else "delete"

    @property
    def held(self) -> bool:
        return "held" in self.rules

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "started_at": self.started_at.isoformat(),
            "status": self.status,
            "action": self.action,
            "rules": list(self.rules),
            "reason": self.reason,
        }


def backup_id_time(backup_id: str) -> datetime:
    """The UTC time in a backup id (``20261202T231500Z-k3x9q2``): for backups without a manifest.

    Raises ValueError when ``backup_id`` does not start with one.
    """
    return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    # A naive time from a hand-written manifest is taken as UTC, like everything here.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _daily(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def _weekly(t: datetime) -> str:
    iso = t.isocalendar()  # the ISO year: 2027-01-01 may belong to week 53 of 2026
    return f"{iso.year}-W{iso.week:02d}"


def _monthly(t: datetime) -> str:
    return t.strftime("%Y-%m")


_TIERS: tuple[tuple[str, str, Callable[[datetime], str]], ...] = (
    ("daily", "keep_daily", _daily),
    ("weekly", "keep_weekly", _weekly),
    ("monthly", "keep_monthly", _monthly),
)
_PERIOD = {"daily": "day", "weekly": "ISO week", "monthly": "month"}


@dataclass
class _Entry:
    backup_id: str
    started: datetime
    status: str
    verified: bool = False

    @property
    def order(self) -> tuple[datetime, str]:
        # The id only breaks ties of equal start times, so the order is total and repeatable.
        return (self.started, self.backup_id)


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} h" if abs(hours) < 48 else f"{hours / 24:.0f} days"


def plan_retention(
    manifests: Sequence[BackupManifest],
    incomplete: Sequence[tuple[str, datetime]],
    policy: RetentionPolicy,
    now: datetime,
    *,
    unreadable: Sequence[tuple[str, datetime]] = (),
) -> list[RetentionDecision]:
    """One decision per backup (manifests, incomplete and unreadable ones), oldest first.

    ``incomplete`` and ``unreadable`` are ``(backup_id, started_at)`` pairs
    (:func:`backup_id_time` gives the time of one without a manifest).
    Ordered by start time, ties by id. The rules and their precedence are in
    the module docstring. Pure: the same input gives the same plan.
    """
    now = _utc(now)
    entries = [
        _Entry(
            m.backup_id, _utc(m.started), COMPLETE if m.complete else FAILED, bool(m.verified_at)
        )
        for m in manifests
    ]
    entries += [_Entry(i, _utc(t), INCOMPLETE) for i, t in incomplete]
    entries += [_Entry(i, _utc(t), UNREADABLE) for i, t in unreadable]
    entries.sort(key=lambda e: e.order)
    if not entries:
        return []
    context = _Context.of(entries, policy)
    decisions = [_decide(e, context, policy, now) for e in entries]
    newest = entries[-1]
    if newest.status == COMPLETE:
        return decisions
    why = (
        f"held: the newest backup {newest.backup_id} is {newest.status}, so nothing is deleted "
        "until a newer backup completes"
    )
    return [
        RetentionDecision(
            d.backup_id, d.started_at, d.status, True,
            f"{why} (otherwise: {d.action}, {d.reason})", ("held", *d.rules),
        )
        for d in decisions
    ]  # fmt: skip


@dataclass
class _Context:
    """What every decision of one plan looks at, computed once."""

    newest_complete: _Entry | None
    newest_verified: _Entry | None
    last: list[_Entry]  # kept by keep_last
    tiers: dict[str, list[tuple[str, str]]]  # backup id -> [(tier, period)]

    @classmethod
    def of(cls, entries: Sequence[_Entry], policy: RetentionPolicy) -> _Context:
        complete = [x for x in entries if x.status == COMPLETE]
        verified = [x for x in complete if x.verified]
        return cls(
            newest_complete=complete[-1] if complete else None,
            newest_verified=verified[-1] if verified else None,
            last=complete[-policy.keep_last :] if policy.keep_last else [],
            tiers=_tier_keeps(entries, policy),
        )


def _tier_keeps(
    entries: Sequence[_Entry], policy: RetentionPolicy
) -> dict[str, list[tuple[str, str]]]:
    """backup id -> [(tier, period)] for every tier that keeps it (complete and failed)."""
    newest_first = [e for e in reversed(entries) if e.status in (COMPLETE, FAILED)]
    kept: dict[str, list[tuple[str, str]]] = {}
    for tier, setting, period_of in _TIERS:
        remaining = getattr(policy, setting)
        claimed: str | None = None  # the period the last kept complete backup took
        failed_periods: set[str] = set()
        for e in newest_first:
            if remaining <= 0:
                break
            period = period_of(e.started)
            if period == claimed:
                continue  # a newer complete backup already stands for this period
            if e.status == COMPLETE:
                kept.setdefault(e.backup_id, []).append((tier, period))
                claimed = period
                remaining -= 1
            elif period not in failed_periods:
                # Kept for diagnosis, but the period stays unclaimed: a failure is no backup.
                kept.setdefault(e.backup_id, []).append((tier, period))
                failed_periods.add(period)
    return kept


def _decide(e: _Entry, ctx: _Context, policy: RetentionPolicy, now: datetime) -> RetentionDecision:
    """The decision for ``e`` by rules 2-10 (the hold, rule 1, is applied by the caller)."""
    age = now - e.started

    def out(keep: bool, reason: str, *rules: str) -> RetentionDecision:
        return RetentionDecision(e.backup_id, e.started, e.status, keep, reason, rules)

    if e.status == UNREADABLE:
        return out(True, "unreadable manifest: never deleted by prune (fix or remove it by hand)",
                   "unreadable")  # fmt: skip
    if e.status == INCOMPLETE:
        if age > INCOMPLETE_GRACE:
            return out(False, f"incomplete (no manifest), started {_age(age)} ago: a run that "
                       "did not finish", "incomplete_stale")  # fmt: skip
        return out(True, f"incomplete (no manifest), started {_age(age)} ago: a run may still "
                   "be writing it", "incomplete_recent")  # fmt: skip

    tiers = ctx.tiers.get(e.backup_id, [])
    by_last = any(x is e for x in ctx.last)
    max_age = policy.max_age

    rules: list[str] = [tier for tier, _ in tiers]
    words: list[str] = []
    for tier, period in tiers:
        what = "the newest failed run" if e.status == FAILED else "the newest backup"
        extra = " (a failure never counts for the tier)" if e.status == FAILED else ""
        words.append(f"{what} of {_PERIOD[tier]} {period}{extra}")
    if by_last:
        rules.insert(0, "keep_last")
        words.insert(0, f"one of the {policy.keep_last} newest complete backups")

    if e is ctx.newest_verified:
        return out(True, "the newest verified backup: never deleted", "newest_verified", *rules)
    if e is ctx.newest_complete:
        return out(True, "the newest complete backup: never deleted", "newest_complete", *rules)
    if max_age is not None and age > max_age:
        if e.status == COMPLETE and tiers:
            return out(True, f"kept over max_age ({_age(age)} old) as {'; '.join(words)}",
                       *rules)  # fmt: skip
        overridden = f"; max_age overrides: {'; '.join(words)}" if words else ""
        return out(False, f"older than max_age ({_age(age)} old, limit {_age(max_age)})"
                   f"{overridden}", "max_age")  # fmt: skip
    if rules:
        return out(True, f"kept as {'; '.join(words)}", *rules)
    if e.status == FAILED:
        return out(False, "a failed backup no tier reaches", "no_rule")
    return out(False, "no rule keeps it (beyond keep_last and every tier)", "no_rule")
