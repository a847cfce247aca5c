"""`alerts test|status|flush`, `up`'s alerts step and `jobs run`, end to end with real servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import encoded_forms, write_config
from tests.mailservers import SmtpServer, WebhookServer

NONE_TLS = '[alerts.email]\ntls = "none"\n'


@pytest.fixture(autouse=True)
def _no_server_left(tmp_path: Path) -> Iterator[None]:
    """`up` starts the project's embedded PostgreSQL: stop and remove it after the test."""
    yield
    from ops.embedded import PostgresCluster

    data = tmp_path / ".empire" / "pgdata"
    if data.exists():
        PostgresCluster(data).destroy()


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
    # The warning that was not delivered, and the alert that its delivery failed.
    spool = sorted((m["title"].split()[3], m["attempts"]) for m in status["data"]["spool"])
    assert spool == [("ALERT_DELIVERY_FAILED:", 0), ("SECRETS_WEAK:", 1)]
    import time

    time.sleep(1.1)
    assert cli("alerts", "flush", env=env).exit_code == 4
    server.start()
    try:
        time.sleep(1.1)
        done = cli("alerts", "flush", "--json", env=env)
        assert done.exit_code == 0, done.output
        assert len(json.loads(done.stdout)["data"]["sent"]) == 2
        # Delivering again resolved the delivery failure: its notice goes next, once.
        assert cli("alerts", "flush", env=env).exit_code == 0
        assert cli("alerts", "flush", env=env).exit_code == 0
        ids = [m.message["Message-ID"] for m in server.received]
        assert len(ids) == 3 and len(set(ids)) == 3
        subjects = [str(m.message["Subject"]).split()[2:4] for m in server.received]
        assert ["RESOLVED", "ALERT_DELIVERY_FAILED:"] in subjects
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


def test_alerts_test_sends_only_its_own_message_and_flush_now_skips_the_backoff(
    tmp_path: Path, cli, smtp: SmtpServer
) -> None:
    write_config(tmp_path, NONE_TLS)
    down = SmtpServer().env()  # nothing listens: the up alert waits in the spool
    assert "wait in the spool" in cli("up", env=down | {"SMTP_PASSWORD": "short"}).stdout
    sent = cli("alerts", "test", env=smtp.env())
    assert sent.exit_code == 0, sent.output
    assert ["test" in str(m.message["Subject"]) for m in smtp.received] == [True]
    # The spooled alert waits out its backoff (30 s) unless flushed --now.
    plain = json.loads(cli("alerts", "flush", "--json", env=smtp.env()).stdout)["data"]["sent"]
    assert not any("SECRETS_WEAK" in m["title"] for m in plain)
    now = cli("alerts", "flush", "--now", env=smtp.env())
    assert now.exit_code == 0 and "failed 0" in now.stdout
    assert any("SECRETS_WEAK" in str(m.message["Subject"]) for m in smtp.received[1:])


def _own_address() -> str | None:
    """This machine's address on its network (not loopback), or None where it has none."""
    import ipaddress
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks a route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


def test_no_password_goes_unencrypted_to_a_remote_server(tmp_path: Path) -> None:
    import pytest

    from ops.alerts.alerter import test_channels
    from ops.config import load_config

    address = _own_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    server = SmtpServer(hostname=address, login=("alerts", "Pw-for-a-remote-relay-1")).start()
    try:
        cfg = load_config(write_config(tmp_path, NONE_TLS))
        secrets = server.env(SMTP_HOST=address, SMTP_USER="alerts",
                             SMTP_PASSWORD="Pw-for-a-remote-relay-1")  # fmt: skip
        report = test_channels(cfg, secrets)
        assert report.exit_code == 4 and server.auth_attempts == [] and server.received == []
        assert "refusing to send SMTP_PASSWORD unencrypted" in report.findings[0].message
        assert "Pw-for-a-remote-relay-1" not in str(report.envelope())
        loopback = SmtpServer(login=("alerts", "Pw-for-a-remote-relay-1")).start()
        try:  # to a relay on this machine, plain AUTH is allowed
            plain = loopback.env(SMTP_USER="alerts", SMTP_PASSWORD="Pw-for-a-remote-relay-1")
            report = test_channels(cfg, plain)
            assert report.exit_code == 0 and loopback.auth_attempts == ["alerts"]
        finally:
            loopback.stop()
    finally:
        server.stop()


def test_a_failing_channel_is_alerted_through_the_other_and_resolved(
    tmp_path: Path, webhook: WebhookServer
) -> None:
    from ops import findings as F
    from ops.alerts import alert_findings
    from ops.config import load_config

    cfg = load_config(write_config(tmp_path, NONE_TLS + '[alerts]\nretry_max = "1s"\n'))
    server = SmtpServer()  # down
    secrets = server.env(ALERT_WEBHOOK_URL=webhook.url("/hook/abcdefghijkl"))
    failed = F.error("BACKUP_FAILED", "local", "pg_dump exited 1")
    alert_findings(cfg, "job:backup", [failed], secrets)
    # The webhook got the alert; the e-mail failed and that failure is spooled for both.
    alert_findings(cfg, "job:backup", [failed], secrets)
    codes = [b["empire_ops"]["findings"][0]["code"] for b in webhook.delivered()]
    assert codes == ["BACKUP_FAILED", "ALERT_DELIVERY_FAILED"]
    server.start()
    try:
        import time

        time.sleep(1.1)
        alert_findings(cfg, "job:backup", [failed], secrets)
        alert_findings(cfg, "job:backup", [failed], secrets)
        kinds = [b["empire_ops"]["kind"] for b in webhook.delivered()]
        assert kinds == ["alert", "alert", "resolved"]
        subjects = [str(m.message["Subject"]) for m in server.received]
        assert any("BACKUP_FAILED" in s for s in subjects)
        assert any("RESOLVED ALERT_DELIVERY_FAILED" in s for s in subjects)
    finally:
        server.stop()


def test_a_missing_ca_file_is_a_config_error(tmp_path: Path, cli) -> None:
    write_config(tmp_path, '[alerts.email]\nca_file = "certs/ca.pem"\n')
    result = cli("config", "validate")
    assert result.exit_code == 2
    assert "alerts.email.ca_file:" in result.stderr and "is not a file" in result.stderr
