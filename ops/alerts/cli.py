"""`empire-ops alerts …`: test the channels, show the state, deliver the spool (thin commands)."""

from __future__ import annotations

from typing import Any

import typer

from ops.cliutil import (
    OpsGroup,
    configure_logging_from,
    echo,
    render_report,
    state,
)
from ops.config import format_time

app = typer.Typer(
    cls=OpsGroup, help="E-mail and webhook alerts: test, status, flush.", no_args_is_help=True
)
_JSON = typer.Option(False, "--json", help="Print JSON.")


def _secret_values(ctx: typer.Context) -> Any:
    from ops.secrets import load_secrets

    return load_secrets(state(ctx).config).secrets


@app.command("test")
def alerts_test(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Send a test message through every channel that is on; report each result."""
    from ops.alerts.alerter import test_channels

    configure_logging_from(ctx)
    render_report(test_channels(state(ctx).config, _secret_values(ctx)), as_json)


@app.command("status")
def alerts_status(ctx: typer.Context, as_json: bool = _JSON) -> None:
    """Open findings, what was sent, the spool, and which channels are on."""
    from ops.alerts.alerter import alerts_status as status
    from ops.alerts.ledger import database_ledger
    from ops.alerts.store import open_store
    from ops.target import existing_target

    configure_logging_from(ctx)
    cfg = state(ctx).config
    secrets = _secret_values(ctx)
    ledger, conn = database_ledger(cfg, existing_target(cfg, secrets))
    try:
        with open_store(cfg) as store:
            report = status(cfg, store, secrets, ledger)
    finally:
        if conn is not None:
            conn.close()
    if as_json:
        render_report(report, as_json)
    for name, on in report.channels.items():
        echo(f"channel {name}: {on}")
    echo(f"open findings: {len(report.open)}")
    for r in report.open:
        echo(f"  {r['severity']:<8} {r['code']} {r['subject']}: seen {r['times_seen']}x since "
             f"{format_time(r['first_seen'])}, alerted {format_time(r['alerted_at'])}")  # fmt: skip
    echo(f"spool: {len(report.spool)}")
    for m in report.spool:
        error = f": {m['last_error']}" if m["last_error"] else ""
        echo(f"  {m['state']:<9} {m['channel']:<8} {m['title']} (tries {m['attempts']}, "
             f"next {format_time(m['next_attempt_at'])}){error}")  # fmt: skip
    echo(f"sent (newest {len(report.sent)}):")
    for m in report.sent:
        echo(f"  {format_time(m['sent_at'])} {m['channel']:<8} {m['title']}")
    render_report(report, as_json)


@app.command("flush")
def alerts_flush(
    ctx: typer.Context,
    now: bool = typer.Option(
        False, "--now", help="Try every waiting alert now, whatever its backoff or quiet hours."
    ),
    as_json: bool = _JSON,
) -> None:
    """Deliver every due alert in the spool now (exit 4 when a channel still fails)."""
    from ops.alerts import deliver_spool
    from ops.target import existing_target

    configure_logging_from(ctx)
    cfg = state(ctx).config
    secrets = _secret_values(ctx)
    report = deliver_spool(cfg, secrets, target=existing_target(cfg, secrets), force=now)
    if not as_json:
        echo(f"sent {len(report.sent)}, failed {len(report.failed)}, "
             f"dropped {len(report.dropped)}; {report.waiting} waiting")  # fmt: skip
    render_report(report, as_json)
