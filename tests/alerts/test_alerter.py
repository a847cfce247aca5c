"""Evaluation, deduplication, resolution and the spool, delivered to a real aiosmtpd and webhook."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ops import findings as F
from ops.alerts.alerter import evaluate, flush
from ops.alerts.render import AlertContext
from ops.alerts.store import open_store
from ops.config import load_config
from ops.logs import register_secret_values
from tests.conftest import REPO
from tests.helpers import write_config
from tests.mailservers import SmtpServer, WebhookServer

CTX = AlertContext(
    "findawise-empire", "prod", "ops-host-1", "postgresql://app@db.example:5432/empire"
)


def _config(tmp_path: Path, extra: str = "") -> object:
    return load_config(write_config(tmp_path, f'[alerts.email]\ntls = "none"\n{extra}'))


def _secrets(smtp: SmtpServer, **more: str) -> dict[str, str]:
    return smtp.env(ALERT_TO="ops@example.com, dba@example.com",
                    ALERT_FROM="empire-ops@example.com", **more)  # fmt: skip


def _round(cfg: object, source: str, found: list[F.Finding], secrets: dict[str, str],
           now: float, channels: tuple[str, ...] = ("email",)) -> object:  # fmt: skip
    with open_store(cfg) as store:
        result = evaluate(cfg, source, found, store=store, channels=channels, ctx=CTX, now=now)
        flush(cfg, store, secrets, now=now)
    return result


STALE = F.warning("BACKUP_STALE", "local", "the newest verified backup is 30 hours old")


def test_one_finding_one_email_nothing_while_open_then_one_resolved(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    cfg, secrets, t0 = _config(tmp_path), _secrets(smtp), time.time()

    _round(cfg, "backup", [STALE], secrets, t0)
    assert len(smtp.received) == 1
    mail = smtp.received[0]
    msg = mail.message
    assert sorted(mail.rcpt_tos) == ["dba@example.com", "ops@example.com"]
    assert msg["From"] == "empire-ops@example.com"
    assert msg["Subject"] == "[findawise-empire prod] WARNING BACKUP_STALE: local"
    assert msg["Message-ID"].startswith("<") and msg["Message-ID"].endswith("@ops-host-1>")
    assert msg["Auto-Submitted"] == "auto-generated"
    text, html = mail.part("plain"), mail.part("html")
    for body in (text, html):
        assert "BACKUP_STALE" in body and "30 hours old" in body
        assert "prod" in body and "ops-host-1" in body
        assert "postgresql://app@db.example:5432/empire" in body
        assert "runbooks/BACKUP_STALE.md" in body
        assert "empire-ops backup run" in body  # the runbook's first steps
    assert "Times seen:  1" in text

    # Still open, well within repeat_after (6 h): nothing more, but it is counted.
    for minutes in (1, 60, 300):
        _round(cfg, "backup", [STALE], secrets, t0 + minutes * 60)
    assert len(smtp.received) == 1
    with open_store(cfg) as store:
        (row,) = store.open_findings()
    assert row.times_seen == 4

    # Cleared: exactly one "resolved" message, then silence.
    _round(cfg, "backup", [], secrets, t0 + 400 * 60)
    _round(cfg, "backup", [], secrets, t0 + 401 * 60)
    assert len(smtp.received) == 2
    resolved = smtp.received[1]
    assert resolved.message["Subject"] == "[findawise-empire prod] RESOLVED BACKUP_STALE: local"
    assert "cleared" in resolved.part("plain") and "Times seen:  4" in resolved.part("plain")
    assert resolved.message["Message-ID"] != msg["Message-ID"]


def test_repeat_after_and_a_worse_severity_alert_again(tmp_path: Path, smtp: SmtpServer) -> None:
    cfg, secrets, t0 = _config(tmp_path), _secrets(smtp), time.time()
    _round(cfg, "backup", [STALE], secrets, t0)
    _round(cfg, "backup", [STALE], secrets, t0 + 6 * 3600 + 1)
    assert len(smtp.received) == 2
    assert "Times seen:  2" in smtp.received[1].part("plain")
    worse = F.critical("BACKUP_STALE", "local", "the newest verified backup is 3 days old")
    _round(cfg, "backup", [worse], secrets, t0 + 6 * 3600 + 60)
    assert len(smtp.received) == 3
    assert "CRITICAL" in str(smtp.received[2].message["Subject"])


def test_many_findings_of_one_evaluation_are_one_digest(tmp_path: Path, smtp: SmtpServer) -> None:
    cfg, secrets = _config(tmp_path), _secrets(smtp)
    found = [
        F.error("BACKUP_FAILED", "s3", "the upload failed"),
        F.critical("DRILL_FAILED", "local", "the backup does not restore"),
        F.warning("BACKUP_STALE", "local", "old"),
        F.info("BACKUP_TAKEN", "local", "fine"),  # below min_severity: not an alert
    ]
    result = _round(cfg, "backup", found, secrets, time.time())
    assert len(smtp.received) == 1
    subject = str(smtp.received[0].message["Subject"])
    assert subject == "[findawise-empire prod] CRITICAL DRILL_FAILED: local (+2 more)"
    text = smtp.received[0].part("plain")
    assert text.index("DRILL_FAILED") < text.index("BACKUP_FAILED") < text.index("BACKUP_STALE")
    assert "BACKUP_TAKEN" not in text
    assert len(result.alerted) == 3  # type: ignore[attr-defined]


def test_a_source_resolves_only_its_own_findings(tmp_path: Path, smtp: SmtpServer) -> None:
    cfg, secrets, t0 = _config(tmp_path), _secrets(smtp), time.time()
    _round(cfg, "secrets", [F.error("SECRETS_MISSING", "SUPABASE_URL", "not set")], secrets, t0)
    _round(cfg, "backup", [], secrets, t0 + 60)
    assert len(smtp.received) == 1
    with open_store(cfg) as store:
        assert [r.code for r in store.open_findings()] == ["SECRETS_MISSING"]


def test_the_clock_jumping_back_an_hour_neither_repeats_nor_loses_the_resolved_notice(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    cfg, secrets, t0 = _config(tmp_path), _secrets(smtp), time.time()
    _round(cfg, "backup", [STALE], secrets, t0)
    # The clock goes back an hour: the interval is negative, which is "not yet".
    _round(cfg, "backup", [STALE], secrets, t0 - 3600)
    _round(cfg, "backup", [STALE], secrets, t0 - 3000)
    assert len(smtp.received) == 1
    _round(cfg, "backup", [], secrets, t0 - 2900)
    assert [str(r.message["Subject"]).split()[2] for r in smtp.received] == ["WARNING", "RESOLVED"]


def test_smtp_down_then_back_after_a_restart_delivers_each_alert_exactly_once(
    tmp_path: Path,
) -> None:
    server = SmtpServer()  # not started: connection refused
    cfg, secrets, t0 = _config(tmp_path), _secrets(server), time.time()
    found = [F.error("BACKUP_FAILED", "local", "pg_dump exited 1")]
    _round(cfg, "backup", found, secrets, t0)
    _round(cfg, "secrets", [F.error("SECRETS_MISSING", "X", "not set")], secrets, t0 + 1)
    with open_store(cfg) as store:
        spool = store.messages(states=("pending",))
        assert len(spool) == 2 and all(m["attempts"] == 1 for m in spool)
        assert all("ConnectionRefusedError" in m["last_error"] for m in spool)
        # Before the backoff is over, a flush tries nothing.
        report = flush(cfg, store, secrets, now=t0 + 5)
        assert report.sent == [] and report.failed == []
    server.start()
    try:
        # "Restart": a new process opens the store; the backoff has passed.
        code = (
            "import sys, time; from ops.config import load_config; "
            "from ops.alerts.store import open_store; from ops.alerts.alerter import flush; "
            f"cfg = load_config({str(tmp_path / 'empire-ops.toml')!r}); "
            f"s = open_store(cfg); r = flush(cfg, s, {secrets!r}, now=time.time() + 120); "
            "print(len(r.sent))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=REPO, check=True)  # fmt: skip
        assert out.stdout.strip() == "2"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=REPO, check=True)  # fmt: skip
        assert out.stdout.strip() == "0"
        ids = [r.message["Message-ID"] for r in server.received]
        assert len(ids) == 2 and len(set(ids)) == 2
    finally:
        server.stop()


_FLUSHER = """
import sys, time
from ops.config import load_config
from ops.alerts.store import open_store
from ops.alerts.alerter import flush
cfg = load_config(sys.argv[1])
secrets = dict(a.split("=", 1) for a in sys.argv[2:])
until = float(secrets.pop("UNTIL"))
with open_store(cfg) as store:
    while time.time() < until:  # both processes start flushing at the same instant
        pass
    print(len(flush(cfg, store, secrets).sent))
