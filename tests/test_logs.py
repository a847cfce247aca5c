"""Logging: JSON lines for machines, and redaction of every registered secret value."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ops.logs import REDACTED, redact, register_secret_values, setup_logging


def test_redact_replaces_every_registered_value_longest_first() -> None:
    register_secret_values(["abcdef", "abcdef-longer-value", "short"])
    assert redact("x abcdef-longer-value y abcdef z short") == f"x {REDACTED} y {REDACTED} z short"


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
