"""Alerts: findings become e-mails and webhook posts, once, with a "resolved" notice.

``rules.py`` (pure policy), ``render.py`` (Jinja2 templates), ``channels/``
(email, webhook: one base, a registry), ``store.py`` (the SQLite state store),
``alerter.py`` (evaluate, spool, flush). :func:`alert_findings` is the one call
the scheduler, cron jobs and ``up`` make.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ops.alerts.alerter import Evaluation, FlushReport
    from ops.findings import Finding


DELIVERY_SOURCE = "alerts:delivery"


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
    from ops.alerts.alerter import evaluate, flush
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
            # A database that fails mid-evaluation raises: nothing of this evaluation
            # is kept there, and the next one decides again (its spool may hold this
            # one's messages already: then they are sent, at least once).
            evaluation = evaluate(config, source, findings, store=store, channels=channels,
                                  ctx=ctx, ledger=ledger, resolve=resolve)  # fmt: skip
            report = flush(config, store, secrets) if deliver and channels else None
            if report is not None and (report.sent or report.failed or report.dropped):
                # Delivery is a source of its own: a channel that fails is alerted
                # through the others (and, once it is back, through itself), and
                # resolved by the next flush that delivers.
                evaluate(config, DELIVERY_SOURCE, report.findings, store=store,
                         channels=channels, ctx=ctx, ledger=ledger)  # fmt: skip
    finally:
        if conn is not None:
            conn.close()
    return evaluation, report
