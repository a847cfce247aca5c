"""`migrate new NAME`: a name that cannot be a plain file name is a usage error (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.errors import UsageError
from ops.migrate.files import MAX_NAME_LENGTH, check_migration_name, create_migration


@pytest.mark.parametrize("name", ["add_orders", "a", "v2_backfill", "_x_", "x" * MAX_NAME_LENGTH])
def test_plain_names_are_accepted(name: str) -> None:
    assert check_migration_name(name) == name


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("Add Orders table!", "'add_orders_table'"),
        ("add-orders", "'add_orders'"),
        ("add orders", "'add_orders'"),
        ("../escape", "'escape'"),
        ("naïve_name", "'na_ve_name'"),
        ("", "use words"),
        ("___", "use words"),
        ("!!!", "use words"),
    ],
)
def test_other_characters_are_refused_with_a_name_that_would_do(name: str, fix: str) -> None:
    with pytest.raises(UsageError) as info:
        check_migration_name(name)
    assert info.value.exit_code == 2
    assert "lower-case letters, digits and underscores" in info.value.message
    assert fix in (info.value.hint or "")


def test_an_overlong_name_is_refused_without_echoing_it() -> None:
    name = "add_" + "very_" * 60 + "long"
    with pytest.raises(UsageError) as info:
        check_migration_name(name)
    assert f"{len(name)} characters long; the limit is {MAX_NAME_LENGTH}" in info.value.message
    assert name not in info.value.message
    suggestion = (info.value.hint or "").split("'")[1]
    assert check_migration_name(suggestion) == suggestion


def test_a_refused_name_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        create_migration("x" * 300, tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["Bad Name", "x" * 256])
def test_cli_migrate_new_exits_2_with_the_fix(cli, tmp_path: Path, name: str) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    result = cli("migrate", "new", name, "--dir", str(folder))
    assert result.exit_code == 2, result.output
    assert "hint:" in result.stderr
    assert list(folder.iterdir()) == []
