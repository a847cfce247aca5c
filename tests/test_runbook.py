"""`empire-ops runbook CODE`: a finding's runbook, from the checkout or the installed copy."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_runbook_prints_the_page_of_a_code_or_path(cli) -> None:
    text = cli("runbook", "SCHEMA_PENDING_MIGRATIONS")
    assert text.exit_code == 0, text.output
    assert text.stdout == (REPO / "runbooks" / "SCHEMA_PENDING_MIGRATIONS.md").read_text() + "\n"
    path = cli("runbook", "runbooks/MIGRATE_NOT_CONFIRMED.md", "--path")
    assert Path(path.stdout.strip()) == REPO / "runbooks" / "MIGRATE_NOT_CONFIRMED.md"


def test_an_unknown_code_is_a_usage_error_with_the_nearest(cli) -> None:
    result = cli("runbook", "DB_UNREACHABEL")
    assert result.exit_code == 2
    assert "no runbook for DB_UNREACHABEL" in result.stderr and "DB_UNREACHABLE" in result.stderr
    assert cli("runbook", "../../etc/passwd").exit_code == 2
