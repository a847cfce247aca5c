"""Several hosts, one database: the shared ledger alerts a finding once, not once per host."""

from __future__ import annotations

from pathlib import Path

import psycopg

from ops import findings as F
from ops.alerts import alert_findings
from ops.config import load_config
from ops.db import ConnectOptions, make_dsn
from ops.embedded import free_port
from ops.target import DatabaseTarget
from tests.helpers import write_config
from tests.mailservers import SmtpServer

FAILED = F.error("BACKUP_FAILED", "s3", "the upload failed")


def _host(root: Path) -> object:
    root.mkdir()
    return load_config(write_config(root, '[alerts.email]\ntls = "none"\n'))


def _target(dsn: str) -> DatabaseTarget:
    return DatabaseTarget(dsn, False, ConnectOptions(connect_timeout=1), "DATABASE_URL")


def _subjects(smtp: SmtpServer) -> list[str]:
    return [" ".join(str(m.message["Subject"]).split()[2:4]) for m in smtp.received]


def test_two_hosts_alert_a_finding_once_and_resolve_it_once(
    tmp_path: Path, smtp: SmtpServer, migrated_db: str
) -> None:
    a, b = _host(tmp_path / "a"), _host(tmp_path / "b")
    target, secrets = _target(migrated_db), smtp.env()
    alert_findings(a, "job:backup", [FAILED], secrets, target=target)
    alert_findings(b, "job:backup", [FAILED], secrets, target=target)  # the next run, elsewhere
    alert_findings(a, "job:backup", [FAILED], secrets, target=target)
    assert _subjects(smtp) == ["ERROR BACKUP_FAILED:"]
    alert_findings(b, "job:backup", [], secrets, target=target)
    alert_findings(a, "job:backup", [], secrets, target=target)
    assert _subjects(smtp) == ["ERROR BACKUP_FAILED:", "RESOLVED BACKUP_FAILED:"]
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("select count(*) from ops.alert_findings").fetchone() == (0,)


def test_what_a_host_opened_while_the_database_was_away_joins_the_shared_ledger(
    tmp_path: Path, smtp: SmtpServer, migrated_db: str
) -> None:
    a, b = _host(tmp_path / "a"), _host(tmp_path / "b")
    secrets = smtp.env()
    away = _target(make_dsn("127.0.0.1", free_port(), "nobody", "nothing"))
    # The database is away: host a decides on its own ledger, and alerts.
    alert_findings(a, "job:backup", [FAILED], secrets, target=away)
    assert _subjects(smtp) == ["ERROR BACKUP_FAILED:"]
    # It is back: a's open finding moves to the shared ledger, alerted already.
    alert_findings(a, "job:backup", [FAILED], secrets, target=_target(migrated_db))
    alert_findings(b, "job:backup", [FAILED], secrets, target=_target(migrated_db))
    assert _subjects(smtp) == ["ERROR BACKUP_FAILED:"]
    alert_findings(b, "job:backup", [], secrets, target=_target(migrated_db))
    assert _subjects(smtp) == ["ERROR BACKUP_FAILED:", "RESOLVED BACKUP_FAILED:"]
    from ops.alerts.store import open_store

    with open_store(a) as store:
        assert store.open_findings() == []


def test_a_role_that_cannot_create_the_ledger_falls_back_to_the_state_store(
    tmp_path: Path, smtp: SmtpServer, lowpriv_db
) -> None:
    a = _host(tmp_path / "a")
    target, secrets = _target(lowpriv_db.dsn), smtp.env()
    alert_findings(a, "job:backup", [FAILED], secrets, target=target)
    alert_findings(a, "job:backup", [FAILED], secrets, target=target)
    assert _subjects(smtp) == ["ERROR BACKUP_FAILED:"]
    from ops.alerts.store import open_store

    with open_store(a) as store:
        assert [r.code for r in store.open_findings()] == ["BACKUP_FAILED"]
