"""The must-shows through the CLI: preflight gaps, run, up, cache fallbacks, no leaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.openbao import OpenBao
from tests.secrets.conftest import (
    ANON_KEY,
    AWKWARD,
    ROOT_TOKEN,
    SERVICE_KEY,
    SUPABASE_URL,
    vault_config,
    write_config,
)

PROD_SECRETS = {
    "SUPABASE_URL": SUPABASE_URL,
    "SUPABASE_ANON_KEY": ANON_KEY,
    "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
}


def dotenv(path: Path, values: dict[str, str]) -> None:
    from ops.secrets.sources.dotenv import quote_value

    (path / ".env").write_text("".join(f"{k}={quote_value(v)}\n" for k, v in values.items()))
    (path / ".env").chmod(0o600)


def test_preflight_lists_every_missing_secret_and_exits_3(tmp_path: Path, cli) -> None:
    result = cli("--env", "prod", "preflight", "--json")
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    missing = sorted(f["subject"] for f in data["findings"] if f["code"] == "SECRETS_MISSING")
    # The keys are required as a pair, new or legacy: one finding names both pairs.
    assert missing == ["DATABASE_URL", "SUPABASE_URL", "supabase_api_keys"]
    assert [s["name"] for s in data["data"]["secrets"]["sources"]] == [
        "env", "dotenv", "vault", "awssm", "https"
    ]  # fmt: skip
    assert all(f["runbook"] for f in data["findings"] if f["code"] == "SECRETS_MISSING")
    text = cli("preflight", "--env", "prod")
    assert text.exit_code == 3
    assert "consulted env" in text.stdout and "SECRETS_MISSING" in text.stdout


def test_preflight_with_swapped_keys_exits_3_and_names_both(
    tmp_path: Path, fresh_db: str, cli
) -> None:
    dotenv(tmp_path, {**PROD_SECRETS, "SUPABASE_ANON_KEY": SERVICE_KEY,
                      "SUPABASE_SERVICE_ROLE_KEY": ANON_KEY, "DATABASE_URL": fresh_db})  # fmt: skip
    result = cli("--env", "prod", "preflight", "--json")
    assert result.exit_code == 3, result.output
    bad = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "SECRETS_INVALID"]
    assert {f["subject"] for f in bad} == {"SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY"}
    assert all("swapped" in f["message"] for f in bad)
    assert "DB_REACHABLE" in result.stdout  # the database was still checked
    text = cli("--env", "prod", "preflight")
    assert text.exit_code == 3 and "swapped" in text.stdout
    for out in (result.output, text.output):
        assert ANON_KEY not in out and SERVICE_KEY not in out


def test_run_injects_merged_secrets(tmp_path: Path, migrated_db: str, cli, run_cli) -> None:
    dotenv(tmp_path, {"SUPABASE_URL": SUPABASE_URL, **AWKWARD})
    env = {"DATABASE_URL": migrated_db}
    result = run_cli("run", "--", "sh", "-c", "echo $SUPABASE_URL", env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == SUPABASE_URL
    dump = (
        f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {list(AWKWARD)!r}}}))"
    )
    result = run_cli("run", "--", sys.executable, "-c", dump, env=env)
    assert json.loads(result.stdout) == AWKWARD  # newline, quotes, $, non-ASCII survive
    only = run_cli("run", "--only", "AWK_DOLLAR", "--", sys.executable, "-c", dump, env=env)
    assert json.loads(only.stdout) == {
        **dict.fromkeys(AWKWARD),
        "AWK_DOLLAR": AWKWARD["AWK_DOLLAR"],
    }
    assert run_cli("run", "--", "sh", "-c", "exit 7", env=env).exit_code == 7
    assert run_cli("run", "--only", "NOPE", "--", "true", env=env).exit_code == 2


def test_run_refuses_on_a_gap_without_starting_the_child(tmp_path: Path, cli) -> None:
    marker = tmp_path / "started"
    result = cli("--env", "prod", "run", "--", "touch", str(marker))
    assert result.exit_code == 3
    assert "refusing to start" in result.stderr and "SECRETS_MISSING" in result.stderr
    assert not marker.exists()


def test_run_keeps_reserved_names_and_refuses_dangerous_ones(
    tmp_path: Path, migrated_db: str, run_cli
) -> None:
    dotenv(tmp_path, {"PATH": "/nowhere", "HOME": "/elsewhere", "APP_TOKEN": "tok-123456"})
    env = {"DATABASE_URL": migrated_db}
    result = run_cli("run", "--", "sh", "-c", 'echo "$HOME|$APP_TOKEN"', env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"{os.environ['HOME']}|tok-123456"
    assert "not overwriting reserved names HOME, PATH" in result.stderr
    write_config(tmp_path, '[secrets]\nallow_reserved = ["HOME"]\n')
    result = run_cli("run", "--", "sh", "-c", 'echo "$HOME"', env=env)
    assert result.stdout.strip() == "/elsewhere"
    dotenv(tmp_path, {"LD_PRELOAD": "/tmp/evil.so"})
    result = run_cli("run", "--", "true", env=env)
    assert result.exit_code == 3
    assert "LD_PRELOAD (from dotenv)" in result.stderr


@pytest.mark.parametrize(
    "script, expected",
    [
        ("trap 'exit 42' TERM; echo ready; while true; do sleep 0.05; done", 42),
        ("echo ready; exec sleep 30", 128 + signal.SIGTERM),
    ],
)
def test_run_forwards_sigterm_and_returns_the_child_exit_code(
    tmp_path: Path, migrated_db: str, script: str, expected: int
) -> None:
    env = {**os.environ, "DATABASE_URL": migrated_db, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops", "run", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == expected


def test_up_runs_preflight_with_the_loaded_secrets(tmp_path: Path, fresh_db: str, cli) -> None:
    dotenv(tmp_path, {"DATABASE_URL": fresh_db})  # only in .env, not in the environment
    result = cli("up", "--yes")  # --yes: a non-embedded database in the default env
    assert result.exit_code == 0, result.output
    assert "result: ok" in result.stdout
    result = cli("--env", "prod", "up")
    assert result.exit_code == 3 and "SECRETS_MISSING" in result.stdout
    assert "preflight" not in result.stdout.split("database", 1)[1].split("\n\n")[0]


def test_migrate_style_commands_find_the_dsn_in_dotenv(tmp_path: Path, fresh_db: str) -> None:
    from ops.config import load_config
    from ops.target import resolve_target

    dotenv(tmp_path, {"SUPABASE_DB_URL": fresh_db})
    target = resolve_target(load_config())
    assert target.dsn == fresh_db and not target.embedded


def test_vault_down_uses_stale_cache_and_403_deletes_it(
    tmp_path: Path, migrated_db: str, cli, vault: OpenBao, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A migrated database: prod never auto-applies, and the schema check is part of preflight.
    vault.put("secret", "empire/prod", {**PROD_SECRETS, "DATABASE_URL": migrated_db})
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    write_config(tmp_path, vault_config(vault))
    assert cli("--env", "prod", "preflight").exit_code == 0
    cache = tmp_path / ".empire/secrets/cache/vault.bin"
    assert cache.exists()
    vault.sealed = True
    result = cli("--env", "prod", "preflight", "--json")
    assert result.exit_code == 0, result.output
    codes = [f["code"] for f in json.loads(result.stdout)["findings"]]
    assert "SECRETS_STALE_CACHE" in codes and "DB_REACHABLE" in codes
    vault.sealed = False
    vault.add_token("no-access", {})
    monkeypatch.setenv("VAULT_TOKEN", "no-access")
    result = cli("--env", "prod", "preflight")
    assert result.exit_code == 4
    assert "SECRETS_SOURCE_DENIED" in result.stdout and not cache.exists()


def test_secrets_status_is_names_only(tmp_path: Path, cli) -> None:
    dotenv(tmp_path, {"SUPABASE_URL": SUPABASE_URL, "SMTP_PASSWORD": "smtp-pw-abcdef"})
    result = cli("secrets", "status", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    row = next(r for r in data["data"]["secrets"] if r["name"] == "SMTP_PASSWORD")
    assert row["source"] == "dotenv" and row["detail"] == ".env:2" and len(row["fingerprint"]) == 8
    assert "smtp-pw-abcdef" not in result.stdout
    text = cli("secrets", "status")
    assert "SMTP_PASSWORD" in text.stdout and "smtp-pw-abcdef" not in text.output
    assert cli("secrets", "status", "--env", "prod").exit_code == 3


def test_debug_output_and_log_files_hold_no_value(tmp_path: Path, run_cli) -> None:
    values = {**PROD_SECRETS, "SMTP_PASSWORD": "canary-smtp-123456", "DATABASE_URL":
              "postgresql://app:canary-db-pw-777@127.0.0.1:1/x", **AWKWARD}  # fmt: skip
    values["SUPABASE_ANON_KEY"] = SERVICE_KEY  # a failure path too
    dotenv(tmp_path, values)
    write_config(tmp_path, '[logging]\nfile = "ops.log"\nlevel = "debug"\n')
    outputs = []
    for args in (
        ["--debug", "--env", "prod", "preflight"],
        ["--debug", "--env", "prod", "preflight", "--json"],
        ["--debug", "secrets", "status", "--json"],
        ["--debug", "--env", "prod", "run", "--", "true"],
        ["--debug", "run", "--", "true"],
        ["--debug", "--log-format", "json", "secrets", "status"],
    ):
        result = run_cli(*args)
        outputs.append(result.stdout + result.stderr)
    log_text = (tmp_path / "ops.log").read_text()
    assert "preflight" in "".join(outputs) and log_text
    for value in values.values():
        for chunk in value.splitlines():
            if len(chunk) >= 6:
                assert chunk not in log_text
                for out in outputs:
                    assert chunk not in out


def test_boot_path_imports_no_sdk(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SMTP_PASSWORD=pw-abcdefgh\n")
    (tmp_path / ".env").chmod(0o600)
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ops.cli import app\n"
        "r = CliRunner().invoke(app, ['preflight', '--json'])\n"
        "assert r.exit_code == 4, r.output\n"
        "heavy = [m for m in ('hvac', 'boto3', 'botocore', 'httpx', 'cryptography', 'jinja2')"
        " if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "DATABASE_URL": "postgresql://a:b@127.0.0.1:1/x"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none"
