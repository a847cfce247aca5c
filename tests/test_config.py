"""Config loading: defaults, environment overlays, and every error with its dotted path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ops.config import check_cron, load_config, parse_duration
from ops.errors import ConfigError
from tests.helpers import write_config

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


def test_defaults_without_a_file_use_embedded_and_local_state(tmp_path: Path) -> None:
    cfg = load_config()
    assert cfg.path is None
    assert cfg.env == "dev"
    assert cfg.get("embedded.enabled") is True
    assert cfg.state_dir == tmp_path / ".empire"
    assert cfg.seconds("database.connect_timeout") == 5


def test_file_is_found_in_the_working_folder(tmp_path: Path) -> None:
    write_config(tmp_path, GOOD)
    cfg = load_config()
    assert cfg.get("project.name") == "empire-test"
    assert cfg.seconds("database.connect_timeout") == 3


def test_env_overlay_replaces_only_what_it_names(tmp_path: Path) -> None:
    write_config(tmp_path, GOOD)
    prod = load_config(env="prod")
    assert prod.seconds("database.connect_timeout") == 10
    assert prod.seconds("database.statement_timeout") == 300
    assert prod.get("project.name") == "empire-test"  # inherited from the base
    staging = load_config(env="staging")
    assert staging.get("embedded.enabled") is False
    assert staging.seconds("database.connect_timeout") == 3


def test_env_comes_from_empire_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, GOOD)
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
    write_config(tmp_path, BROKEN)
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
    write_config(tmp_path, '[env.prod.database]\nconect_timeout = "1s"\n[env.prodd]\nx = 1\n')
    with pytest.raises(ConfigError) as info:
        load_config(env="dev")
    text = "\n".join(info.value.problems)
    assert "env.prod.database.conect_timeout: unknown key (did you mean 'connect_timeout'?)" in text
    assert "env.prodd: unknown environment (did you mean 'prod'?)" in text


def test_a_boolean_is_not_an_integer(tmp_path: Path) -> None:
    write_config(tmp_path, "[embedded]\nport = true\n")
    with pytest.raises(ConfigError, match=r"embedded\.port: expected integer, got bool"):
        load_config()


def test_invalid_toml_names_line_and_column(tmp_path: Path) -> None:
    write_config(tmp_path, "[database\nconnect_timeout = 1\n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 1"):
        load_config()


def test_unknown_environment_name() -> None:
    with pytest.raises(ConfigError, match="unknown environment 'production'"):
        load_config(env="production")


def test_choices_are_enforced(tmp_path: Path) -> None:
    write_config(tmp_path, '[logging]\nformat = "xml"\n')
    with pytest.raises(
        ConfigError, match=r"logging\.format: 'xml' is not one of auto, text, plain, json"
    ):
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
    "text",
    ["0 3 * * *", "*/15 * * * mon-fri", "30 2 1,15 jan *", "00 03 * * sun", "0 0 * * sat,sun"],
)
def test_check_cron_accepts_what_apscheduler_runs(text: str) -> None:
    assert check_cron(text) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0 3 * *", "need 5 fields"),
        ("61 * * * *", "higher than the maximum value"),
        ("* 24 * * *", "higher than the maximum value"),
        ("*/x * * * *", "Unrecognized expression"),
        ("* * * foo *", "Invalid month name"),
        ("0 0 L * *", "Unrecognized expression"),
        # numbers in the day of week: cron's 0 is Sunday, APScheduler 3's is Monday
        ("0 0 * * 0", "write weekday names"),
        ("0 0 * * 1-5", "write weekday names"),
        ("0 0 * * */2", "write weekday names"),
        # APScheduler reads a name by its prefix and would drop the rest
        ("0 0 * jan/2 *", "would run as 'jan'"),
        ("0 0 * * mon,tue!", "would run as 'mon,tue'"),
    ],
)
def test_check_cron_rejects(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_cron(text)


def test_cron_day_of_week_means_what_the_scheduler_runs() -> None:
    """The weekday names mean the same to cron and to APScheduler: 'sun' fires on Sundays."""
    from datetime import UTC, datetime

    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger.from_crontab(check_cron("0 0 * * sun"), timezone="UTC")
    fire = trigger.get_next_fire_time(None, datetime(2024, 1, 1, tzinfo=UTC))  # a Monday
    assert fire is not None and fire.strftime("%A %d") == "Sunday 07"


def test_loading_a_config_does_not_import_apscheduler(tmp_path: Path) -> None:
    import subprocess
    import sys

    write_config(tmp_path, GOOD)
    code = "import sys, ops.config as c; c.load_config(); print('apscheduler' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_validate_reports_all_three_and_exits_2(tmp_path: Path, cli) -> None:
    write_config(tmp_path, BROKEN)
    result = cli("config", "validate")
    assert result.exit_code == 2
    for path in ("databse", "database.connect_timeout", "embedded.port"):
        assert path in result.stderr
    assert "hint:" in result.stderr


def test_cli_validate_ok(tmp_path: Path, cli) -> None:
    write_config(tmp_path, GOOD)
    result = cli("--env", "prod", "config", "validate")
    assert result.exit_code == 0, result.output
    assert "is valid (environment prod)" in result.stdout


def test_cli_show_json_has_effective_settings(tmp_path: Path, cli) -> None:
    import json

    write_config(tmp_path, GOOD)
    result = cli("--env", "prod", "config", "show", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    data = data.get("data", data)  # the --json envelope's payload
    assert data["env"] == "prod"
    assert data["settings"]["database"]["connect_timeout"] == "10s"


def test_cli_show_text_is_valid_toml(tmp_path: Path, cli) -> None:
    import tomllib

    write_config(tmp_path, GOOD)
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


# -- config validate catches what would fail later ----------------------------------------
def problems_of(tmp_path: Path, text: str, env: str = "dev") -> list[str]:
    write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    assert info.value.exit_code == 2
    return info.value.problems


def test_an_unknown_chain_source_is_named_with_the_known_ones(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        '[secrets]\nchain = ["env", "vualt"]\n[secrets.sources.corp]\ntype = "vault"\n',
    )
    assert problems == [
        "secrets.chain[1]: unknown source 'vualt'; configure [secrets.sources.vualt] "
        "or use one of: awssm, corp, dotenv, env, https, vault"
    ]


def test_a_chain_source_an_overlay_names_is_checked_in_that_environment(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, '[env.prod.secrets]\nchain = ["env", "corp"]\n')
    assert [p.split(";")[0] for p in problems] == [
        "env.prod.secrets.chain[1]: unknown source 'corp'"
    ]
    # defined in the base, named by the overlay: fine
    write_config(
        tmp_path,
        '[secrets.sources.corp]\ntype = "vault"\n[env.prod.secrets]\nchain = ["env", "corp"]\n',
    )
    assert load_config(env="prod").get("secrets.chain") == ["env", "corp"]


def test_an_option_of_another_source_type_names_the_type_and_its_options(
    tmp_path: Path,
) -> None:
    problems = problems_of(
        tmp_path, '[secrets.sources.x]\ntype = "dotenv"\nmount = "kv"\npaths = [".env"]\n'
    )
    assert problems == [
        "secrets.sources.x.mount: an option of vault sources, not of this dotenv source; "
        "dotenv options: interpolate, paths, type"
    ]


def test_a_source_table_named_after_a_type_takes_that_types_options(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, '[secrets.sources.vault]\nregion = "eu-west-1"\n')
    assert problems[0].startswith(
        "secrets.sources.vault.region: an option of awssm sources, not of this vault source"
    )
    problems = problems_of(tmp_path, '[secrets.sources.corp]\naddress = "https://v"\n')
    assert problems == [
        "secrets.sources.corp: 'corp' is not a source type, and no type is set; "
        "set type to one of: env, dotenv, vault, awssm, https"
    ]
    problems = problems_of(tmp_path, '[secrets.sources.corp]\ntype = "consul"\n')
    assert problems == [
        "secrets.sources.corp.type: 'consul' is not a source type; "
        "known: env, dotenv, vault, awssm, https"
    ]
    problems = problems_of(tmp_path, '[secrets.sources.vault]\nadress = "https://v"\n')
    assert "secrets.sources.vault.adress: unknown key (did you mean 'address'?)" in problems[0]


def test_every_source_type_declares_the_options_its_class_reads() -> None:
    """The option tables and the registry agree, and no class reads an undeclared option."""
    import ops.secrets.sources as sources
    from ops.secrets.settings import SOURCE_OPTIONS

    assert list(SOURCE_OPTIONS) == list(sources.REGISTRY)
    folder = Path(sources.__file__).parent
    for type_name, target in sources.REGISTRY.items():
        module = target.partition(":")[0].rsplit(".", 1)[1]
        text = (folder / f"{module}.py").read_text()
        read = set(re.findall(r"options(?:\.get\(|\[)\"(\w+)\"", text))
        undeclared = read - set(SOURCE_OPTIONS[type_name].fields)
        assert not undeclared, f"{type_name} reads undeclared options {undeclared}"


def test_lower_case_spec_names_are_reported_with_the_fix(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "[secrets.spec.database_url]\nrequired = true\n")
    assert problems == [
        "secrets.spec.database_url: 'database_url' is not a secret name "
        "(use UPPER_SNAKE_CASE: 'DATABASE_URL')"
    ]


def test_spec_secret_is_a_boolean(tmp_path: Path, cli) -> None:
    write_config(tmp_path, '[secrets.spec.SMTP_RELAY]\nkind = "hostname"\nsecret = false\n')
    result = cli("config", "validate")
    assert result.exit_code == 0, result.output
    assert load_config().get("secrets.spec.SMTP_RELAY.secret") is False
    problems = problems_of(tmp_path, '[secrets.spec.SMTP_RELAY]\nsecret = "no"\n')
    assert problems == ["secrets.spec.SMTP_RELAY.secret: expected boolean, got str 'no'"]
    write_config(tmp_path, "[env.prod.secrets.spec.SMTP_RELAY]\nsecret = 0\n")
    result = cli("config", "validate")
    assert result.exit_code == 2
    assert "env.prod.secrets.spec.SMTP_RELAY.secret: expected boolean" in result.stderr


def test_missing_migration_folders_are_reported(tmp_path: Path) -> None:
    (tmp_path / "supabase" / "migrations").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("")
    problems = problems_of(
        tmp_path, '[migrate]\ndirs = ["supabase/migrations", "db/migrations", "notes.txt"]\n'
    )
    assert [p.split(" (")[0] for p in problems] == [
        "migrate.dirs[1]: 'db/migrations' does not exist",
        "migrate.dirs[2]: 'notes.txt' is not a folder",
    ]
    assert str(tmp_path / "db" / "migrations") in problems[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[embedded]\nport = 70000\n", "embedded.port: 70000 is not a TCP port"),
        ("[embedded]\nport = -1\n", "embedded.port: -1 is not a TCP port"),
        ("[env.prod.embedded]\nport = 65536\n", "env.prod.embedded.port: 65536 is not a TCP port"),
        ("[secrets.snapshot]\nkeep = -1\n", "secrets.snapshot.keep: -1 is negative"),
        (
            "[secrets.spec.X_KEY]\nmin_length = -3\n",
            "secrets.spec.X_KEY.min_length: -3 is negative",
        ),
    ],
)
def test_out_of_range_numbers_are_reported(tmp_path: Path, text: str, problem: str) -> None:
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1 and problems[0].startswith(problem), problems


@pytest.mark.parametrize("port", [0, 1, 5432, 65535])
def test_ports_in_range_and_zero_are_accepted(tmp_path: Path, port: int) -> None:
    write_config(tmp_path, f"[embedded]\nport = {port}\n")
    assert load_config().get("embedded.port") == port


def test_cli_validate_reports_a_bad_chain_and_port_with_exit_2(tmp_path: Path, cli) -> None:
    write_config(tmp_path, '[embedded]\nport = 99999\n[secrets]\nchain = ["nope"]\n')
    result = cli("config", "validate")
    assert result.exit_code == 2
    assert "embedded.port: 99999 is not a TCP port" in result.stderr
    assert "secrets.chain[0]: unknown source 'nope'" in result.stderr


# -- the project root: config file, state folder and .env ------------------------------------
def test_the_config_is_found_walking_up_and_its_folder_is_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, '[project]\nname = "walked"\n')
    sub = tmp_path / "app" / "src"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    cfg = load_config()
    assert cfg.path == (tmp_path / "empire-ops.toml").resolve()
    assert cfg.get("project.name") == "walked"
    assert cfg.base_dir == tmp_path.resolve()
    assert cfg.state_dir == tmp_path.resolve() / ".empire"


def test_the_nearest_config_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, '[project]\nname = "outer"\n')
    inner = tmp_path / "inner"
    inner.mkdir()
    write_config(inner, '[project]\nname = "inner"\n')
    (inner / "deep").mkdir()
    monkeypatch.chdir(inner / "deep")
    assert load_config().get("project.name") == "inner"
    assert load_config().state_dir == inner.resolve() / ".empire"


def test_a_config_named_explicitly_makes_its_folder_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    write_config(project, '[project]\nstate_dir = "var/state"\n')
    monkeypatch.setenv("EMPIRE_OPS_CONFIG", str(project / "empire-ops.toml"))
    assert load_config().state_dir == project.resolve() / "var" / "state"


def test_without_a_config_the_working_folder_is_the_root(tmp_path: Path) -> None:
    cfg = load_config()
    assert cfg.path is None and cfg.base_dir == tmp_path


def test_a_subfolder_uses_the_projects_env_file_and_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """Run from a subfolder, `secrets status` reads the project's .env, not a second one."""
    write_config(tmp_path, '[secrets]\nchain = ["dotenv"]\n')
    (tmp_path / ".env").write_text("SUPABASE_URL=https://abcdefghijklmnop.supabase.co\n")
    (tmp_path / ".env").chmod(0o600)
    sub = tmp_path / "web" / "pages"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    result = cli("secrets", "status", "--json")
    assert result.exit_code in (0, 1), result.output
    rows = {row["name"]: row for row in _status_rows(result.stdout)}
    assert rows["SUPABASE_URL"]["source"] == "dotenv", rows["SUPABASE_URL"]
    from ops.config import load_config as load

    assert load().state_dir == tmp_path.resolve() / ".empire"
    assert not (sub / ".empire").exists() and not (sub / ".env").exists()


