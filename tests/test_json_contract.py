"""One JSON contract: every ``--json`` prints ``{schema_version, ok, exit_code, findings, data}``.

A golden case per command runs it through the real CLI and pins the envelope
(exact keys and types, ``exit_code`` equal to the process exit code) and the
keys of ``data`` (docs/json.md). The typer app is enumerated, so a new command
with ``--json`` and no golden case fails here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ops.backup.manifest import BackupManifest
from ops.cli import app
from ops.findings import ENVELOPE_KEYS, SCHEMA_VERSION
from tests.helpers import cli_commands, make_repo

PASS = "snapshot passphrase 0123456789"
FINDING_KEYS = {"code", "severity", "subject", "message", "runbook", "exit_code", "details"}
REPORT_KEYS = {"worst", "summary"}  # every findings report's data has these


def _json_commands() -> Iterator[str]:
    """Every command of the app that takes ``--json``, as its words."""
    for name, cmd in cli_commands():
        if any("--json" in getattr(p, "opts", []) for p in getattr(cmd, "params", [])):
            yield name


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    data_keys: frozenset[str]
    needs: str = ""  # "db" (a fresh database) or "migrated" (every migration applied)
    prepare: Callable[[Path], None] | None = None
    before: tuple[tuple[str, ...], ...] = ()  # commands run first, with the same environment


def _dotenv(tmp: Path) -> None:
    (tmp / ".env").write_text(
        f"API_TOKEN=dotenv-token-ab12cd34ef\nEMPIRE_SNAPSHOT_PASSPHRASE='{PASS}'\n"
    )
    (tmp / ".env").chmod(0o600)
    (tmp / "b.env").write_text("API_TOKEN=other-value-123\nONLY_B=zzzzzzzzz\n")


def _snapshot(tmp: Path) -> None:
    from typer.testing import CliRunner

    _dotenv(tmp)
    done = CliRunner().invoke(app, ["secrets", "snapshot", "--to", "snaps"])
    assert done.exit_code == 0, done.output


def _repo(tmp: Path) -> None:
    _dotenv(tmp)
    make_repo(tmp / "repo")


def _embedding(tmp: Path) -> None:
    (tmp / "e.json").write_text(json.dumps([0.5] * 1536))


_SYNC = frozenset({"from", "to", "applied", "changes", "plan", "dry_run"})
_MIGRATE = frozenset({"target"}) | REPORT_KEYS
_FLUSH = REPORT_KEYS | {"sent", "failed", "dropped", "waiting"}

CASES: dict[str, Case] = {
    "config show": Case(
        ("config", "show", "--json"), frozenset({"env", "config_file", "settings"})
    ),
    "db status": Case(
        ("db", "status", "--json"),
        frozenset(
            {"running", "pid", "port", "data_dir", "initialised", "version", "vector_available"}
        )
        | {"url"},
    ),
    "db seed-demo": Case(
        ("db", "seed-demo", "--scale", "0.01", "--yes", "--json"),
        frozenset(
            {"scale", "seed", "truncated", "rows", "bytes", "seconds", "event_months", "tables"}
        ),
        needs="migrated",
    ),
    "preflight": Case(
        ("preflight", "--json"),
        frozenset({"env", "target", "seconds", "facts", "secrets"}) | REPORT_KEYS,
        needs="db",
    ),
    "secrets status": Case(
        ("secrets", "status", "--json"), frozenset({"env", "sources", "secrets"}) | REPORT_KEYS
    ),
    "secrets sync": Case(
        ("secrets", "sync", "--from", "dotenv:.env", "--to", "dotenv:c.env", "--json"),
        _SYNC,
        prepare=_dotenv,
    ),
    "secrets diff": Case(
        ("secrets", "diff", "dotenv:.env", "dotenv:b.env", "--json"),
        frozenset({"a", "b", "only_a", "only_b", "differ", "differs", "same"}),
        prepare=_dotenv,
    ),
    "secrets snapshot": Case(
        ("secrets", "snapshot", "--to", "snaps", "--json"),
        frozenset({"path", "manifest", "names", "count", "created_at", "held", "removed"}),
        prepare=_dotenv,
    ),
    "secrets restore-snapshot": Case(
        ("secrets", "restore-snapshot", "SNAPSHOT", "--to", "dotenv:r.env", "--json"),
        _SYNC,
        prepare=_snapshot,
    ),
    "secrets scan": Case(
        ("secrets", "scan", "--repo", "repo", "--json"),
        frozenset(
            {"repo", "history", "files_scanned", "commits_scanned", "values_searched", "hits"}
        )
        | REPORT_KEYS,
        prepare=_repo,
    ),
    "migrate status": Case(
        ("migrate", "status", "--json"), _MIGRATE | {"migrations"}, needs="migrated"
    ),
    "migrate verify": Case(("migrate", "verify", "--json"), _MIGRATE, needs="migrated"),
    "backup run": Case(
        ("backup", "run", "--json"),
        _MIGRATE | {"backup_id", "repositories", "seconds", "size", "tables", "rows"},
        needs="migrated",
    ),
    "backup list": Case(("backup", "list", "--json"), REPORT_KEYS | {"repositories"}),
    "backup info": Case(
        ("backup", "info", "latest", "--json"),
        frozenset({"repository"} | set(BackupManifest.__dataclass_fields__)),
        needs="migrated",
        before=(("backup", "run"),),
    ),
    "backup prune": Case(
        ("backup", "prune", "--json"), REPORT_KEYS | {"apply", "policy", "repositories"}
    ),
    "backup verify": Case(
        ("backup", "verify", "latest", "--json"),
        REPORT_KEYS | {"backups"},
        needs="migrated",
        before=(("backup", "run"),),
    ),
    "restore": Case(
        ("restore", "latest", "--target-db", "golden_restore", "--create", "--json"),
        REPORT_KEYS
        | {"backup_id", "repository", "target", "stages", "seconds", "tables"}
        | {"expected_errors", "errors"},
        needs="migrated",
        before=(("backup", "run"),),
    ),
    "drill run": Case(
        ("drill", "run", "--json"),
        REPORT_KEYS
        | {"backup_id", "repository", "started_at", "stages", "rto_seconds"}
        | {"rto_target_seconds", "checks"},
    ),
    "migrate init": Case(
        ("migrate", "init", "--json"),
        frozenset({"folder", "written", "present", "dry_run"}),
        needs="migrated",
        prepare=lambda tmp: (tmp / "supabase" / "migrations").mkdir(parents=True),
    ),
    "migrate test": Case(
        ("migrate", "test", "--json"),
        _MIGRATE | {"scratch_database", "seconds", "manifest_compared"},
        needs="db",
    ),
    "migrate snapshot": Case(
        ("migrate", "snapshot", "--output", "manifest.json", "--json"),
        frozenset({"path", "tables", "changes"}),
        needs="db",
    ),
    "migrate check": Case(
        ("migrate", "check", "--json"),
        REPORT_KEYS | {"tables", "catalog_queries", "seconds"},
        needs="migrated",
    ),
    "alerts test": Case(("alerts", "test", "--json"), _FLUSH),
    "alerts flush": Case(("alerts", "flush", "--json"), _FLUSH),
    "alerts status": Case(
        ("alerts", "status", "--json"), REPORT_KEYS | {"channels", "open", "spool", "sent"}
    ),
    "jobs list": Case(("jobs", "list", "--json"), frozenset({"jobs"})),
    "jobs run": Case(
        ("jobs", "run", "partitions", "--json"),
        REPORT_KEYS
        | {"job", "host", "outcome", "scheduled_for", "started_at", "ended_at", "seconds"}
        | {"alerts"},
        needs="migrated",
    ),
    "scheduler status": Case(
        ("scheduler", "status", "--json"),
        REPORT_KEYS | {"source", "schedulers", "jobs"},
        needs="migrated",
        before=(("jobs", "run", "partitions"),),
    ),
    "dashboard build": Case(
        ("dashboard", "build", "--out", "dash", "--json"),
        REPORT_KEYS | {"html", "json", "status", "counts", "seconds"},
        needs="migrated",
    ),
    "migrate heal": Case(
        ("migrate", "heal", "--json"),
        _MIGRATE | {"applied", "actions", "unhealed"},
        needs="migrated",
    ),
    "data nearest": Case(
        ("data", "nearest", "memory_nodes", "--embedding-file", "e.json", "--k", "3", "--json"),
        REPORT_KEYS | {"table", "k", "principal", "bumped", "neighbours"},
        needs="migrated",
        prepare=_embedding,
    ),
    "realtime status": Case(
        ("realtime", "status", "--json"),
        REPORT_KEYS | {"publication", "exists", "declared", "published"},
        needs="migrated",
    ),
    "export": Case(
        ("export", "offers", "--out", "exp", "--json"),
        REPORT_KEYS | {"out", "manifest", "format", "preset", "tables"},
        needs="migrated",
    ),
}


def test_every_command_with_json_has_a_golden_case() -> None:
    found = set(_json_commands())
    assert {"preflight", "config show", "migrate status"} <= found  # the walk still works
    assert found == set(CASES), (
        f"commands with --json but no golden case: {sorted(found - set(CASES))}; "
        f"cases for commands without --json: {sorted(set(CASES) - found)}"
    )


def _assert_envelope(payload: object, exit_code: int) -> dict:
    assert isinstance(payload, dict)
    assert list(payload) == list(ENVELOPE_KEYS)
    assert payload["schema_version"] == SCHEMA_VERSION
    assert type(payload["ok"]) is bool and type(payload["exit_code"]) is int
    assert payload["exit_code"] == exit_code and payload["ok"] is (exit_code == 0)
    assert isinstance(payload["findings"], list) and isinstance(payload["data"], dict)
    for finding in payload["findings"]:
        assert set(finding) == FINDING_KEYS
        assert isinstance(finding["code"], str) and isinstance(finding["message"], str)
        assert finding["severity"] in ("ok", "info", "warning", "error", "critical")
        assert type(finding["exit_code"]) is int and isinstance(finding["details"], dict)
    return payload["data"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_envelope(name: str, request: pytest.FixtureRequest, tmp_path: Path, cli) -> None:
    case = CASES[name]
    env: dict[str, str] = {"EMPIRE_SNAPSHOT_PASSPHRASE": PASS}
    if case.needs:
        env["DATABASE_URL"] = request.getfixturevalue(
            "fresh_db" if case.needs == "db" else "migrated_db"
        )
    if case.prepare:
        case.prepare(tmp_path)
    for command in case.before:
        assert cli(*command, env=env).exit_code == 0
    args = list(case.args)
    if "SNAPSHOT" in args:
        args[args.index("SNAPSHOT")] = str(next((tmp_path / "snaps").glob("*.snap")))
    result = cli(*args, env=env)
    assert result.exit_code != 10, result.output
    data = _assert_envelope(json.loads(result.stdout), result.exit_code)
    assert set(data) == case.data_keys, f"{name}: data keys {sorted(data)}"
    if case.data_keys >= REPORT_KEYS:
        assert isinstance(data["summary"], dict) and isinstance(data["worst"], str)
