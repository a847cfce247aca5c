"""ops.db against a real PostgreSQL: DSN masking, timeouts, advisory locks."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ops import db
from ops.errors import ConfigError, DatabaseUnreachable, LockBusy


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        (
            "postgresql://app:s3cret@db.example.com:5432/empire",
            "postgresql://app:****@db.example.com:5432/empire",
        ),
        (
            "postgres://postgres.abcd:p%40ss%3Aword@aws-0-eu.pooler.supabase.com:6543/postgres",
            "postgres://postgres.abcd:****@aws-0-eu.pooler.supabase.com:6543/postgres",
        ),
        ("postgresql://app@localhost/empire", "postgresql://app@localhost/empire"),
        (
            "host=db port=5432 user=app password=s3cret dbname=e",
            "host=db port=5432 user=app password=**** dbname=e",
        ),
        ("host=db password='with space' user=app", "host=db password=**** user=app"),
        (
            "postgresql://localhost/empire?password=s3cret&sslmode=require",
            "postgresql://localhost/empire?password=****&sslmode=require",
        ),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert db.mask_dsn(dsn) == masked


def test_parse_dsn_error_never_shows_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        db.parse_dsn("host=db password='hunter2secret")
    assert "hunter2secret" not in str(info.value)


def test_make_dsn_percent_encodes() -> None:
    dsn = db.make_dsn("h", 5432, "u", "d", "p@ss:w/rd")
    assert db.dsn_password(dsn) == "p@ss:w/rd"
    assert "p@ss" not in db.mask_dsn(dsn)


def test_connect_sets_application_name_and_statement_timeout(fresh_db: str) -> None:
    opts = db.ConnectOptions(connect_timeout=3, statement_timeout=1.5, application_name="eo-test")
    with db.connect(fresh_db, opts) as conn:
        row = conn.execute(
            "select current_setting('application_name') as a, "
            "current_setting('statement_timeout') as s"
        ).fetchone()
        assert row == {"a": "eo-test", "s": "1500ms"}
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select pg_sleep(3)")


def test_refused_connection_is_unreachable_and_masked() -> None:
    dsn = "postgresql://app:TopSecretPw1@127.0.0.1:1/empire"
    with pytest.raises(DatabaseUnreachable) as info:
        db.connect(dsn, db.ConnectOptions(connect_timeout=2))
    assert "TopSecretPw1" not in str(info.value)
    assert "app:****@127.0.0.1:1" in str(info.value)
    assert info.value.exit_code == 4


def test_hung_server_times_out_within_connect_timeout(silent_server: int) -> None:
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable):
        db.connect(
            f"postgresql://u:pw123456@127.0.0.1:{silent_server}/x",
            db.ConnectOptions(connect_timeout=2),
        )
    assert time.monotonic() - started < 4


def test_advisory_lock_second_holder_is_busy(fresh_db: str) -> None:
    with (
        db.connect(fresh_db, autocommit=True) as first,
        db.connect(fresh_db, autocommit=True) as second,
    ):
        with db.advisory_lock(first, "migrate", timeout=1):
            started = time.monotonic()
            assert db.try_advisory_lock(second, "migrate", timeout=0.5) is False
            assert 0.4 < time.monotonic() - started < 2
            with pytest.raises(LockBusy) as info, db.advisory_lock(second, "migrate", timeout=0.2):
                pass
            assert info.value.exit_code == 5
            # other names are independent
            with db.advisory_lock(second, "backup", timeout=0.2):
                pass
        # released: the second can take it now
        with db.advisory_lock(second, "migrate", timeout=0.5):
            pass


def test_advisory_lock_waits_for_release(fresh_db: str) -> None:
    with (
        db.connect(fresh_db, autocommit=True) as first,
        db.connect(fresh_db, autocommit=True) as second,
    ):
        assert db.try_advisory_lock(first, "job", timeout=0)
        timer = threading.Timer(0.3, lambda: db.advisory_unlock(first, "job"))
        timer.start()
        assert db.try_advisory_lock(second, "job", timeout=3) is True
        timer.join()


def test_lock_is_released_when_the_session_dies(fresh_db: str) -> None:
    first = db.connect(fresh_db, autocommit=True)
    assert db.try_advisory_lock(first, "job", timeout=0)
    first.close()
    with db.connect(fresh_db, autocommit=True) as second:
        assert db.try_advisory_lock(second, "job", timeout=1)


def test_lock_key_is_stable_and_distinct() -> None:
    assert db.lock_key("migrate") == db.lock_key("migrate")
    assert db.lock_key("migrate") != db.lock_key("backup")
    assert -(2**63) <= db.lock_key("x") < 2**63


def test_run_query_reports_server_errors(fresh_db: str) -> None:
    from ops.errors import DatabaseError

    with (
        db.connect(fresh_db, autocommit=True) as conn,
        pytest.raises(DatabaseError, match="does not exist"),
    ):
        db.run_query(conn, "select * from no_such_table")


def test_scratch_database_is_dropped_even_when_the_block_fails(pg) -> None:
    names: list[str] = []
    with pytest.raises(RuntimeError):  # noqa: SIM117
        with db.scratch_database(pg.dsn(), prefix="t_scratch", purpose="a test") as dsn:
            names.append(db.parse_dsn(dsn).dbname)
            with db.connect(dsn, autocommit=True) as conn:
                assert db.run_query(conn, "select current_database() as d")[0]["d"] == names[0]
            raise RuntimeError("boom")
    with db.connect(pg.dsn(), autocommit=True) as admin:
        rows = db.run_query(admin, "select 1 from pg_database where datname = %s", (names[0],))
    assert rows == []
