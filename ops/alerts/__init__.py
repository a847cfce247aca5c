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


def alert_findings(
    config: Any,
    source: str,
    findings: Sequence[Finding],
    secrets: Mapping[str, str],
    *,
    database: str = "",
    deliver: bool = True,
) -> tuple[Evaluation, FlushReport | None]:
    """Evaluate ``source``'s findings, spool what must go out, and (``deliver``) flush the spool.

    ``secrets`` are the loaded secret values (the channels' settings come from
    them). Returns the evaluation and the flush report (None without
    ``deliver``). Raises PathNotUsable / DiskFull / LockBusy when the state
    store cannot be written; a delivery failure is a finding of the flush.
    """
    from ops.alerts.alerter import evaluate, flush
    from ops.alerts.channels import active_channels
    from ops.alerts.render import AlertContext
    from ops.alerts.store import open_store

    if not config.get("alerts.enabled"):
        from ops.alerts.alerter import Evaluation

        return Evaluation(source), None
    ctx = AlertContext.from_config(config, database)
    channels = list(active_channels(config, secrets))
    with open_store(config) as store:
        evaluation = evaluate(config, source, findings, store=store, channels=channels, ctx=ctx)
        report = flush(config, store, secrets) if deliver and channels else None
    return evaluation, report
