"""The one error handler: each OpsError maps to its fixed exit code, redacted, with a hint."""

from __future__ import annotations

import errno
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ops import errors
from ops.cli import OpsGroup, app
from ops.logs import register_secret_values


def _app_raising(exc: BaseException) -> typer.Typer:
    test_app = typer.Typer(cls=OpsGroup)

    @test_app.callback()
    def _cb(ctx: typer.Context, debug: bool = typer.Option(False, "--debug")) -> None:
        from ops.cli import AppState

        ctx.obj = AppState(debug=debug)

    @test_app.command()
    def boom() -> None:
        raise exc

    return test_app


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (errors.OpsError("failed"), 1),
        (errors.ConfigError("bad config"), 2),
        (errors.UsageError("bad usage"), 2),
        (errors.SecretsError("missing secret"), 3),
        (errors.DatabaseUnreachable("db down"), 4),
        (errors.DependencyUnreachable("vault down"), 4),
        (errors.LockBusy("busy"), 5),
        (errors.MigrationError("migration failed"), 1),
        (errors.BackupError("backup failed"), 1),
        (errors.AlertError("smtp failed"), 1),
        (RuntimeError("a bug"), 10),
    ],
)
def test_exit_code_mapping(exc: BaseException, code: int) -> None:
    result = CliRunner().invoke(_app_raising(exc), ["boom"])
    assert result.exit_code == code
    assert str(exc) in result.stderr
    assert "Traceback" not in result.stderr


def test_message_and_hint_on_one_line_each() -> None:
    exc = errors.LockBusy("another run holds the lock", hint="wait for it")
    result = CliRunner().invoke(_app_raising(exc), ["boom"])
    assert result.stderr.splitlines() == ["error: another run holds the lock", "hint: wait for it"]


def test_traceback_only_with_debug() -> None:
    exc = errors.OpsError("nope")
    result = CliRunner().invoke(_app_raising(exc), ["--debug", "boom"])
    assert "Traceback" in result.stderr
    assert result.exit_code == 1


def test_internal_error_says_it_is_a_bug() -> None:
    result = CliRunner().invoke(_app_raising(KeyError("x")), ["boom"])
    assert result.exit_code == 10
    assert "internal error: KeyError" in result.stderr
    assert "--debug" in result.stderr


def test_error_text_is_redacted_even_in_debug_tracebacks() -> None:
    canary = "canary-Zx81-secret-value"
    register_secret_values([canary])
    result = CliRunner().invoke(
        _app_raising(errors.OpsError(f"leaked {canary}")), ["--debug", "boom"]
    )
    assert canary not in result.output
    assert "[REDACTED]" in result.stderr


def test_usage_errors_exit_2() -> None:
    result = CliRunner().invoke(app, ["config", "no-such-command"])
    assert result.exit_code == 2


def test_help_lists_the_foundation_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("config", "db", "preflight", "up"):
        assert name in result.stdout


@pytest.mark.parametrize(
    ("exc", "code", "words"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/srv/x/f"), 2, "permission denied"),
        (OSError(errno.EROFS, "Read-only file system", "/srv/f"), 2, "read-only"),
        (OSError(errno.EPERM, "Operation not permitted", "/sys/f"), 2, "not permitted"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/etc/hosts/x"), 2, "not a folder"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp"), 2, "a folder, not a file"),
        (OSError(errno.ENAMETOOLONG, "File name too long", "/t/" + "n" * 300), 2, "too long"),
        (OSError(errno.ENOSPC, "No space left on device", "/srv/f"), 1, "disk is full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded", "/srv/f"), 1, "quota"),
        (OSError(errno.E2BIG, "Argument list too long", "sh"), 2, "too large"),
    ],
)
def test_a_fault_of_the_machine_that_escapes_is_not_a_bug(
    exc: OSError, code: int, words: str
) -> None:
    """The one handler's safety net: OSErrors of these kinds get their documented code."""
    result = CliRunner().invoke(_app_raising(exc), ["boom"])
    assert result.exit_code == code
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: cannot use ") and words in lines[0]
    assert exc.filename in lines[0]
    assert lines[1].startswith("hint: ")
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_an_oserror_of_another_kind_is_still_a_bug() -> None:
    result = CliRunner().invoke(_app_raising(ConnectionResetError(errno.ECONNRESET, "x")), ["boom"])
    assert result.exit_code == 10 and "internal error" in result.stderr


def test_help_keeps_the_config_sections_it_names(cli: Any) -> None:
    """Typer reads help as rich markup, where ``[migrate]`` is a style tag and vanishes."""
    for args, section in [
        ((), "[logging] format"),
        (("migrate", "init"), "[migrate] supabase_dir"),
        (("migrate", "new"), "[migrate] dirs"),
        (("secrets", "snapshot"), "[secrets.snapshot] location"),
    ]:
        result = cli(*args, "--help", env={"COLUMNS": "300"})
        assert section in result.stdout, (args, result.stdout)