def test_db_status_from_a_subfolder_names_the_projects_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    import json

    write_config(tmp_path, "")  # an empty file pins the project root
    sub = tmp_path / "app" / "src"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    result = cli("db", "status", "--json")
    data = json.loads(result.stdout)
    data = data.get("data", data)
    assert data["data_dir"] == str(tmp_path.resolve() / ".empire" / "pgdata")
    assert not (sub / ".empire").exists()


def _status_rows(stdout: str) -> list[dict]:
    import json

    data = json.loads(stdout)
    data = data.get("data", data) if isinstance(data, dict) else data
    for key in ("secrets", "rows", "names"):
        if isinstance(data, dict) and key in data:
            return data[key]
    assert isinstance(data, list), data
    return data


# -- config show writes TOML that reads back -----------------------------------------------
ODD = r"""
[project]
name = "q\"uote \\back\\slash é 日本\ttab \u0007bell"
state_dir = "st ate/ü"

[secrets.sources."my src.x"]
type = "vault"
address = "https://v:8200"
verify = false
timeout = "2s"

[secrets.sources.files]
type = "dotenv"
paths = [".env", "conf/.env.ünï"]

[secrets.spec.MY_KEY]
pattern = 'sk_\d+["\\]'
required = ["prod"]
description = '''two
lines'''

[env.prod.database]
connect_timeout = "9s"
"""


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_cli_show_round_trips_through_tomllib(tmp_path: Path, cli, env: str) -> None:
    import tomllib

    write_config(tmp_path, ODD)
    result = cli("--env", env, "config", "show")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"# environment: {env}; file: ")
    assert tomllib.loads(result.stdout) == load_config(env=env).data


