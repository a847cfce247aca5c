"""Fixtures for a Supabase-shaped database (see tests/supabase/project.py and README.md).

``supabase_project`` runs on the embedded PostgreSQL 18, ``supabase_project_pg15``
on the system PostgreSQL 15. Each server is built once per session (its own
cluster, whose superuser is supabase_admin) into a template database; every
test gets a fresh clone and its own copy of the user's project folder.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG15_BIN, require_service, server_tmpdir
from tests.supabase.project import (
    SupabaseProject,
    SupabaseServer,
    build_server,
    destroy_server,
    fresh_project,
)


def _server(bin_dir: Path | None, label: str) -> Iterator[SupabaseServer]:
    root = server_tmpdir(f"supabase-{label}")
    server = build_server(bin_dir, root, label)
    # Build cost is part of the suite's budget: say it in the -s / -rA output.
    print(f"\nsupabase fixture: {label} built in {server.build_seconds:.2f} s", file=sys.stderr)
    yield server
    destroy_server(server, root)


@pytest.fixture(scope="session")
def supabase_server() -> Iterator[SupabaseServer]:
    """The Supabase-shaped cluster on the embedded PostgreSQL 18 (built once)."""
    yield from _server(None, "pg18")


@pytest.fixture(scope="session")
def supabase_server_pg15() -> Iterator[SupabaseServer]:
    """The Supabase-shaped cluster on the system PostgreSQL 15 (built once)."""
    require_service(
        (PG15_BIN / "postgres").exists(),
        f"system PostgreSQL 15 binaries not found in {PG15_BIN} (apt-get install postgresql-15)",
    )
    yield from _server(PG15_BIN, "pg15")


@pytest.fixture
def supabase_project(supabase_server: SupabaseServer, tmp_path: Path) -> Iterator[SupabaseProject]:
    """A fresh Supabase-shaped database on PostgreSQL 18, with the user's project folder."""
    with fresh_project(supabase_server, tmp_path) as project:
        yield project


@pytest.fixture
def supabase_project_pg15(
    supabase_server_pg15: SupabaseServer, tmp_path: Path
) -> Iterator[SupabaseProject]:
    """A fresh Supabase-shaped database on PostgreSQL 15, with the user's project folder."""
    with fresh_project(supabase_server_pg15, tmp_path) as project:
        yield project


@pytest.fixture(params=["pg18", "pg15"])
def any_supabase_project(request: pytest.FixtureRequest) -> SupabaseProject:
    """The Supabase-shaped project on each server in turn."""
    name = "supabase_project" if request.param == "pg18" else "supabase_project_pg15"
    project: SupabaseProject = request.getfixturevalue(name)
    return project


@pytest.fixture
def empire_ready_project(any_supabase_project: SupabaseProject) -> SupabaseProject:
    """The project on each server, with pgvector enabled as Supabase's dashboard does.

    On Supabase, ``postgres`` creates ``vector`` through supautils, which no test
    server loads, so it is created here as supabase_admin first (the Empire's own
    ``create extension if not exists`` then finds it). A server without pgvector
    (Debian's PostgreSQL 15 has no package of it) cannot hold the Empire schema:
    skipped, with that reason.
    """
    import psycopg

    project = any_supabase_project
    with psycopg.connect(project.admin_dsn, autocommit=True) as conn:
        if not conn.execute(
            "select 1 from pg_available_extensions where name = 'vector'"
        ).fetchone():
            pytest.skip(
                f"pgvector is not installed on the {project.server_label} server: the Empire "
                "schema needs it (no postgresql-15-pgvector package exists for this Debian)"
            )
        conn.execute("create extension if not exists vector with schema extensions")
    return project
