"""Adoption of the Empire schema by a project whose Supabase CLI history is newer.

The project (tests/supabase/project.py) has two migrations of its own in
``supabase/migrations``, applied by the CLI, both newer than the Empire's
shipped versions. After `empire-ops migrate up` (no --include-all, no --yes:
the environment is named) the CLI's own pending logic, ported in
tests/supabase/cli_port.py, must find nothing pending and nothing missing, and
the two tools must list the same versions.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from ops.migrate.files import SHIPPED_DIR, load_migrations
from tests.supabase import cli_port
from tests.supabase.project import SupabaseProject

SHIPPED = load_migrations([SHIPPED_DIR])


def _cli_view(project: SupabaseProject) -> tuple[list[Any], list[str]]:
    """(local files, remote versions) as `supabase migration list` reads them."""
    local = cli_port.list_local_migrations(project.migrations_dir)
    with psycopg.connect(project.dsn) as conn:
        remote = cli_port.list_remote_migrations(conn)
    return local, remote


@pytest.fixture
def project(empire_ready_project: SupabaseProject, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(empire_ready_project.root)
    return empire_ready_project


def test_a_newer_cli_history_is_adopted_without_flags_and_the_cli_agrees(
    project: SupabaseProject, cli: Any
) -> None:
    env = {"DATABASE_URL": project.dsn, "EMPIRE_ENV": "dev"}
    before_local, before_remote = _cli_view(project)
    assert before_remote == project.user_versions
    assert cli_port.find_pending_migrations(before_local, before_remote) == []

    status = cli("migrate", "status", "--json", env=env)
    codes = {f["code"] for f in json.loads(status.stdout)["findings"]}
    assert status.exit_code == 1 and "MIGRATE_NOT_ADOPTED" in codes

    up = cli("migrate", "up", env=env)
    assert up.exit_code == 0, up.output
    assert up.stdout.count("adopted ") == len(SHIPPED)
    assert up.stdout.count("applied ") == len(SHIPPED)

    local, remote = _cli_view(project)
    # `supabase db push` would push nothing and find no remote version without its file.
    assert cli_port.find_pending_migrations(local, remote) == []
    assert [cli_port._version_of(p) for p in local] == remote
    assert remote[:2] == project.user_versions and len(remote) == len(SHIPPED) + 2
    # ... and empire-ops lists exactly the versions the CLI lists, all applied.
    data = json.loads(cli("migrate", "status", "--json", env=env).stdout)["data"]
    assert [m["version"] for m in data["migrations"]] == remote
    assert {m["state"] for m in data["migrations"]} == {"applied"}
    recorded = {m["version"]: m["recorded_by"] for m in data["migrations"]}
    assert {recorded[v] for v in project.user_versions} == {"supabase-cli"}
    assert {recorded[v] for v in remote[2:]} == {"empire-ops"}


def test_the_cli_would_push_a_new_file_after_adoption_and_empire_ops_sees_it(
    project: SupabaseProject, cli: Any
) -> None:
    env = {"DATABASE_URL": project.dsn, "EMPIRE_ENV": "dev"}
    assert cli("migrate", "up", env=env).exit_code == 0
    new = project.migrations_dir / "29990101000000_add_done.sql"
    new.write_text("alter table public.todos add column done boolean not null default false;\n")
    local, remote = _cli_view(project)
    assert cli_port.find_pending_migrations(local, remote) == [new]
    with psycopg.connect(project.dsn) as conn:
        cli_port.cli_apply_migration(conn, new)
    verify = json.loads(cli("migrate", "verify", "--json", env=env).stdout)
    by_cli = [f["subject"] for f in verify["findings"] if f["code"] == "MIGRATE_APPLIED_BY_CLI"]
    assert sorted(by_cli) == sorted(
        [p.name for p in local if cli_port._version_of(p) in {*project.user_versions}] + [new.name]
    )
    assert [f["code"] for f in verify["findings"] if f["severity"] == "error"] == []


def test_verify_compares_the_cli_statements_with_the_file(
    project: SupabaseProject, cli: Any
) -> None:
    env = {"DATABASE_URL": project.dsn, "EMPIRE_ENV": "dev"}
    assert cli("migrate", "up", env=env).exit_code == 0
    first = sorted(project.migrations_dir.glob(f"{project.user_versions[0]}_*.sql"))[0]
    first.write_text(first.read_text() + "\ncreate index todos_extra on public.todos (id);\n")
    verify = cli("migrate", "verify", "--json", env=env)
    errors = [
        (f["code"], f["subject"])
        for f in json.loads(verify.stdout)["findings"]
        if f["severity"] == "error"
    ]
    assert verify.exit_code == 1
    assert errors == [("MIGRATE_CLI_STATEMENTS_MISMATCH", first.stem)]


def test_down_stops_above_the_users_own_migrations(project: SupabaseProject, cli: Any) -> None:
    env = {"DATABASE_URL": project.dsn, "EMPIRE_ENV": "dev"}
    assert cli("migrate", "up", env=env).exit_code == 0
    refused = cli("migrate", "down", "--to", "0", env=env)
    assert refused.exit_code == 1
    assert "applied by Supabase CLI" in refused.stderr
    assert f"--to {project.user_versions[-1]}" in refused.stderr
    back = cli("migrate", "down", "--to", project.user_versions[-1], env=env)
    assert back.exit_code == 0, back.output
    local, remote = _cli_view(project)
    assert remote == project.user_versions
    with psycopg.connect(project.dsn) as conn:  # enabled before the Empire came: not ours to drop
        assert conn.execute("select 1 from pg_extension where extname = 'vector'").fetchone()
    # The adopted files stay (they are the project's now); the CLI sees them as pending.
    assert len(cli_port.find_pending_migrations(local, remote)) == len(SHIPPED)
