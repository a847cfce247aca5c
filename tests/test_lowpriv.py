"""The low-privilege tier: a role that owns its database but is not superuser and has no
CREATE on it, as Supabase's own ``postgres`` role is not superuser.

Every command answers with its documented exit code and a message that says
what is missing and how to grant it: never "internal error" (10), never a raw
driver error without a hint.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from ops import db
from ops.errors import DatabaseError
from tests.conftest import LowPrivDb

pytestmark = pytest.mark.usefixtures("pg")


def _ordinary(result: Any) -> None:
    """No exit 10, no traceback, no driver class name leaking instead of a message."""
    assert result.exit_code in (0, 1, 2, 3, 4, 5), result.output
    for raw in ("internal error", "Traceback", "InsufficientPrivilege", "psycopg"):
        assert raw not in result.output


def _run(cli: Any, lp: LowPrivDb, *args: str) -> Any:
    result = cli(*args, env={"DATABASE_URL": lp.dsn})
    _ordinary(result)
    return result


def test_the_fixture_role_really_is_low_privilege(lowpriv_db: LowPrivDb) -> None:
    with psycopg.connect(lowpriv_db.dsn) as conn:
        row = conn.execute(
            "select rolsuper, rolcreatedb, rolcreaterole, "
            "has_database_privilege(current_database(), 'CREATE') as can_create, "
            "pg_get_userbyid(d.datdba) = current_user as owns "
            "from pg_roles r, pg_database d "
            "where r.rolname = current_user and d.datname = current_database()"
        ).fetchone()
    assert row == (False, False, False, False, True)


def test_the_seam_names_the_missing_privilege(lowpriv_db: LowPrivDb) -> None:
    with db.connect(lowpriv_db.dsn, autocommit=True) as conn:
        with pytest.raises(DatabaseError) as info:
            db.run_query(conn, db.SQL("create schema {}").format(db.Identifier("x")))
        with pytest.raises(DatabaseError) as in_tx, db.transaction(conn):
            db.run_query(conn, "create schema y")
    for err in (info.value, in_tx.value):
        assert err.exit_code == 1 and err.sqlstate == "42501"
        assert err.message == f"permission denied for database {lowpriv_db.dbname}"
        assert f"GRANT CREATE ON DATABASE {lowpriv_db.dbname} TO {lowpriv_db.role}" in (
            err.hint or ""
        )


def test_migrate_on_an_empty_database_without_create(cli: Any, lowpriv_db: LowPrivDb) -> None:
    status = _run(cli, lowpriv_db, "migrate", "status")
    assert status.exit_code == 1 and "pending" in status.stdout

    up = _run(cli, lowpriv_db, "migrate", "up", "--yes")
    assert up.exit_code == 1
    assert f"error: permission denied for database {lowpriv_db.dbname}" in up.stderr
    assert f"hint: role {lowpriv_db.role} lacks CREATE" in up.stderr
    assert f"GRANT CREATE ON DATABASE {lowpriv_db.dbname} TO {lowpriv_db.role}" in up.stderr
    # nothing was half-made
    with psycopg.connect(lowpriv_db.admin_dsn) as conn:
        assert conn.execute("select to_regnamespace('supabase_migrations')").fetchone() == (None,)

    whole = _run(cli, lowpriv_db, "up", "--yes")
    assert whole.exit_code == 1 and "MIGRATE_FAILED" in whole.stdout
    assert "GRANT CREATE ON DATABASE" in " ".join(whole.stdout.split())


@pytest.mark.parametrize("command", [("preflight",), ("migrate", "check")])
def test_checks_on_an_empty_database_without_create(
    cli: Any, lowpriv_db: LowPrivDb, command: tuple[str, ...]
) -> None:
    result = _run(cli, lowpriv_db, *command)
    assert result.exit_code == 1
    assert "SCHEMA_PENDING_MIGRATIONS" in result.stdout and "runbooks/" in result.stdout


def test_seed_demo_on_an_empty_database_without_create(cli: Any, lowpriv_db: LowPrivDb) -> None:
    result = _run(cli, lowpriv_db, "db", "seed-demo", "--yes", "--scale", "0.01")
    assert result.exit_code == 1
    assert "the Empire schema is not applied" in result.stderr
    assert "hint: apply the migrations first" in result.stderr


def test_without_access_to_the_history_the_hint_names_the_grant(
    cli: Any, lowpriv_db: LowPrivDb, pg: Any, migrated_template: str
) -> None:
    """The schema exists (made by the superuser) but the role may not read its history."""
    from tests.conftest import low_privilege_db

    for lp in low_privilege_db(pg, migrated_template, "lh"):
        result = _run(cli, lp, "migrate", "status")
        assert result.exit_code == 1
        assert "error: permission denied for schema supabase_migrations" in result.stderr
        assert f"GRANT USAGE, CREATE ON SCHEMA supabase_migrations TO {lp.role}" in result.stderr

        check = _run(cli, lp, "preflight")
        assert check.exit_code == 1
        flat = " ".join(check.stdout.split())
        assert "cannot read the migration status: permission denied for schema" in flat
        assert "GRANT USAGE, CREATE ON SCHEMA supabase_migrations" in flat

        seed = _run(cli, lp, "db", "seed-demo", "--yes", "--scale", "0.01")
        assert seed.exit_code == 1
        # the credentials' schema (empire_private) or a table, whichever is read first
        assert "permission denied for " in seed.stderr and "hint: " in seed.stderr


def test_a_managed_projects_grants_are_enough_for_the_checks(
    cli: Any, lowpriv_migrated_db: LowPrivDb
) -> None:
    """Migrations applied by the superuser; the owner may read the history and use the tables."""
    lp = lowpriv_migrated_db
    assert _run(cli, lp, "migrate", "status").exit_code == 0
    up = _run(cli, lp, "migrate", "up", "--yes")
    assert up.exit_code == 0 and "nothing to do" in up.stdout
    assert _run(cli, lp, "preflight").exit_code == 0
    assert _run(cli, lp, "migrate", "check").exit_code == 0
    assert "result: ok" in _run(cli, lp, "up", "--yes").stdout
    # RLS applies to a role that does not own the tables: COPY is refused, with the reason
    seed = _run(cli, lp, "db", "seed-demo", "--yes", "--scale", "0.01")
    assert seed.exit_code == 1
    assert "row-level security" in seed.stderr and "hint: nothing was written" in seed.stderr
