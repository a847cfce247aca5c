"""Findings in, messages out: evaluation, deduplication, resolution, the spool and its flush.

The promise: every finding that matters reaches a person exactly once per
``repeat_after`` while it stays open, and one "resolved" notice goes out when
it clears.

- :func:`evaluate` takes one *source*'s findings (a job: ``backup``,
  ``secrets``…). In one ``BEGIN IMMEDIATE`` transaction it opens what is new,
  counts what is still there, closes what that source no longer reports, and
  spools one digest per channel and recipient set. A source only ever closes
  findings it reported itself, so the backup job cannot resolve a secrets
  finding; a finding two sources report (``up`` and the secrets job) is
  closed by whichever of them next runs without it.
- :func:`flush` delivers the spool. A message is *claimed* (state
  ``sending``, a random claim token, a lease) in its own transaction before
  the network is touched, and marked sent only by the holder of that token:
  two processes flushing at once never send one message twice. A failure goes
  back to ``pending`` with a doubling backoff. A process that dies between
  the send and the mark leaves the claim to expire; the message is then sent
  again with the same ``Message-ID``: at-least-once in that one window, which
  receivers can recognise (docs/alerts.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets as _secrets
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.alerts.render import AlertContext, AlertItem, render_message, runbook_steps, templates_dir
from ops.alerts.rules import AlertRules, backoff
from ops.alerts.store import FindingsBook, OpenFinding, StateStore
from ops.errors import EXIT_UNREACHABLE
from ops.findings import Finding, FindingsReport, Severity
from ops.logs import redact

if TYPE_CHECKING:  # psycopg only where the database's ledger is used
    from ops.alerts.ledger import DatabaseLedger

log = logging.getLogger("ops.alerts")

NO_CHANNEL = "none"
# A claim expires after the send timeout plus this margin; then another
# flusher may take the message (the first one is presumed dead).
_LEASE_MARGIN = 60.0
_OPERATIONS_PER_SEND = 12


@dataclass
class Evaluation(FindingsReport):
    """What one evaluation did: alerts and resolved notices spooled, by (code, subject)."""

    source: str
    alerted: list[tuple[str, str]] = field(default_factory=list)
    repeated: list[tuple[str, str]] = field(default_factory=list)
    resolved: list[tuple[str, str]] = field(default_factory=list)
    still_open: list[tuple[str, str]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "alerted": [list(k) for k in self.alerted],
            "repeated": [list(k) for k in self.repeated],
            "resolved": [list(k) for k in self.resolved],
            "messages": self.messages,
        }


def _message_id(ctx: AlertContext) -> str:
    """A stable, unique RFC 5322 Message-ID, made once when the message is spooled."""
    domain = "".join(c for c in ctx.host.lower() if c.isalnum() or c in ".-") or "localhost"
    return f"<{uuid.uuid4().hex}.{ctx.env}@{domain}>"


def _item(row: OpenFinding, kind: str, now: float) -> AlertItem:
    from ops.config import format_time as when

    return AlertItem(
        code=row.code,
        severity=row.severity,
        subject=row.subject,
        message=row.message,
        runbook=row.runbook,
        first_seen=when(row.first_seen),
        times_seen=row.times_seen,
        cleared_at=when(now) if kind == "resolved" else "",
        steps=runbook_steps(row.code) if kind == "alert" else [],
    )


def evaluate(
    config: Any,
    source: str,
    findings: Sequence[Finding],
    *,
    store: StateStore,
    channels: Sequence[str],
    ctx: AlertContext,
    now: float | None = None,
    ledger: DatabaseLedger | None = None,
    resolve: bool | Callable[[OpenFinding], bool] = True,
    spooled: list[str] | None = None,
) -> Evaluation:
    """Record ``source``'s current ``findings`` and spool what must reach a person.

    ``channels`` are the names of the channels that are on (see
    :func:`ops.alerts.channels.active_channels`); with none, messages are kept
    as ``unrouted`` so ``alerts status`` and ``up`` show what would be sent.
    ``ledger`` is the database's shared ledger of open findings (see
    :mod:`ops.alerts.ledger`); without it, the state store's is used. Messages
    are spooled in the state store either way, before the ledger's transaction
    commits: a crash in between sends an alert again, never loses one.
    Raises PathNotUsable / DiskFull / LockBusy when the store cannot be written,
    DatabaseError / DatabaseUnreachable when the ledger's database fails.
    Without ``resolve``, what the source no longer reports stays open (its
    run did not finish its checks: absence proves nothing); a function
    instead says which of those may close. ``spooled`` (a list) receives the
    ids of the messages as soon as they are in the spool, even when the
    ledger's commit fails afterwards.
    """
    rules = AlertRules.from_config(config)
    now = time.time() if now is None else now
    result = Evaluation(source)
    current: dict[tuple[str, str], Finding] = {}
    for f in findings:
        if rules.alerts(f):
            # The store keeps only redacted text: a subject or message is redacted
            # before it is a key or a row (a message built from a value would leak).
            safe = replace(f, subject=redact(f.subject), message=redact(f.message))
            current.setdefault((safe.code, safe.subject), safe)
    to_alert: list[tuple[OpenFinding, float | None]] = []
    to_resolve: list[tuple[OpenFinding, float | None]] = []
    book: FindingsBook = ledger if ledger is not None else store
    with book.locked():
        # What this source opened in the state store while the database was away
        # joins the shared ledger, alerted state and all (then leaves the store).
        carried = [r for r in store.open_findings(source)] if ledger is not None else []
        for local in carried:
            if book.get_open(*local.key) is None:
                book.put_open(local)
        for key, f in current.items():
            severity = rules.severity_of(f)
            old = book.get_open(*key)
            row = OpenFinding(
                code=f.code,
                subject=f.subject,
                source=",".join(sorted({*(old.sources if old else []), source})),
                severity=severity.label,
                message=f.message,
                runbook=f.runbook,
                first_seen=old.first_seen if old else now,
                last_seen=max(now, old.last_seen) if old else now,
                times_seen=(old.times_seen + 1) if old else 1,
                alerted_at=old.alerted_at if old else None,
                alerted_severity=old.alerted_severity if old else None,
            )
            worse = (
                old is not None
                and old.alerted_severity is not None
                and (severity > Severity.parse(old.alerted_severity))
            )
            due = rules.repeat_due(f.code, row.alerted_at, now) or worse
            if due and not channels:
                # Nobody can be reached: it stays not alerted, so the first channel
                # that comes on sends it. Shown once (unrouted) as what would be sent.
                if old is None:
                    result.alerted.append(key)
                    to_alert.append((row, None))
                else:
                    result.still_open.append(key)
            elif due:
                (result.repeated if row.alerted_at else result.alerted).append(key)
                held = rules.quiet_until(now, severity)
                row = replace(row, alerted_at=now, alerted_severity=severity.label)
                to_alert.append((row, held))
            else:
                result.still_open.append(key)
            book.put_open(row)
        closable = resolve if callable(resolve) else (lambda _row: bool(resolve))
        for old in book.open_findings(source):
            if old.key in current or not closable(old):
                continue
            book.close_open(*old.key)
            if old.alerted_at is not None:
                result.resolved.append(old.key)
                to_resolve.append((old, rules.quiet_until(now, Severity.parse(old.severity))))
        new_ids: list[str] = []
        with store.locked() if ledger is not None else contextlib.nullcontext():
            for local in carried:
                store.close_open(*local.key)
            for kind, rows in (("alert", to_alert), ("resolved", to_resolve)):
                new_ids += _spool(
                    config, store, rules, kind, rows, channels=channels, ctx=ctx, now=now
                )
        # Committed to the spool (with a ledger, before the ledger's own commit).
        result.messages.extend(new_ids)
        if spooled is not None:
            spooled.extend(new_ids)
    for key in result.alerted + result.repeated:
        log.info("alert %s for %s: %s", "repeated" if key in result.repeated else "new", *key)
    for key in result.resolved:
        log.info("alert resolved for %s: %s", *key)
    return result


def _spool(
    config: Any,
    store: StateStore,
    rules: AlertRules,
    kind: str,
    rows: Sequence[tuple[OpenFinding, float | None]],
    *,
    channels: Sequence[str],
    ctx: AlertContext,
    now: float,
) -> list[str]:
    """Spool ``rows`` as digests, one per channel and hold; for e-mail, one per recipient
    set too (recipients are e-mail's: a webhook gets the whole digest). Returns the ids."""
    ids: list[str] = []
    for channel in channels or [NO_CHANNEL]:
        groups: dict[tuple[tuple[str, ...], float | None], list[OpenFinding]] = {}
        for row, held in rows:
            extra: tuple[str, ...] = ()
            if channel == "email":
                extra = rules.extra_recipients(row.code, Severity.parse(row.severity))
            groups.setdefault((extra, held), []).append(row)
        for (extra, held), members in groups.items():
            members.sort(key=lambda r: (-Severity.parse(r.severity), r.code, r.subject))
            items = [_item(r, kind, now) for r in members]
            rendered = render_message(
                kind, items, ctx, templates_dir=templates_dir(config), now=now
            )
            ids.append(
                _enqueue(
                    store,
                    ctx,
                    channel,
                    kind,
                    members[0].severity,
                    rendered,
                    now=now,
                    next_attempt_at=held or now,
                    extra_to=extra,
                    items=[[r.code, r.subject] for r in members],
                )
            )
    return ids


def _enqueue(
    store: StateStore,
    ctx: AlertContext,
    channel: str,
    kind: str,
    severity: str,
    rendered: Any,
    *,
    now: float,
    next_attempt_at: float,
    extra_to: Sequence[str] = (),
    items: Sequence[Sequence[str]] = (),
) -> str:
    """Put one rendered message for ``channel`` in the spool; its new Message-ID."""
    message_id = _message_id(ctx)
    store.enqueue(
        {
            "message_id": message_id,
            "channel": channel,
            "kind": kind,
            "severity": severity,
            "title": rendered.title,
            "body_text": rendered.text,
            "body_html": rendered.html,
            "payload": rendered.payload,
            "extra_to": json.dumps(list(extra_to)),
            "items": json.dumps([list(i) for i in items]),
            "state": "pending" if channel != NO_CHANNEL else "unrouted",
            "created_at": now,
            "next_attempt_at": next_attempt_at,
        }
    )
    return message_id


def spool_test(
    config: Any, store: StateStore, *, channels: Sequence[str], ctx: AlertContext
) -> list[str]:
    """Spool one test message per channel (``alerts test``); returns their ids."""
    now = time.time()
    rendered = render_message("test", [], ctx, templates_dir=templates_dir(config), now=now)
    with store.locked():
        return [
            _enqueue(store, ctx, channel, "test", "info", rendered, now=now, next_attempt_at=now)
            for channel in channels
        ]


@dataclass
class FlushReport(FindingsReport):
    """What a flush delivered, what failed and stays spooled, what was given up."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    waiting: int = 0
    findings: list[Finding] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "waiting": self.waiting,
        }


def _claim(
    store: StateStore,
    now: float,
    lease: float,
    rules: AlertRules,
    only: Sequence[str] | None = None,
    force: bool = False,
    exclude: Sequence[str] = (),
) -> dict[str, Any] | None:
    """Claim the next due message (of ``only``, when given; ``force``: any pending one,
    its backoff or quiet hours ignored), or None. No I/O but SQLite."""
    token = _secrets.token_hex(8)
    among = ""
    if only is not None:
        among = f"and message_id in ({', '.join('?' for _ in only)}) "
    if exclude:  # tried already in this flush
        among += f"and message_id not in ({', '.join('?' for _ in exclude)}) "
    with store.locked():
        # Due: pending and its time has come, or its time is further ahead than any
        # backoff could put it (the clock went back), or a claim whose lease ran out.
        rows = store.query(
            "select * from messages where "
            "((state = 'pending' and (? or next_attempt_at <= ? or next_attempt_at > ?)) "
            "or (state = 'sending' and (lease_until <= ? or lease_until > ?))) "
            f"{among}order by created_at limit 1",
            (
                force,
                now,
                now + max(rules.retry_max, 86400),
                now,
                now + 2 * lease,
                *(only or ()),
                *exclude,
            ),
        )
        if not rows:
            return None
        row = dict(rows[0])
        store.query(
            "update messages set state = 'sending', claim_token = ?, lease_until = ?, "
            "attempts = attempts + 1 where message_id = ?",
            (token, now + lease, row["message_id"]),
        )
    row["claim_token"] = token
    row["attempts"] += 1
    return row


def flush(
    config: Any,
    store: StateStore,
    secrets: Mapping[str, str],
    *,
    now: float | None = None,
    limit: int = 200,
    only: Sequence[str] | None = None,
    force: bool = False,
) -> FlushReport:
    """Deliver every due message in the spool through its channel.

    ``force`` tries every pending message now, whatever its backoff or quiet
    hours (``alerts flush --now``). Each message is tried once per flush.
    Never raises for a delivery failure: it becomes ALERT_DELIVERY_FAILED
    (exit 4, the message kept for a retry with backoff), and a message older
    than ``[alerts] give_up_after`` becomes ALERT_DROPPED (critical). Raises
    storage errors when the store cannot be written.
    """
    from ops.alerts.channels import active_channels

    rules = AlertRules.from_config(config)
    channels = active_channels(config, secrets)
    report = FlushReport()
    # smtplib's timeout bounds each operation, not the send (connect, EHLO, STARTTLS,
    # AUTH, MAIL, RCPT…, DATA): a claim must outlast a slow server's whole exchange,
    # or another flusher would take the message over and send it again.
    lease = (
        _OPERATIONS_PER_SEND
        * max(config.seconds("alerts.email.timeout"), config.seconds("alerts.webhook.timeout"))
        + _LEASE_MARGIN
    )
    tried: set[str] = set()
    for _ in range(limit):
        start = time.time() if now is None else now
        row = _claim(store, start, lease, rules, only, force, sorted(tried))
        if row is None:
            break
        tried.add(row["message_id"])
        summary = {"message_id": row["message_id"], "channel": row["channel"], "kind": row["kind"],
                   "title": row["title"]}  # fmt: skip
        if start - row["created_at"] > rules.give_up_after:
            _finish(store, row, "dropped", error="given up after [alerts] give_up_after")
            report.dropped.append(summary)
            report.findings.append(
                F.critical(
                    "ALERT_DROPPED",
                    f"{row['channel']} from {socket.gethostname()}",
                    f"the {row['kind']} {row['title']!r} could not be delivered by "
                    f"{row['channel']} for longer than [alerts] give_up_after; it is dropped",
                )
            )
            continue
        channel = channels.get(row["channel"])
        if channel is None:  # off now (its secrets went away): it waits for the channel
            _release(store, row, start + 300, "the channel is off (its settings do not resolve)")
            report.failed.append(summary | {"error": "channel off"})
            continue
        from ops.alerts.channels import AlertDeliveryFailed, OutgoingMessage

        message = OutgoingMessage(
            message_id=row["message_id"],
            kind=row["kind"],
            severity=row["severity"],
            title=row["title"],
            text=row["body_text"],
            html=row["body_html"],
            payload=row["payload"],
            extra_to=tuple(json.loads(row["extra_to"])),
        )
        try:
            channel.deliver(message)
        except AlertDeliveryFailed as exc:
            wait = backoff(row["attempts"], rules.retry_max)
            _release(store, row, time.time() + wait, exc.message)
            report.failed.append(summary | {"error": exc.message, "retry_in": wait})
            continue
        _finish(store, row, "sent")
        report.sent.append(summary)
    report.waiting = len(store.messages(states=("pending", "sending"), limit=100000))
    failing = {f["channel"]: f.get("error", "") for f in report.failed}
    for channel_name, error in failing.items():
        report.findings.append(
            F.error(
                "ALERT_DELIVERY_FAILED",
                f"{channel_name} from {socket.gethostname()}",
                f"alerts could not be sent by {channel_name}: {error}; they stay in the spool "
                "and are retried with backoff (`empire-ops alerts flush`)",
                exit_code=EXIT_UNREACHABLE,
            )
        )
    return report


def _finish(store: StateStore, row: dict[str, Any], state: str, error: str = "") -> None:
    """Mark a claimed message ``sent`` or ``dropped``, only while we still hold its claim."""
    with store.locked():
        store.query(
            "update messages set state = ?, sent_at = ?, claim_token = null, lease_until = null, "
            "last_error = ? where message_id = ? and claim_token = ?",
            (state, time.time(), error or None, row["message_id"], row["claim_token"]),
        )


def _release(store: StateStore, row: dict[str, Any], retry_at: float, error: str) -> None:
    """Put a claimed message back in the spool for a retry at ``retry_at``."""
    with store.locked():
        store.query(
            "update messages set state = 'pending', next_attempt_at = ?, claim_token = null, "
            "lease_until = null, last_error = ? where message_id = ? and claim_token = ?",
            (retry_at, error, row["message_id"], row["claim_token"]),
        )


def test_channels(config: Any, secrets: Mapping[str, str]) -> FlushReport:
    """``alerts test``: one test message through every channel that is on, sent now.

    Findings: ALERT_TEST_SENT (ok) per channel that delivered,
    ALERT_DELIVERY_FAILED (exit 4) per channel that did not (the test message
    is then dropped, not retried), ALERTS_NO_CHANNEL (exit 2) when none is on.
    """
    from ops.alerts.channels import active_channels
    from ops.alerts.store import open_store
    from ops.errors import EXIT_USAGE

    channels = list(active_channels(config, secrets))
    if not channels:
        return FlushReport(
            findings=[
                F.error(
                    "ALERTS_NO_CHANNEL",
                    "alerts",
                    "no alert channel is on: set the secrets SMTP_HOST and ALERT_TO (e-mail) "
                    "or ALERT_WEBHOOK_URL (webhook), and check [alerts.email]/[alerts.webhook] "
                    "enabled",
                    exit_code=EXIT_USAGE,
                )
            ]
        )
    from ops.target import existing_target

    target = existing_target(config, secrets)
    ctx = AlertContext.from_config(config, target.masked if target is not None else "")
    with open_store(config) as store:
        ids = spool_test(config, store, channels=channels, ctx=ctx)
        report = flush(config, store, secrets, only=ids)
        with store.locked():
            store.query(
                f"update messages set state = 'dropped' where state = 'pending' and message_id in "
                f"({', '.join('?' for _ in ids)})",
                ids,
            )
    for sent in report.sent:
        report.findings.append(
            F.ok("ALERT_TEST_SENT", sent["channel"], f"test message {sent['message_id']} sent")
        )
    return report


@dataclass
class AlertsStatus(FindingsReport):
    """``alerts status``: open findings, what was sent, the spool, the channels."""

    channels: dict[str, str]
    open: list[dict[str, Any]]
    spool: list[dict[str, Any]]
    sent: list[dict[str, Any]]
    findings: list[Finding] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        return {"channels": self.channels, "open": self.open, "spool": self.spool,
                "sent": self.sent}  # fmt: skip


_SHOWN = ("message_id", "channel", "kind", "severity", "title", "state", "attempts",
          "created_at", "next_attempt_at", "sent_at", "last_error")  # fmt: skip


def alerts_status(
    config: Any,
    store: StateStore,
    secrets: Mapping[str, str],
    ledger: DatabaseLedger | None = None,
) -> AlertsStatus:
    """What is open, spooled and sent, and which channels are on (never a recipient or URL).

    Open findings come from the database's shared ``ledger`` when given, and
    from this host's state store (what it opened while the database was away).
    """
    from ops.alerts.channels import CHANNELS, active_channels

    active = active_channels(config, secrets)
    channels = {
        name: (f"on: {active[name].describe()}" if name in active else "off") for name in CHANNELS
    }
    shared: list[OpenFinding] = []
    if ledger is not None:
        from ops.errors import OpsError

        try:
            shared = ledger.open_findings()
        except OpsError as exc:  # show this host's, rather than nothing
            log.warning("alerts status: the shared ledger could not be read: %s", exc.message)
    local = [r for r in store.open_findings() if r.key not in {s.key for s in shared}]
    open_rows = sorted(
        shared + local, key=lambda r: (-Severity.parse(r.severity), r.code, r.subject)
    )
    spool = [
        {k: m[k] for k in _SHOWN}
        for m in store.messages(states=("pending", "sending", "unrouted"), limit=1000)
    ]
    sent = [{k: m[k] for k in _SHOWN} for m in store.messages(states=("sent",), limit=50)]
    findings: list[Finding] = []
    if not active:
        findings.append(
            F.warning(
                "ALERTS_NO_CHANNEL",
                "alerts",
                "no alert channel is on: set SMTP_HOST and ALERT_TO (e-mail) or "
                "ALERT_WEBHOOK_URL (webhook) in the secrets; findings are recorded, not sent",
            )
        )
    stuck = [m for m in spool if m["state"] != "unrouted" and m["attempts"] > 0]
    if stuck:
        findings.append(
            F.warning(
                "ALERT_DELIVERY_FAILED",
                "spool",
                f"{len(stuck)} alert(s) wait for a retry; the last error: {stuck[0]['last_error']}",
            )
        )
    return AlertsStatus(
        channels=channels,
        open=[
            {
                "code": r.code,
                "subject": r.subject,
                "source": r.source,
                "severity": r.severity,
                "message": r.message,
                "first_seen": r.first_seen,
                "last_seen": r.last_seen,
                "times_seen": r.times_seen,
                "alerted_at": r.alerted_at,
            }
            for r in open_rows
        ],
        spool=spool,
        sent=sent,
        findings=findings,
    )
