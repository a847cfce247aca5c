"""Export renderings: every awkward value reads back unchanged through python-dotenv."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest
from dotenv import dotenv_values

from ops.errors import UsageError
from ops.secrets.export import export_to_file, render_dotenv
from ops.secrets.sources.dotenv import quote_value

AWKWARD = {
    "NEWLINE": "line one\nline two\r\nline three",
    "QUOTES": "it's a \"quoted\" 'value'",
    "DOLLAR": "pa$$word${HOME}$(whoami)`id`",
    "BACKSLASH": "C:\\path\\n\\t\\\\end\\",
    "UNICODE": "pässwörd-密码-🔑",
    "HASH": "value # not a comment",
    "SPACES": "  leading and trailing  ",
    "EQUALS": "a=b==c",
    "EMPTY": "",
    "ESCAPES": "\\a\\b\\f\\v\\x41\\u0041",
    "TAB": "a\tb",
    "PEM": "-----BEGIN KEY-----\nMIIE\n-----END KEY-----\n",
}


def test_every_awkward_value_round_trips_through_python_dotenv() -> None:
    text = render_dotenv(AWKWARD)
    parsed = dotenv_values(stream=io.StringIO(text), interpolate=False)
    assert parsed == AWKWARD


@pytest.mark.parametrize("value", list(AWKWARD.values()))
def test_each_value_quotes_back_to_itself(value: str) -> None:
    parsed = dotenv_values(stream=io.StringIO(f"K={quote_value(value)}\n"), interpolate=False)
    assert parsed["K"] == value


def test_export_files_are_0600_and_json_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.json"
    assert export_to_file(AWKWARD, "json", out) == len(AWKWARD)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text(encoding="utf-8")) == AWKWARD
    env = tmp_path / "out.env"
    env.write_text("old")
    env.chmod(0o644)
    with pytest.raises(UsageError, match="already exists"):
        export_to_file(AWKWARD, "dotenv", env)
    assert env.read_text() == "old"
    export_to_file(AWKWARD, "dotenv", env, force=True)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert dotenv_values(env, interpolate=False) == AWKWARD
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_unknown_format_and_folder_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        export_to_file({"A": "b"}, "yaml", tmp_path / "x")
    with pytest.raises(UsageError):
        export_to_file({"A": "b"}, "json", tmp_path)
