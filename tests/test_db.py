"""ops.db against a real PostgreSQL: timeouts, advisory locks (DSNs: tests/test_dsn.py)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ops import db
from ops.errors import DatabaseUnreachable, LockBusy

# DSN parsing and masking: tests/test_dsn.py.


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


# -- the seam maps every driver error ---------------------------------------------------
def test_a_commit_time_error_is_mapped(fresh_db: str) -> None:
    from ops.errors import DatabaseError

    with db.connect(fresh_db, autocommit=True) as conn:
        db.run_query(
            conn,
            "create table t (id int unique deferrable initially deferred)",
        )
        with pytest.raises(DatabaseError) as info, db.transaction(conn):
            db.run_query(conn, "insert into t values (1), (1)")  # checked only at COMMIT
        assert info.value.sqlstate == "23505" and "duplicate key" in info.value.message
        assert db.run_query(conn, "select count(*) as n from t") == [{"n": 0}]


# -- COPY out, in raw batches -------------------------------------------------------------
_ROWS = db.SQL(
    "copy (select g, case when g % 1000 = 0 then e'line\\nbreak, \"quoted\"' else 'x' end "
    "from generate_series(1, 20000) g) to stdout (format csv, header)"
)


def _expected_csv() -> bytes:
    lines = [b"g,case\n"]
    for g in range(1, 20001):
        lines.append(b'%d,"line\nbreak, ""quoted"""\n' % g if g % 1000 == 0 else b"%d,x\n" % g)
    return b"".join(lines)


def test_copy_out_batches_gives_every_row_whole_in_bounded_lists(fresh_db: str) -> None:
    with db.connect(fresh_db) as conn:
        batches = list(db.copy_out_batches(conn, _ROWS, chunk=4096))
        messages = [bytes(m) for b in batches for m in b]
        assert b"".join(messages) == _expected_csv()
        assert len(messages) == 20001  # one message per row, embedded newline or not
        assert len(batches) > 20 and all(sum(map(len, b)) < 4096 + 64 for b in batches)
        # the COPY ended cleanly: the same transaction goes on
        assert db.run_query(conn, "select 1 as one") == [{"one": 1}]


def test_an_error_midway_through_copy_out_is_mapped_and_nothing_hangs(fresh_db: str) -> None:
    from ops.errors import DatabaseError

    failing = db.SQL("copy (select 1 / (5000 - g) from generate_series(1, 9000) g) to stdout")
    with db.connect(fresh_db, autocommit=True) as conn:
        got: list[bytes] = []
        with pytest.raises(DatabaseError) as info:
            for batch in db.copy_out_batches(conn, failing, chunk=1024):
                got += [bytes(m) for m in batch]
        assert info.value.sqlstate == "22012"  # division by zero, raised at row 5000
        assert 0 < len(got) < 5000
        assert db.run_query(conn, "select 2 as two") == [{"two": 2}]


def test_a_lost_connection_is_unreachable_and_a_timeout_names_the_setting(fresh_db: str) -> None:
    from ops.errors import DatabaseError

    opts = db.ConnectOptions(statement_timeout=0.5)
    with db.connect(fresh_db, opts, autocommit=True) as conn:
        with pytest.raises(DatabaseError) as slow:
            db.run_query(conn, "select pg_sleep(3)")
        assert slow.value.sqlstate == "57014"
        assert "database.statement_timeout" in (slow.value.hint or "")
        with pytest.raises(DatabaseUnreachable) as gone:
            db.run_query(conn, "select pg_terminate_backend(pg_backend_pid())")
        assert gone.value.exit_code == 4 and "lost the database connection" in gone.value.message


def test_ensure_database_quotes_the_name_and_is_idempotent(pg) -> None:
    name = "Empire Mixed-Case"  # needs quoting: created exactly as named
    try:
        assert db.ensure_database(pg.dsn(), name) is True
        assert db.ensure_database(pg.dsn(), name) is False
        with db.connect(db.with_dbname(pg.dsn(), name), autocommit=True) as conn:
            assert db.run_query(conn, "select current_database() as d") == [{"d": name}]
    finally:
        with db.connect(pg.dsn(), autocommit=True) as admin:
            db.run_query(
                admin, db.SQL("drop database if exists {} with (force)").format(db.Identifier(name))
            )


def test_no_sql_runs_outside_the_seam() -> None:
    """Every statement goes through ops.db, which maps driver errors into the error tree."""
    import re
    from pathlib import Path

    root = Path(db.__file__).resolve().parent
    raw = re.compile(
        r"\.execute\(|\.executemany\(|\.transaction\(\)|\.cursor\(|\.copy\(|"
        r"^\s*(import psycopg|from psycopg)",
        re.MULTILINE,
    )
    offenders = [
        f"{path.relative_to(root.parent)}:{text[: m.start()].count(chr(10)) + 1}"
        for path in sorted(root.rglob("*.py"))
        # The state store is SQLite (the standard library's), not PostgreSQL.
        if path.name != "db.py" and path.relative_to(root).as_posix() != "alerts/store.py"
        for text in [path.read_text()]
        for m in raw.finditer(text)
    ]
    assert offenders == []
