"""Findings: severities, exit codes from the worst finding, and their renderings."""

from __future__ import annotations

import json

from ops import findings as F
from ops.errors import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SECRETS,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
)


def test_no_findings_is_ok() -> None:
    assert F.exit_code_for([]) == EXIT_OK
    assert F.worst([]) is F.Severity.OK


def test_warnings_do_not_fail() -> None:
    found = [F.ok("A", "x", "fine"), F.warning("B", "y", "hmm"), F.info("C", "z", "fyi")]
    assert F.exit_code_for(found) == EXIT_OK
    assert F.worst(found) is F.Severity.WARNING


def test_an_error_fails_with_1_by_default() -> None:
    assert F.exit_code_for([F.error("X", "t", "bad")]) == EXIT_FAILED


def test_the_most_specific_exit_code_wins() -> None:
    found = [
        F.error("GENERIC", "a", "x"),
        F.critical("DB_UNREACHABLE", "db", "down", exit_code=EXIT_UNREACHABLE),
        F.error("SECRETS_MISSING", "KEY", "missing", exit_code=EXIT_SECRETS),
    ]
    assert F.exit_code_for(found) == EXIT_SECRETS
    assert (
        F.exit_code_for([*found, F.error("CONFIG", "c", "x", exit_code=EXIT_USAGE)]) == EXIT_USAGE
    )


def test_exit_code_of_a_warning_is_zero_even_with_an_override() -> None:
    assert F.warning("X", "s", "m", exit_code=EXIT_SECRETS).effective_exit_code == EXIT_OK


def test_exit_5_comes_after_2_3_4_and_before_1() -> None:
    """README "Exit codes": 2 before 3 before 4 before 5 before 1."""
    busy = F.error("LOCK", "l", "busy", exit_code=EXIT_BUSY)
    generic = F.error("GENERIC", "g", "x")
    assert F.exit_code_for([generic, busy]) == EXIT_BUSY
    for code in (EXIT_USAGE, EXIT_SECRETS, EXIT_UNREACHABLE):
        assert F.exit_code_for([busy, generic, F.error("C", "c", "x", exit_code=code)]) == code


def test_json_envelope_is_stable() -> None:
    data = json.loads(F.to_json([F.error("X", "s", "m", runbook="runbooks/X.md")], {"env": "dev"}))
    assert list(data) == ["schema_version", "ok", "exit_code", "findings", "data"]
    assert data["schema_version"] == F.SCHEMA_VERSION == 1
    assert data["ok"] is False and data["exit_code"] == 1 and data["data"] == {"env": "dev"}
    assert data["findings"][0] == {
        "code": "X",
        "severity": "error",
        "subject": "s",
        "message": "m",
        "runbook": "runbooks/X.md",
        "exit_code": 1,
        "details": {},
    }
    # a command without findings passes the code it exits with
    assert json.loads(F.to_json(data={"differs": True}, exit_code=1))["ok"] is False


def test_table_shows_every_finding_and_the_runbook_of_problems() -> None:
    text = F.render_table(
        [
            F.ok("DB_REACHABLE", "db", "connected"),
            F.error("X_BAD", "thing", "broken", runbook="r.md"),
        ]
    )
    assert "DB_REACHABLE" in text and "X_BAD" in text
    assert "runbook: r.md" in text
    assert "\033[" not in text


def test_severity_parse() -> None:
    assert F.Severity.parse("Warning") is F.Severity.WARNING
    try:
        F.Severity.parse("fatal")
    except ValueError as exc:
        assert "known: ok, info" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_findings_report_mixin_gives_exit_code_and_json_with_extra_keys() -> None:
    from dataclasses import dataclass
    from typing import Any

    @dataclass
    class Report(F.FindingsReport):
        findings: list[F.Finding]
        tables: int

        def extra(self) -> dict[str, Any]:
            return {"tables": self.tables}

    report = Report([F.warning("W", "s", "m"), F.error("E", "s", "m", exit_code=3)], 7)
    assert report.exit_code == 3
    data = json.loads(report.to_json())
    assert data["exit_code"] == 3 and len(data["findings"]) == 2
    assert data["data"] == {
        "worst": "error",
        "summary": {"ok": 0, "info": 0, "warning": 1, "error": 1, "critical": 0},
        "tables": 7,
    }
