"""The dotenv source: python-dotenv syntax, no interpolation, clear errors, warnings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops.config import load_config
from ops.secrets import load_secrets
from ops.secrets.errors import SourceInvalid, SourceNotFound
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


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p.write_bytes(b"GOOD=1\nPASSWORD=caf\xe9-latin1\n"), r"\.env:2: not UTF-8"),
        (lambda p: p.mkdir(), r"\.env is a folder"),
    ],
    ids=["latin1", "folder"],
)
def test_an_unreadable_env_file_is_an_error_not_an_empty_source(
    tmp_path: Path, cli, fresh_db: str, make, expected: str
) -> None:
    make(tmp_path / ".env")
    with pytest.raises(SourceInvalid, match=expected):
        source_from_url("dotenv:.env", load_config()).fetch()
    loaded = load_secrets(load_config())
    assert "dotenv: invalid" in loaded.consulted and loaded.exit_code == 3
    bad = [f for f in loaded.findings if f.code == "SECRETS_SOURCE_INVALID"]
    assert len(bad) == 1 and "caf" not in bad[0].message
    # The app is not booted without its secrets.
    marker = tmp_path / "started"
    result = cli("run", "--", "touch", str(marker), env={"DATABASE_URL": fresh_db})
    assert result.exit_code == 3 and not marker.exists()
    assert "SECRETS_SOURCE_INVALID" in result.stderr


def test_a_path_through_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("x")
    write_config(tmp_path, '[secrets.sources.dotenv]\npaths = ["notadir/.env"]\n')
    loaded = load_secrets(load_config())
    assert "dotenv: invalid" in loaded.consulted and loaded.exit_code == 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file anyway")
def test_an_env_file_without_read_permission_is_an_error(tmp_path: Path) -> None:
    env_file(tmp_path / ".env", "A=1\n", mode=0o000)
    with pytest.raises(SourceInvalid, match="permission denied"):
        source_from_url("dotenv:.env", load_config()).fetch()


def test_an_invalid_name_is_reported_by_file_and_line_without_its_value(tmp_path: Path) -> None:
    env_file(tmp_path / ".env", "GOOD_NAME=ok-value-1\nBAD-NAME=hidden-value-42\n2FA=zz-value-9\n")
    loaded = load_secrets(load_config())
    assert set(loaded.secrets) >= {"GOOD_NAME"}
    assert "BAD-NAME" not in loaded.secrets and "2FA" not in loaded.secrets
    bad = [f for f in loaded.findings if f.code == "SECRETS_DOTENV_BAD_NAME"]
    assert [f.subject for f in bad] == [".env:2", ".env:3"]
    assert "'BAD-NAME' is not a valid variable name" in bad[0].message
    assert all("hidden-value-42" not in f.message and "zz-value-9" not in f.message for f in bad)
    assert loaded.exit_code == 0  # the other names still load: a warning


def test_a_missing_file_holds_nothing_in_the_chain_but_not_on_its_own(tmp_path: Path) -> None:
    loaded = load_secrets(load_config())
    assert "dotenv: absent" in loaded.consulted and loaded.exit_code == 0
    source = source_from_url("dotenv:nope.env", load_config())
    assert source.fetch() == {}
    source.must_exist = True
    with pytest.raises(SourceNotFound, match=r"nope\.env does not exist"):
        source.fetch()
