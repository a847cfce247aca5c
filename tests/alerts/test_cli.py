"""`alerts test|status|flush`, `up`'s alerts step and `jobs run`, end to end with real servers."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import encoded_forms, write_config
from tests.mailservers import SmtpServer, WebhookServer

NONE_TLS = '[alerts.email]\ntls = "none"\n'


def test_alerts_test_reaches_every_channel_and_reports_each(
    tmp_path: Path, cli, smtp: SmtpServer, webhook: WebhookServer
) -> None:
    write_config(tmp_path, NONE_TLS)
    env = smtp.env(ALERT_WEBHOOK_URL=webhook.url("/services/T1/B1/secretpart0123"))
    result = cli("alerts", "test", "--json", env=env)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert sorted(f["subject"] for f in payload["findings"]) == ["email", "webhook"]
    assert {f["code"] for f in payload["findings"]} == {"ALERT_TEST_SENT"}
    assert len(smtp.received) == 1 and len(webhook.delivered()) == 1
    assert "test alert" in str(smtp.received[0].message["Subject"])
    assert "secretpart0123" not in result.output


def test_alerts_test_without_a_channel_or_with_smtp_down(tmp_path: Path, cli) -> None:
    write_config(tmp_path, NONE_TLS)
    none = cli("alerts", "test")
    assert none.exit_code == 2 and "ALERTS_NO_CHANNEL" in none.stdout
    down = cli("alerts", "test", env=SmtpServer().env())  # nothing listens there
    assert down.exit_code == 4 and "ALERT_DELIVERY_FAILED" in down.stdout


def test_up_sends_its_findings_and_lists_them(tmp_path: Path, cli, smtp: SmtpServer) -> None:
    write_config(tmp_path, NONE_TLS)
    # A weak SMTP password is a warning in dev: up passes, and says so by e-mail.
    result = cli("up", env=smtp.env(SMTP_PASSWORD="short"))
    assert result.exit_code == 0, result.output
    assert "alerts     ok" in result.stdout
    assert "email sent: [findawise-empire dev] WARNING SECRETS_WEAK: SMTP_PASSWORD" in result.stdout
    (mail,) = smtp.received
    assert "SECRETS_WEAK" in mail.part("plain")


def test_up_without_a_channel_lists_what_would_be_sent(tmp_path: Path, cli) -> None:
    write_config(tmp_path, "")
    result = cli("up", env={"SMTP_PASSWORD": "short"})
    assert result.exit_code == 0, result.output
    assert "would be sent" in result.stdout
    assert "none unrouted: [findawise-empire dev] WARNING SECRETS_WEAK" in result.stdout


def test_flush_exits_4_while_smtp_is_down_then_delivers_once(tmp_path: Path, cli) -> None:
    write_config(tmp_path, NONE_TLS + '[alerts]\nretry_max = "1s"\n')
    server = SmtpServer()
    env = server.env()
    first = cli("up", env=env | {"SMTP_PASSWORD": "short"})
    assert first.exit_code == 0 and "alerts     warning" in first.stdout
    assert "wait in the spool" in first.stdout
    status = json.loads(cli("alerts", "status", "--json", env=env).stdout)
    assert len(status["data"]["spool"]) == 1 and status["data"]["spool"][0]["attempts"] == 1
    import time

    time.sleep(1.1)
    assert cli("alerts", "flush", env=env).exit_code == 4
    server.start()
    try:
        time.sleep(1.1)
        done = cli("alerts", "flush", "--json", env=env)
        assert done.exit_code == 0, done.output
        assert len(json.loads(done.stdout)["data"]["sent"]) == 1
        assert cli("alerts", "flush", env=env).exit_code == 0
        assert len(server.received) == 1
    finally:
        server.stop()


def test_a_failing_job_carries_no_canary_into_mail_logs_or_tables(
    tmp_path: Path, run_cli, smtp: SmtpServer, migrated_db: str
) -> None:
    import psycopg

    canary = "Canary-Job-7f3a9c2e41d8-ü"
    # The statement fails with an error that quotes a value, and that value is a secret's.
    write_config(
        tmp_path,
        NONE_TLS
        + f'[scheduler.jobs.leaky]\ncron = "* * * * *"\nsql = "select \'{canary}\'::int"\n'
        + '[secrets.spec.JOB_TOKEN]\ndescription = "a token the statement quotes"\n',
    )
    env = smtp.env(DATABASE_URL=migrated_db, JOB_TOKEN=canary, EMPIRE_OPS_LOG_LEVEL="debug")
    result = run_cli("jobs", "run", "leaky", "--json", env=env)
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["data"]["outcome"] == "failed"
    (mail,) = smtp.received
    with psycopg.connect(migrated_db) as conn:
        logged = str(conn.execute(
            "select array_agg(after::text) from public.admin_logs where subject = 'leaky'"
        ).fetchall()) + str(conn.execute(
            "select array_agg(message || context::text) from public.error_logs"
        ).fetchall())  # fmt: skip
    store = "".join(  # the database file and its write-ahead log, if one is left
        p.read_bytes().decode("utf-8", "replace") for p in (tmp_path / ".empire").glob("state.*")
    )
    for text in (result.stdout, result.stderr, mail.raw.decode("utf-8", "replace"),
                 mail.part("plain"), mail.part("html"), logged, store):  # fmt: skip
        for form in encoded_forms(canary) | {canary}:
            assert form not in text
    assert "[REDACTED]" in mail.part("plain") and "[REDACTED]" in logged
