"""Logging: JSON lines for machines, and redaction of every registered secret value."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from ops.logs import (
    REDACTED,
    forget_public_values,
    redact,
    register_secret_values,
    setup_logging,
)


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


def test_the_dashboards_loggers_share_the_redacted_handlers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """dashboards/ is a top-level package: its lines go where ops's go, redacted, once."""
    setup_logging("info", "plain")
    setup_logging("info", "plain")  # idempotent: still one handler each
    register_secret_values(["canary-DASH-9913"])
    logging.getLogger("dashboards.collect").warning("part failed: canary-DASH-9913")
    err = capsys.readouterr().err
    assert err.count("part failed") == 1 and "canary-DASH-9913" not in err
    assert REDACTED in err


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


# -- values declared not secret (docs/decisions/0010) -------------------------------------
CANARY = "Zq8vN3xK1pL7wR2tY5uB-canary"


def test_a_public_value_is_forgotten_and_the_secrets_stay() -> None:
    register_secret_values(["smtp.example.com", "ops-team@example.com", CANARY])
    forget_public_values(["smtp.example.com", "ops-team@example.com"], keep=[CANARY])
    text = f"to ops-team@example.com via smtp.example.com with {CANARY}"
    assert redact(text) == f"to ops-team@example.com via smtp.example.com with {REDACTED}"
    forget_public_values([CANARY], keep=[])  # the last value: no pattern is left
    assert redact(CANARY) == CANARY


def test_a_public_value_that_is_also_a_secret_stays_redacted() -> None:
    register_secret_values(["shared-value-123"])
    forget_public_values(["shared-value-123"], keep=["other-secret-99", "shared-value-123"])
    assert redact("x shared-value-123") == f"x {REDACTED}"


def test_a_secret_containing_a_public_value_is_redacted_whole() -> None:
    secret = f"pre-{CANARY}-smtp.example.com-post"
    register_secret_values(["smtp.example.com", secret])
    forget_public_values(["smtp.example.com"], keep=[secret])
    assert redact(f"a {secret} b") == f"a {REDACTED} b"
    # The public value is part of a secret, so it stays registered: a cut secret
    # (a truncated line) keeps that part hidden too.
    assert redact(f"a {secret[:-5]}") == f"a pre-{CANARY}-{REDACTED}"
    assert redact("via smtp.example.com") == f"via {REDACTED}"


def test_a_public_value_containing_a_secret_keeps_the_secret_redacted() -> None:
    register_secret_values(["mail.tenant-8f2kq9.example.com", "tenant-8f2kq9"])
    forget_public_values(["mail.tenant-8f2kq9.example.com"], keep=["tenant-8f2kq9"])
    assert redact("via mail.tenant-8f2kq9.example.com") == f"via mail.{REDACTED}.example.com"


def test_a_public_value_overlapping_a_secret_no_longer_eats_its_head() -> None:
    """Forgetting a public value can only give secrets back to redaction, never take them."""
    public, secret = "smtp.example.com", f"e.com{CANARY}"
    register_secret_values([public, secret])
    text = f"smtp.example.com{CANARY}"  # the public value's tail is the secret's head
    assert CANARY in redact(text)  # before: the public value matched first
    forget_public_values([public], keep=[secret])
    assert redact(text) == f"smtp.exampl{REDACTED}"


def test_a_dsn_is_compared_by_what_is_registered_of_it() -> None:
    """A DSN with a password is registered whole (and its password); one without, not at all."""
    with_pw = "postgresql://app:Pw-7hN2qL9xR4@smtp.example.com:5432/empire"
    without = "postgresql://app@mail.example.org:5432/empire"
    register_secret_values([with_pw, without, "smtp.example.com", "mail.example.org"])
    forget_public_values(["smtp.example.com", "mail.example.org"], keep=[with_pw, without])
    assert redact("smtp.example.com mail.example.org") == f"{REDACTED} mail.example.org"


def test_the_lines_of_a_multiline_public_value_go_with_it() -> None:
    public = "first-line-public\nsecond-line-public"
    register_secret_values([public, f"x-{CANARY}\nsecond-line-public"])
    forget_public_values([public], keep=[f"x-{CANARY}\nsecond-line-public"])
    assert redact("first-line-public") == "first-line-public"
    assert redact("second-line-public") == REDACTED  # also a line of a secret
