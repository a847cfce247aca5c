"""The dotenv source: python-dotenv syntax, no interpolation, clear errors, warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.config import load_config
from ops.secrets import load_secrets
from ops.secrets.errors import SourceInvalid
from ops.secrets.sources import source_from_url
from ops.secrets.sources.dotenv import quote_value
from tests.secrets.conftest import AWKWARD, write_config


def env_file(path: Path, text: bytes | str, mode: int = 0o600) -> Path:
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_syntax_quotes_multiline_export_bom_crlf(tmp_path: Path) -> None:
    env_file(
        tmp_path / ".env",
        b"\xef\xbb\xbf# comment\r\n"
        b"export PLAIN=abc123\r\n"
        b"SINGLE='single $HOME literally'\r\n"
        b'DOUBLE="a\\nb \\"q\\""\r\n'
        b'MULTI="first\nsecond"\n'
        b"DOLLAR=pa$$w0rd${HOME}\n"
        b"SPACED = value with spaces  # trailing comment\n",
    )
    got = source_from_url("dotenv:.env", load_config()).fetch()
    values = {k: v.value for k, v in got.items()}
    assert values["PLAIN"] == "abc123"
    assert values["SINGLE"] == "single $HOME literally"
    assert values["DOUBLE"] == 'a\nb "q"'
    assert values["MULTI"] == "first\nsecond"
    assert values["DOLLAR"] == "pa$$w0rd${HOME}"  # interpolation is off by default
    assert values["SPACED"] == "value with spaces"
    assert got["PLAIN"].detail == ".env:2" and got["PLAIN"].source == "dotenv"


def test_interpolation_can_be_switched_on(tmp_path: Path) -> None:
    write_config(tmp_path, "[secrets.sources.dotenv]\ninterpolate = true\n")
    env_file(tmp_path / ".env", "BASE=abc\nFULL=${BASE}-xyz\n")
    loaded = load_secrets(load_config())
    assert loaded.secrets["FULL"] == "abc-xyz"


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    env_file(tmp_path / ".env", "GOOD=1\nNOT A VALID LINE\nOTHER=2\n")
    with pytest.raises(SourceInvalid, match=r"\.env:2: cannot parse"):
        source_from_url("dotenv:.env", load_config()).fetch()
    loaded = load_secrets(load_config())
    bad = [f for f in loaded.findings if f.code == "SECRETS_SOURCE_INVALID"]
    assert bad and ".env:2" in bad[0].message and loaded.exit_code == 3


def test_duplicate_key_warns_which_line_wins(tmp_path: Path) -> None:
    env_file(tmp_path / ".env", "TOKEN_A=first-value-111\nX=1\nTOKEN_A=second-value-222\n")
    loaded = load_secrets(load_config())
    assert loaded.secrets["TOKEN_A"] == "second-value-222"
    dup = [f for f in loaded.findings if f.code == "SECRETS_DOTENV_DUPLICATE"]
    assert len(dup) == 1 and "line 1 and again on line 3; line 3 wins" in dup[0].message
    assert "first-value-111" not in dup[0].message
    assert loaded.exit_code == 0


def test_group_readable_file_warns(tmp_path: Path) -> None:
    env_file(tmp_path / ".env", "A=1\n", mode=0o644)
    loaded = load_secrets(load_config())
    assert [f.code for f in loaded.findings] == ["SECRETS_ENV_PERMISSIONS"]
    assert "chmod 600" in loaded.findings[0].message


def test_first_file_wins_and_missing_files_are_skipped(tmp_path: Path) -> None:
    write_config(tmp_path, '[secrets.sources.dotenv]\npaths = [".env.local", "none", ".env"]\n')
    env_file(tmp_path / ".env", "A=from-env\nB=only-env\n")
    env_file(tmp_path / ".env.local", "A=from-local\n")
    loaded = load_secrets(load_config())
    assert loaded.secrets["A"] == "from-local" and loaded.secrets["B"] == "only-env"
    assert loaded.secrets.provenance("A").detail == ".env.local:1"


def test_awkward_values_round_trip_through_write_and_fetch(tmp_path: Path) -> None:
    env_file(tmp_path / "out.env", "# keep me\nKEEP=1\nAWK_QUOTES=old\n")
    src = source_from_url("dotenv:out.env", load_config())
    src.write(AWKWARD)
    assert (tmp_path / "out.env").stat().st_mode & 0o777 == 0o600
    got = {k: v.value for k, v in src.fetch().items()}
    assert got == {"KEEP": "1", **AWKWARD}
    assert "# keep me" in (tmp_path / "out.env").read_text()
    src.delete(["KEEP", "AWK_NEWLINE"])
    assert set(src.fetch()) == set(AWKWARD) - {"AWK_NEWLINE"}


def test_quote_value_is_reversible_by_python_dotenv() -> None:
    import io

    from dotenv import dotenv_values

    for value in AWKWARD.values():
        text = f"K={quote_value(value)}\n"
        assert dotenv_values(stream=io.StringIO(text), interpolate=False)["K"] == value
