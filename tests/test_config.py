"""Config loading: defaults, environment overlays, and every error with its dotted path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.config import load_config, parse_cron, parse_duration
from ops.errors import ConfigError

GOOD = """
[project]
name = "empire-test"

[database]
connect_timeout = "3s"
required_extensions = ["vector"]

[env.prod.database]
connect_timeout = "10s"
statement_timeout = "5m"

[env.staging.embedded]
enabled = false
"""

BROKEN = """
[databse]
connect_timeout = "3s"

[database]
connect_timeout = "three seconds"

[embedded]
port = "5432"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "empire-ops.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file_use_embedded_and_local_state(tmp_path: Path) -> None:
    cfg = load_config()
    assert cfg.path is None
    assert cfg.env == "dev"
    assert cfg.get("embedded.enabled") is True
    assert cfg.state_dir == tmp_path / ".empire"
    assert cfg.seconds("database.connect_timeout") == 5


def test_file_is_found_in_the_working_folder(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    cfg = load_config()
    assert cfg.get("project.name") == "empire-test"
    assert cfg.seconds("database.connect_timeout") == 3


def test_env_overlay_replaces_only_what_it_names(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    prod = load_config(env="prod")
    assert prod.seconds("database.connect_timeout") == 10
    assert prod.seconds("database.statement_timeout") == 300
    assert prod.get("project.name") == "empire-test"  # inherited from the base
    staging = load_config(env="staging")
    assert staging.get("embedded.enabled") is False
    assert staging.seconds("database.connect_timeout") == 3


def test_env_comes_from_empire_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, GOOD)
    monkeypatch.setenv("EMPIRE_ENV", "prod")
    assert load_config().env == "prod"


def test_config_path_from_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('[project]\nname = "from-env"\n')
    monkeypatch.setenv("EMPIRE_OPS_CONFIG", str(other))
    assert load_config().get("project.name") == "from-env"


def test_missing_explicit_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_every_mistake_is_reported_with_its_dotted_path(tmp_path: Path) -> None:
    write(tmp_path, BROKEN)
    with pytest.raises(ConfigError) as info:
        load_config()
    problems = info.value.problems
    assert len(problems) == 3, problems
    text = "\n".join(problems)
    assert "databse: unknown key (did you mean 'database'?)" in text
    assert "database.connect_timeout: 'three seconds' is not a duration" in text
    assert "embedded.port: expected integer, got str '5432'" in text
    assert info.value.exit_code == 2


def test_mistakes_in_every_environment_overlay_are_reported(tmp_path: Path) -> None:
    write(tmp_path, '[env.prod.database]\nconect_timeout = "1s"\n[env.prodd]\nx = 1\n')
    with pytest.raises(ConfigError) as info:
        load_config(env="dev")
    text = "\n".join(info.value.problems)
    assert "env.prod.database.conect_timeout: unknown key (did you mean 'connect_timeout'?)" in text
    assert "env.prodd: unknown environment (did you mean 'prod'?)" in text


def test_a_boolean_is_not_an_integer(tmp_path: Path) -> None:
    write(tmp_path, "[embedded]\nport = true\n")
    with pytest.raises(ConfigError, match=r"embedded\.port: expected integer, got bool"):
        load_config()


def test_invalid_toml_names_line_and_column(tmp_path: Path) -> None:
    write(tmp_path, "[database\nconnect_timeout = 1\n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 1"):
        load_config()


def test_unknown_environment_name() -> None:
    with pytest.raises(ConfigError, match="unknown environment 'production'"):
        load_config(env="production")


def test_choices_are_enforced(tmp_path: Path) -> None:
    write(tmp_path, '[logging]\nformat = "xml"\n')
    with pytest.raises(ConfigError, match=r"logging\.format: 'xml' is not one of auto, text, json"):
        load_config()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "-1s", "1y"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text", ["0 3 * * *", "*/15 * * * mon-fri", "30 2 1,15 jan *", "0 0 * * 7"]
)
def test_parse_cron_accepts(text: str) -> None:
    assert len(parse_cron(text)) == 5


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0 3 * *", "need 5 fields"),
        ("61 * * * *", "outside 0-59"),
        ("* 24 * * *", "outside 0-23"),
        ("*/x * * * *", "step"),
        ("* * * foo *", "outside"),
    ],
)
def test_parse_cron_rejects(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_cron(text)


def test_cli_validate_reports_all_three_and_exits_2(tmp_path: Path, cli) -> None:
    write(tmp_path, BROKEN)
    result = cli("config", "validate")
    assert result.exit_code == 2
    for path in ("databse", "database.connect_timeout", "embedded.port"):
        assert path in result.stderr
    assert "hint:" in result.stderr


def test_cli_validate_ok(tmp_path: Path, cli) -> None:
    write(tmp_path, GOOD)
    result = cli("--env", "prod", "config", "validate")
    assert result.exit_code == 0, result.output
    assert "is valid (environment prod)" in result.stdout


def test_cli_show_json_has_effective_settings(tmp_path: Path, cli) -> None:
    import json

    write(tmp_path, GOOD)
    result = cli("--env", "prod", "config", "show", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["env"] == "prod"
    assert data["settings"]["database"]["connect_timeout"] == "10s"


def test_cli_show_text_is_valid_toml(tmp_path: Path, cli) -> None:
    import tomllib

    write(tmp_path, GOOD)
    result = cli("config", "show")
    assert result.exit_code == 0
    body = "\n".join(line for line in result.stdout.splitlines() if not line.startswith("#"))
    assert tomllib.loads(body)["project"]["name"] == "empire-test"


def test_example_config_is_valid_and_documents_every_key() -> None:
    from ops.config import SCHEMA, Table, collect_problems

    example = Path(__file__).resolve().parent.parent / "empire-ops.example.toml"
    import tomllib

    raw = tomllib.loads(example.read_text())
    _, problems = collect_problems(raw, "dev")
    assert problems == []
    text = example.read_text()

    def keys(table: Table, prefix: str) -> list[str]:
        out = []
        for name, spec in table.fields.items():
            if isinstance(spec, Table):
                out += keys(spec, f"{prefix}.{name}")
            else:
                out.append((prefix, name))
        return out

    for section, table in SCHEMA.items():
        for prefix, key in keys(table, section):
            assert f"[{prefix}]" in text, f"[{prefix}] missing from the example"
            assert f"\n{key} =" in text or f"\n# {key} =" in text, f"{prefix}.{key} undocumented"