"""


def test_two_processes_flushing_at_once_send_each_message_once(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    cfg, secrets = _config(tmp_path), _secrets(smtp)
    down = {**secrets, "SMTP_PORT": "1"}  # spool 30 messages while the server is "down"
    for i in range(30):
        _round(cfg, f"job{i}", [F.error("JOB_FAILED", f"job{i}", "boom")], down, time.time())
    assert smtp.received == []
    with open_store(cfg) as store:
        store.query("update messages set next_attempt_at = 0")
    until = time.time() + 1.5
    args = [f"{k}={v}" for k, v in secrets.items()] + [f"UNTIL={until}"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FLUSHER, str(tmp_path / "empire-ops.toml"), *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    counts = [int(p.communicate(timeout=60)[0].strip()) for p in procs]
    assert sum(counts) == 30
    ids = [str(r.message["Message-ID"]) for r in smtp.received]
    assert len(ids) == 30 and len(set(ids)) == 30


def test_starttls_and_auth_with_a_private_ca(
    tmp_path: Path, smtp_tls: SmtpServer, cert_path: Path
) -> None:
    cfg = load_config(
        write_config(
            tmp_path, f'[alerts.email]\ntls = "starttls"\ntimeout = "3s"\nca_file = "{cert_path}"\n'
        )
    )
    secrets = _secrets(smtp_tls, SMTP_USER="alerts", SMTP_PASSWORD="Smtp-Pw#4f9a-x7Q@z")
    _round(cfg, "backup", [STALE], secrets, time.time())
    assert len(smtp_tls.received) == 1 and smtp_tls.auth_attempts == ["alerts"]
    # A wrong password is a failed delivery, kept in the spool, never a crash.
    wrong = {**secrets, "SMTP_PASSWORD": "not-the-password-1234"}
    _round(cfg, "drill", [F.error("DRILL_FAILED", "local", "x")], wrong, time.time())
    assert len(smtp_tls.received) == 1
    with open_store(cfg) as store:
        (pending,) = store.messages(states=("pending",))
    # aiosmtpd answers 535 to PLAIN, then stalls smtplib's LOGIN retry: either way a failure.
    assert pending["last_error"].startswith(f"email to 127.0.0.1:{smtp_tls.port} (starttls): SMTP")
    assert "not-the-password-1234" not in json.dumps(pending)


def test_an_untrusted_certificate_is_refused(tmp_path: Path, smtp_tls: SmtpServer) -> None:
    cfg = load_config(write_config(tmp_path, '[alerts.email]\ntls = "starttls"\n'))
    secrets = _secrets(smtp_tls, SMTP_USER="alerts", SMTP_PASSWORD="Smtp-Pw#4f9a-x7Q@z")
    _round(cfg, "backup", [STALE], secrets, time.time())
    assert smtp_tls.received == [] and smtp_tls.auth_attempts == []
    with open_store(cfg) as store:
        (pending,) = store.messages(states=("pending",))
    assert "CERTIFICATE_VERIFY_FAILED" in pending["last_error"]


def test_webhook_gets_the_same_alert_once_after_a_500(
    tmp_path: Path, smtp: SmtpServer, webhook: WebhookServer
) -> None:
    cfg = _config(tmp_path)
    secrets = _secrets(smtp, ALERT_WEBHOOK_URL=webhook.url("/services/T0/B0/abcdefghijkl"))
    webhook.status = 500
    t0 = time.time()
    _round(cfg, "backup", [STALE], secrets, t0, channels=("email", "webhook"))
    assert len(smtp.received) == 1 and webhook.delivered() == []
    webhook.status = 200
    with open_store(cfg) as store:
        flush(cfg, store, secrets, now=t0 + 31)
        flush(cfg, store, secrets, now=t0 + 3600)
    (body,) = webhook.delivered()
    assert body["text"].startswith("[findawise-empire prod] WARNING BACKUP_STALE: local")
    assert body["empire_ops"]["findings"][0]["code"] == "BACKUP_STALE"
    first, second = webhook.requests
    assert (
        first["headers"]["X-Empire-Ops-Message-Id"] == second["headers"]["X-Empire-Ops-Message-Id"]
    )


def test_quiet_hours_hold_non_critical_alerts_until_they_end(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    from datetime import UTC, datetime

    cfg = _config(tmp_path, '[alerts]\nquiet_hours = "22:00-07:00"\n')
    secrets = _secrets(smtp)
    night = datetime(2026, 12, 7, 23, 30, tzinfo=UTC).timestamp()
    _round(cfg, "backup", [STALE, F.critical("DRILL_FAILED", "local", "x")], secrets, night)
    assert [str(r.message["Subject"]).split()[2] for r in smtp.received] == ["CRITICAL"]
    with open_store(cfg) as store:
        flush(cfg, store, secrets, now=night + 3600)
        assert len(smtp.received) == 1
        flush(cfg, store, secrets, now=datetime(2026, 12, 8, 7, 0, 1, tzinfo=UTC).timestamp())
    assert len(smtp.received) == 2 and "BACKUP_STALE" in str(smtp.received[1].message["Subject"])


def test_recipients_by_severity_and_per_code_rules(tmp_path: Path, smtp: SmtpServer) -> None:
    cfg = _config(
        tmp_path,
        '[alerts.recipients]\ncritical = ["oncall@example.com"]\n'
        '[alerts.codes.BACKUP_STALE]\nseverity = "critical"\nrecipients = ["cto@example.com"]\n'
        "[alerts.codes.SCHEMA_HEALED]\nenabled = false\n",
    )
    _round(cfg, "x", [STALE, F.warning("SCHEMA_HEALED", "idx", "rebuilt")], _secrets(smtp),
           time.time())  # fmt: skip
    (mail,) = smtp.received
    assert sorted(mail.rcpt_tos) == [
        "cto@example.com", "dba@example.com", "oncall@example.com", "ops@example.com",
    ]  # fmt: skip
    assert "CRITICAL BACKUP_STALE" in str(mail.message["Subject"])
    assert "SCHEMA_HEALED" not in mail.part("plain")


def test_no_channel_keeps_what_would_be_sent_and_the_first_channel_sends_it(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    cfg, t0 = _config(tmp_path), time.time()
    with open_store(cfg) as store:
        evaluate(cfg, "backup", [STALE], store=store, channels=(), ctx=CTX, now=t0)
        evaluate(cfg, "backup", [STALE], store=store, channels=(), ctx=CTX, now=t0 + 60)
        (row,) = store.messages()
    assert row["state"] == "unrouted" and row["channel"] == "none"
    # SMTP is configured an hour later: the open finding is sent then, not after 6 h.
    _round(cfg, "backup", [STALE], _secrets(smtp), t0 + 3600)
    assert [str(m.message["Subject"]).split()[2] for m in smtp.received] == ["WARNING"]


def test_a_broken_override_template_is_a_config_error(tmp_path: Path) -> None:
    from ops.errors import ConfigError

    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "message.txt.j2").write_text("{{ items | nosuchfilter }}")
    cfg = _config(tmp_path, '[alerts]\ntemplates_dir = "tpl"\n')
    with open_store(cfg) as store, pytest.raises(ConfigError, match=r"message\.txt\.j2"):
        evaluate(cfg, "backup", [STALE], store=store, channels=("email",), ctx=CTX)


def test_an_override_template_is_used_and_still_escaped(tmp_path: Path, smtp: SmtpServer) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "message.html.j2").write_text(
        "<p>OURS {% for i in items %}{{ i.message }}{% endfor %}</p>"
    )
    cfg = _config(tmp_path, '[alerts]\ntemplates_dir = "tpl"\n')
    finding = F.error("BACKUP_FAILED", "local", "<script>alert(1)</script>")
    _round(cfg, "backup", [finding], _secrets(smtp), time.time())
    html = smtp.received[0].part("html")
    assert html.startswith("<p>OURS ") and "&lt;script&gt;" in html and "<script>" not in html


def test_canary_secrets_reach_no_mail_webhook_spool_or_log(
    tmp_path: Path, smtp: SmtpServer, webhook: WebhookServer
) -> None:
    from ops.logs import setup_logging

    log_file = tmp_path / "ops.log"
    setup_logging("debug", "plain", str(log_file))  # as the CLI logs, to a file
    try:
        _canary_round(tmp_path, smtp, webhook, log_file)
    finally:
        setup_logging("info", "plain")  # later tests must not log into this test's file


def _canary_round(tmp_path: Path, smtp: SmtpServer, webhook: WebhookServer, log_file: Path) -> None:
    from tests.helpers import encoded_forms

    canary = "cAnArY-Smtp-9f8e7d6c5b4a-é#@/"
    hook_canary = "hookcanary0123456789abcdef"
    register_secret_values([canary, webhook.url(f"/services/{hook_canary}")])
    cfg = _config(tmp_path)
    secrets = _secrets(smtp, SMTP_PASSWORD=canary,
                       ALERT_WEBHOOK_URL=webhook.url(f"/services/{hook_canary}"))  # fmt: skip
    leaky = F.error("BACKUP_FAILED", f"repo {canary}", f"pg_dump said: password {canary} <&>")
    _round(cfg, "backup", [leaky], secrets, time.time(), channels=("email", "webhook"))
    assert len(smtp.received) == 1 and len(webhook.delivered()) == 1
    mail = smtp.received[0]
    store_bytes = b"".join(p.read_bytes() for p in (tmp_path / ".empire").glob("state.*"))
    outputs = [
        mail.raw.decode("utf-8", "replace"), mail.part("plain"), mail.part("html"),
        webhook.requests[0]["body"].decode(), json.dumps(webhook.delivered()),
        log_file.read_text(), store_bytes.decode("utf-8", "replace"),
    ]  # fmt: skip
    for text in outputs:
        for form in encoded_forms(canary) | {canary}:
            assert form not in text
        assert hook_canary not in text
    assert "[REDACTED]" in smtp.received[0].part("plain")
    assert "alert new for BACKUP_FAILED: repo [REDACTED]" in log_file.read_text()


def test_implicit_tls_with_auth(tmp_path: Path) -> None:
    from tests.helpers import make_certificate

    cert = make_certificate(tmp_path)
    server = SmtpServer(cert=cert, login=("alerts", "Tls-Only-Pw-93kd"), implicit_tls=True)
    server.start()
    try:
        cfg = load_config(
            write_config(tmp_path, f'[alerts.email]\ntls = "tls"\nca_file = "{cert[0]}"\n')
        )
        secrets = _secrets(server, SMTP_USER="alerts", SMTP_PASSWORD="Tls-Only-Pw-93kd")
        _round(cfg, "backup", [STALE], secrets, time.time())
        assert len(server.received) == 1 and server.auth_attempts == ["alerts"]
    finally:
        server.stop()


def test_a_finding_two_sources_report_is_resolved_by_either(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    cfg, secrets, t0 = _config(tmp_path), _secrets(smtp), time.time()
    weak = F.warning("SECRETS_WEAK", "SMTP_PASSWORD", "too short")
    _round(cfg, "up", [weak], secrets, t0)
    _round(cfg, "job:secrets", [weak], secrets, t0 + 60)
    assert len(smtp.received) == 1
    # `up` never runs again; the secrets job sees it fixed: resolved, once.
    _round(cfg, "job:secrets", [], secrets, t0 + 120)
    _round(cfg, "up", [], secrets, t0 + 180)
    assert [str(m.message["Subject"]).split()[2] for m in smtp.received] == ["WARNING", "RESOLVED"]


def test_a_source_with_an_underscore_closes_only_its_own_findings(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    cfg, secrets, t0 = _config(tmp_path), _secrets(smtp), time.time()
    _round(cfg, "job:vacx1", [F.error("JOB_FAILED", "vacx1", "x")], secrets, t0)
    _round(cfg, "job:vac_1", [], secrets, t0 + 1)  # `_` is not a wildcard here
    with open_store(cfg) as store:
        assert [r.code for r in store.open_findings()] == ["JOB_FAILED"]


def test_a_webhook_url_with_a_bad_port_is_a_failed_delivery_not_a_crash(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    secrets = {"ALERT_WEBHOOK_URL": "https://hooks.example.com:99999/services/abcdefgh"}
    with open_store(cfg) as store:
        evaluate(cfg, "backup", [STALE], store=store, channels=("webhook",), ctx=CTX)
        report = flush(cfg, store, secrets)
        (pending,) = store.messages(states=("pending",))
    assert report.exit_code == 4 and pending["attempts"] == 1
    assert pending["last_error"].startswith("webhook to https://hooks.example.com:?")


def test_e_mail_digests_split_by_recipients_but_the_webhook_gets_one(
    tmp_path: Path, smtp: SmtpServer, webhook: WebhookServer
) -> None:
    cfg = _config(tmp_path, '[alerts.recipients]\ncritical = ["oncall@example.com"]\n')
    secrets = _secrets(smtp, ALERT_WEBHOOK_URL=webhook.url("/hook/0123456789ab"))
    found = [STALE, F.critical("DRILL_FAILED", "local", "does not restore")]
    _round(cfg, "backup", found, secrets, time.time(), channels=("email", "webhook"))
    assert len(smtp.received) == 2  # the critical one also goes to on-call
    (post,) = webhook.delivered()
    assert [f["code"] for f in post["empire_ops"]["findings"]] == ["DRILL_FAILED", "BACKUP_STALE"]
