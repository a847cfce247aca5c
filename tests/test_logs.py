"""Logging: JSON lines for machines, and redaction of every registered secret value."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from ops.logs import REDACTED, redact, register_secret_values, setup_logging


def test_redact_replaces_every_registered_value_longest_first() -> None:
    register_secret_values(["qzx7wvut", "qzx7wvut-longer-value", "short"])
    text = "x qzx7wvut-longer-value y qzx7wvut z short"
    assert redact(text) == f"x {REDACTED} y {REDACTED} z short"


def test_multiline_values_are_redacted_line_by_line() -> None:
    register_secret_values(["-----BEGIN KEY-----\nMIIBsecretline\n-----END KEY-----"])
    assert "MIIBsecretline" not in redact("line: MIIBsecretline")


def test_json_log_lines_are_redacted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log_file = tmp_path / "ops.log"
    setup_logging("info", "json", str(log_file))
    register_secret_values(["canary-LOG-4471"])
    logger = logging.getLogger("ops.test")
    logger.info("loaded %s from env", "canary-LOG-4471")
    try:
        raise ValueError("boom canary-LOG-4471")
    except ValueError:
        logger.exception("failed")
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines[0]["msg"] == f"loaded {REDACTED} from env"
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "ops.test"
    assert "canary-LOG-4471" not in err
    assert "canary-LOG-4471" not in log_file.read_text()
    assert "ValueError" in log_file.read_text()


def test_cli_log_format_json(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from ops.embedded import PostgresCluster
    from tests.conftest import server_tmpdir

    folder = server_tmpdir("logs")
    monkeypatch.chdir(folder)
    try:
        result = cli("--log-format", "json", "db", "start")
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in result.stderr.splitlines()]
        assert any("PostgreSQL started" in r["msg"] for r in records)
        assert all(r["logger"].startswith("ops.") for r in records)
    finally:
        PostgresCluster(folder / ".empire" / "pgdata").destroy()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_dsn_is_redacted_by_its_password_only() -> None:
    register_secret_values(
        ["postgresql://app:pa%40ss-w0rd@db.example:5432/empire", "postgresql://postgres@h:5/x"]
    )
    text = redact("pa@ss-w0rd | pa%40ss-w0rd | postgresql://app:****@db.example:5432/empire")
    assert text == f"{REDACTED} | {REDACTED} | postgresql://app:****@db.example:5432/empire"
    # a DSN without a password holds no secret: its masked form stays readable
    assert redact("on postgresql://postgres@h:5/x") == "on postgresql://postgres@h:5/x"


# A plain line: UTC timestamp with milliseconds, level, logger, message (README "Logging").
PLAIN_LINE = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR) ops\.[\w.]+: \S"
)


def _sync_logs(run_cli, *args: str, env: dict[str, str] | None = None) -> list[str]:
    """Stderr lines of a real `secrets sync` between two .env files (it logs at info)."""
    Path("src.env").write_text('SUPABASE_URL="https://abcdefghijklmnop.supabase.co"\n')
    Path("src.env").chmod(0o600)
    Path("dst.env").unlink(missing_ok=True)
    result = run_cli(
        *args, "secrets", "sync", "--from", "dotenv:src.env", "--to", "dotenv:dst.env", env=env
    )
    assert result.exit_code == 0, result.output
    return [line for line in result.stderr.splitlines() if line]


@pytest.mark.parametrize(
    ("args", "env", "config"),
    [
        (("--log-format", "plain"), None, ""),
        ((), {"EMPIRE_OPS_LOG_FORMAT": "plain"}, ""),
        ((), None, '[logging]\nformat = "plain"\n'),
        ((), None, ""),  # auto: stderr is a pipe here, not a terminal
    ],
)
def test_plain_log_lines_through_the_cli(
    run_cli, tmp_path: Path, args: tuple[str, ...], env: dict[str, str] | None, config: str
) -> None:
    if config:
        (tmp_path / "empire-ops.toml").write_text(config)
    lines = _sync_logs(run_cli, *args, env=env)
    assert lines, "the sync logged nothing"
    for line in lines:
        assert PLAIN_LINE.match(line), line
    assert any(" INFO ops.secrets." in line for line in lines)


def test_the_flag_wins_over_the_environment_and_the_config(run_cli, tmp_path: Path) -> None:
    (tmp_path / "empire-ops.toml").write_text('[logging]\nformat = "plain"\n')
    lines = _sync_logs(run_cli, "--log-format", "json", env={"EMPIRE_OPS_LOG_FORMAT": "text"})
    assert all(json.loads(line)["logger"].startswith("ops.") for line in lines)
    lines = _sync_logs(run_cli, env={"EMPIRE_OPS_LOG_FORMAT": "text"})
    assert all(re.match(r"I ", line) for line in lines), lines


def test_setup_logging_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="not one of auto, text, plain, json"):
        setup_logging("info", "xml")