def test_cli_show_round_trips_the_built_in_defaults(cli) -> None:
    import tomllib

    result = cli("config", "show")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "# environment: dev; file: built-in defaults"
    assert tomllib.loads(result.stdout) == load_config().data


def test_show_keeps_a_strange_file_name_on_the_comment_line(tmp_path: Path) -> None:
    import tomllib

    odd = tmp_path / "a\nb = 1"
    odd.mkdir()
    path = write_config(odd, '[project]\nname = "x"\n')
    cfg = load_config(path)
    assert tomllib.loads(cfg.to_toml()) == cfg.data
    assert cfg.to_toml().splitlines()[0].endswith("a\\x0ab = 1/empire-ops.toml")


# -- --log-format, $EMPIRE_OPS_LOG_FORMAT and [logging] format agree ---------------------------
@pytest.mark.parametrize("fmt", ["auto", "text", "plain", "json"])
def test_every_log_format_is_accepted_by_flag_env_and_config(tmp_path: Path, cli, fmt: str) -> None:
    assert cli("--log-format", fmt, "config", "validate").exit_code == 0
    assert cli("config", "validate", env={"EMPIRE_OPS_LOG_FORMAT": fmt}).exit_code == 0
    write_config(tmp_path, f'[logging]\nformat = "{fmt}"\n')
    assert load_config().get("logging.format") == fmt


def test_a_bad_log_format_exits_2_listing_the_formats(cli) -> None:
    for result in (
        cli("--log-format", "xml", "config", "validate"),
        cli("config", "validate", env={"EMPIRE_OPS_LOG_FORMAT": "xml"}),
    ):
        assert result.exit_code == 2
        text = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())  # unwrap the box
        assert "'xml' is not one of auto, text, plain, json" in text
