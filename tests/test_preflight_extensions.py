"""Preflight's extension check: "available" means this role can create it.

Real servers: the embedded PostgreSQL 18 as superuser, and a low-privilege
owner like Supabase's demoted ``postgres`` (no superuser, no CREATE on the
database until granted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ops import db
from ops.preflight import _creatable, check_extensions
from tests.conftest import LowPrivDb


@dataclass
class _Config:
    extensions: list[str]

    def get(self, key: str) -> Any:
        assert key == "database.required_extensions"
        return self.extensions


@dataclass
class _Ctx:
    conn: Any
    config: _Config
    facts: dict[str, Any] = field(default_factory=dict)


def _check(dsn: str, *names: str, settings: str | None = None) -> dict[str, Any]:
    with db.connect(dsn, autocommit=True) as conn:
        if settings:
            db.run_query(conn, "select set_config('supautils.privileged_extensions', %s, false)",
                         (settings,))  # fmt: skip
        return {f.subject: f for f in check_extensions(_Ctx(conn, _Config(list(names))))}


def _trusted(dsn: str, name: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select bool_or(trusted) from pg_available_extension_versions where name = %s", (name,)
        ).fetchone()
    return bool(row and row[0])


def test_a_superuser_can_create_any_available_extension(fresh_db: str) -> None:
    f = _check(fresh_db, "vector")["vector"]
    assert f.code == "EXTENSION_AVAILABLE" and "(superuser)" in f.message


def test_an_untrusted_extension_needs_a_superuser_or_supautils(lowpriv_db: LowPrivDb) -> None:
    assert not _trusted(lowpriv_db.admin_dsn, "vector")  # pgvector is not marked trusted
    f = _check(lowpriv_db.dsn, "vector")["vector"]
    assert f.code == "EXTENSION_NOT_CREATABLE" and f.is_problem
    assert f"role {lowpriv_db.role} cannot create it" in f.message
    assert "vector is not a trusted extension" in f.message
    assert "supautils.privileged_extensions" in f.message
    assert "create extension vector with schema extensions" in f.message
    assert f.runbook == "runbooks/EXTENSION_NOT_CREATABLE.md"

    # A setting of that name where supautils is not loaded is a mere placeholder
    # (anyone can set one): it grants nothing, and the finding says so.
    still = _check(lowpriv_db.dsn, "vector", settings="pg_cron, vector,pgsodium")["vector"]
    assert still.code == "EXTENSION_NOT_CREATABLE"
    assert "supautils, whose privileged_extensions lists it, is not loaded" in still.message


def test_where_supautils_is_loaded_its_list_is_enough() -> None:
    # No test server loads supautils (a preloaded C library): the rule itself.
    row = {"superuser": False, "trusted": False, "can_create": False}
    assert _creatable({**row, "listed": True, "supautils_loaded": True}) == (
        "listed in supautils.privileged_extensions"
    )
    assert _creatable({**row, "listed": True, "supautils_loaded": False}) is None
    assert _creatable({**row, "listed": False, "supautils_loaded": True}) is None
    assert _creatable({**row, "listed": False, "supautils_loaded": False, "superuser": True})
    assert _creatable({**row, "listed": False, "supautils_loaded": False, "trusted": True}) is None


def test_a_trusted_extension_needs_create_on_the_database(lowpriv_db: LowPrivDb) -> None:
    name = "pg_trgm"
    if not _trusted(lowpriv_db.admin_dsn, name):
        pytest.skip(f"{name} is not a trusted extension on this build")
    f = _check(lowpriv_db.dsn, name)[name]
    assert f.code == "EXTENSION_NOT_CREATABLE"
    assert f"lacks CREATE on database {lowpriv_db.dbname}" in f.message
    assert f"grant CREATE ON DATABASE {lowpriv_db.dbname} TO {lowpriv_db.role}" in f.message

    with psycopg.connect(lowpriv_db.admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("grant create on database {} to {}").format(
                sql.Identifier(lowpriv_db.dbname), sql.Identifier(lowpriv_db.role)
            )
        )
    ok = _check(lowpriv_db.dsn, name)[name]
    assert ok.code == "EXTENSION_AVAILABLE" and "trusted extension" in ok.message
    # ...and it really can: the claim is true.
    with psycopg.connect(lowpriv_db.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create extension {}").format(sql.Identifier(name)))


def test_an_installed_extension_is_ok_and_a_missing_one_unavailable(migrated_db: str) -> None:
    found = _check(migrated_db, "vector", "no_such_extension")
    assert found["vector"].code == "EXTENSION_INSTALLED"
    assert found["no_such_extension"].code == "EXTENSION_UNAVAILABLE"
