"""`secrets scan`: literal values in tracked files and history, and unsafe .env files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ops.config import load_config
from ops.secrets.scan import NotAGitRepository, check_env_files, scan_loaded, scan_repo
from tests.helpers import git, make_repo

SECRET = "s3cr3t-Value-For-Scan-9f2"
OLD = "old-history-only-Token-77c"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def test_clean_repo_has_no_hits(repo: Path) -> None:
    report = scan_repo(repo, {"API_TOKEN": SECRET}, history=True)
    assert report.hits == [] and report.exit_code == 0
    assert [f.code for f in report.findings] == ["SECRETS_SCAN_CLEAN"]
    assert report.files_scanned == 2 and report.commits_scanned == 1


def test_committed_secret_is_reported_by_file_line_and_name(repo: Path) -> None:
    (repo / "config.py").write_text(f"x = 1\n\nTOKEN = '{SECRET}'\n")
    git(repo, "add", "config.py")
    git(repo, "commit", "-q", "-m", "oops")
    report = scan_repo(repo, {"API_TOKEN": SECRET, "SHORT": "abc"})
    assert [(h.name, h.path, h.line, h.commit) for h in report.hits] == [
        ("API_TOKEN", "config.py", 3, None)
    ]
    assert report.exit_code == 1
    text = report.to_json()
    assert SECRET not in text and "config.py:3" in text
    assert json.loads(text)["data"]["hits"][0]["name"] == "API_TOKEN"


def test_secret_only_in_history_needs_history(repo: Path) -> None:
    (repo / "app.env.py").write_text(f"a = 1\nkey = '{OLD}'\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "add")
    git(repo, "rm", "-q", "app.env.py")
    git(repo, "commit", "-q", "-m", "remove")
    secrets = {"OLD_TOKEN": OLD}
    assert scan_repo(repo, secrets).hits == []
    report = scan_repo(repo, secrets, history=True)
    assert len(report.hits) == 1
    hit = report.hits[0]
    assert (hit.name, hit.path, hit.line) == ("OLD_TOKEN", "app.env.py", 2)
    assert hit.commit and len(hit.commit) == 40
    assert report.exit_code == 1 and report.commits_scanned == 3


def test_multiline_value_is_found_in_files_and_history(repo: Path) -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
    (repo / "key.pem").write_text("header\n" + pem + "\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "key")
    report = scan_repo(repo, {"PRIVATE_KEY": pem}, history=True)
    places = {(h.path, h.line, h.commit is None) for h in report.hits}
    assert places == {("key.pem", 2, True), ("key.pem", 3, False)}


def test_env_files_tracked_unignored_and_readable(repo: Path) -> None:
    (repo / ".env").write_text("A=1\n")
    (repo / ".env").chmod(0o644)
    (repo / ".env.example").write_text("A=\n")
    sub = repo / "svc"
    sub.mkdir()
    (sub / ".env.local").write_text("B=2\n")
    (sub / ".env.local").chmod(0o600)
    (repo / "prod.env").write_text("C=3\n")
    (repo / "prod.env").chmod(0o600)
    git(repo, "add", "prod.env", ".env.example")
    git(repo, "commit", "-q", "-m", "env")
    found = {(f.code, f.subject) for f in check_env_files(repo)}
    assert found == {
        ("SECRETS_ENV_PERMISSIONS", ".env"),
        ("SECRETS_ENV_NOT_IGNORED", "svc/.env.local"),
        ("SECRETS_ENV_TRACKED", "prod.env"),
    }


def test_values_declared_not_secret_are_not_searched(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "ops.md").write_text("alerts go to ops-team@example.com via smtp.example.com\n")
    (repo / "settings.py").write_text(f"PASSWORD = '{SECRET}'\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "docs")
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("ALERT_TO", "ops-team@example.com")
    monkeypatch.setenv("SMTP_PASSWORD", SECRET)
    report = scan_loaded(load_config(), repo)
    assert [(h.name, h.path) for h in report.hits] == [("SMTP_PASSWORD", "settings.py")]


def test_not_a_git_repository_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(NotAGitRepository) as err:
        scan_repo(tmp_path, {"A": SECRET})
    assert err.value.exit_code == 2
