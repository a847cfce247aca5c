"""Alerts: findings become e-mails and webhook posts, once, with a "resolved" notice.

``rules.py`` (pure policy), ``render.py`` (Jinja2 templates), ``channels/``
(email, webhook: one base, a registry), ``store.py`` (the SQLite state store),
``alerter.py`` (evaluate, spool, flush). :func:`alert_findings` is the one call
the scheduler, cron jobs and ``up`` make.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

log = logging.getLogger("ops.alerts")

if TYPE_CHECKING:
    from ops.alerts.alerter import Evaluation, FlushReport
    from ops.findings import Finding


DELIVERY_SOURCE = "alerts:delivery"


def _evaluate_somewhere(
    config: Any,
    source: str,
    findings: Sequence[Finding],
    store: Any,
    ledger: Any,
    **kw: Any,
) -> Evaluation:
    """Evaluate on the shared ledger; on this host's own when the database fails first.

    When the database fails before anything of the evaluation was spooled,
    deciding again on the state store loses nothing. When it fails after (at
    its commit), the messages are spooled already and are sent: at least once.
    """
    from ops.alerts.alerter import evaluate
    from ops.errors import DatabaseError, DatabaseUnreachable

    if ledger is None:
        return evaluate(config, source, findings, store=store, **kw)
    spooled: list[str] = []
    try:
        return evaluate(config, source, findings, store=store, ledger=ledger, spooled=spooled, **kw)
    except (DatabaseError, DatabaseUnreachable) as exc:
        if spooled:  # in the spool already: they go out (at least once), no second copy
            raise
        log.warning("alerts: the shared ledger failed (%s); deciding on this host's", exc.message)
        return evaluate(config, source, findings, store=store, **kw)


def alert_findings(
    config: Any,
    source: str,
    findings: Sequence[Finding],
    secrets: Mapping[str, str],
    *,
    target: Any = None,
    deliver: bool = True,
    resolve: bool = True,
) -> tuple[Evaluation, FlushReport | None]:
    """Evaluate ``source``'s findings, spool what must go out, and (``deliver``) flush the spool.

    ``secrets`` are the loaded secret values (the channels' settings come from
    them). ``target`` is the database: its masked DSN is shown in messages,
    and when it answers, its shared ledger decides what was already alerted
    (:mod:`ops.alerts.ledger`), so several hosts alert a finding once. Returns
    the evaluation and the flush report (None without ``deliver``). Without
    ``resolve`` nothing is closed (the source did not finish its checks). Raises
    PathNotUsable / DiskFull / LockBusy when the state store cannot be
    written; a delivery failure is a finding of the flush.
    """
    from ops.alerts.channels import active_channels
    from ops.alerts.render import AlertContext
    from ops.alerts.store import open_store

    if not config.get("alerts.enabled"):
        from ops.alerts.alerter import Evaluation

        return Evaluation(source), None
    from ops.alerts.ledger import database_ledger

    ctx = AlertContext.from_config(config, target.masked if target is not None else "")
    channels = list(active_channels(config, secrets))
    ledger, conn = database_ledger(config, target)
    try:
        with open_store(config) as store:
            evaluation = _evaluate_somewhere(
                config, source, findings, store, ledger, channels=channels, ctx=ctx,
                resolve=resolve,
            )  # fmt: skip
            report = None
            if deliver and channels:
                report = _flush_and_judge(config, store, ledger, secrets, channels, ctx)
    finally:
        if conn is not None:
            conn.close()
    return evaluation, report


def _flush_and_judge(
    config: Any, store: Any, ledger: Any, secrets: Any, channels: list[str], ctx: Any,
    force: bool = False,
) -> FlushReport:  # fmt: skip
    """Flush the spool, then evaluate the delivery itself as the source ``alerts:delivery``.

    A channel that fails is alerted through the others (and, once it is back,
    through itself); only a flush in which that channel delivered resolves it.
    """
    from ops.alerts.alerter import flush

    report = flush(config, store, secrets, force=force)
    if report.sent or report.failed or report.dropped:
        delivered = {f"{m['channel']} from {ctx.host}" for m in report.sent}
        _evaluate_somewhere(
            config, DELIVERY_SOURCE, report.findings, store, ledger, channels=channels,
            ctx=ctx, resolve=lambda row: row.subject in delivered,
        )  # fmt: skip
    return report


def deliver_spool(
    config: Any, secrets: Mapping[str, str], *, target: Any = None, force: bool = False
) -> FlushReport:
    """``alerts flush``: deliver the spool (``force``: every waiting message now) and judge
    the delivery as every flush of a job does. Raises as :func:`alert_findings`."""
    from ops.alerts.channels import active_channels
    from ops.alerts.ledger import database_ledger
    from ops.alerts.render import AlertContext
    from ops.alerts.store import open_store

    ctx = AlertContext.from_config(config, target.masked if target is not None else "")
    channels = list(active_channels(config, secrets))
    ledger, conn = database_ledger(config, target)
    try:
        with open_store(config) as store:
            return _flush_and_judge(config, store, ledger, secrets, channels, ctx, force)
    finally:
        if conn is not None:
            conn.close()
