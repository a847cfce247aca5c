"""The canary test: no secret value, in any encoding, escapes through any secrets command.

Unique canary values are seeded into every source (environment, a .env file,
the real OpenBao server, moto's Secrets Manager, the HTTP fallback) and into the
credentials empire-ops uses to reach them. Then every secrets command of
issue 3 runs — success and failure paths, with ``--debug``, ``--json`` and a
log file configured — and every byte of stdout, stderr, the log file and every
file written under the working folder (state dir, caches, snapshots, temp
files) is searched for each canary, raw, JSON-escaped, percent-encoded and
base64-encoded. Only the explicit export/sync/restore targets (``out/``), the
seeded inputs and the scanned repository may hold them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as pysecrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from ops.logs import clear_secret_values
from ops.secrets.export import render_dotenv
from tests.conftest import REPO, PgServer
from tests.helpers import encoded_forms, git, make_repo, write_env
from tests.openbao import OpenBao
from tests.secrets.conftest import DocServer, Moto


def canary(tag: str) -> str:
    # Characters that percent-encoding and JSON change, so every form differs.
    return f"CNRY-{tag}-{pysecrets.token_hex(8)}-p/s:w@rd+x$y"


@dataclass
class Canaries:
    values: dict[str, str] = field(default_factory=dict)

    def new(self, name: str) -> str:
        self.values[name] = canary(name)
        return self.values[name]

    def find(self, text: str) -> list[str]:
        return [
            f"{name} ({form[:6]}…)"
            for name, value in self.values.items()
            for form in encoded_forms(value)
            if form in text
        ]


@dataclass
class World:
    tmp: Path
    canaries: Canaries
    vault: OpenBao
    doc: DocServer
    aws: Moto
    outputs: list[tuple[str, str]] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, sub: bool = False, extra: dict[str, str] | None = None) -> int:
        """Run one command (in-process or in a subprocess); keep its output; return its code."""
        label = " ".join(args) + (f" {sorted(extra)}" if extra else "")
        env = {**self.env, **(extra or {})}
        if sub:
            full = {**os.environ, **env, "PYTHONPATH": str(REPO), "TMPDIR": str(self.tmp / "tmp")}
            proc = subprocess.run(
                [sys.executable, "-m", "ops", *args],
                capture_output=True, text=True, env=full, timeout=120, cwd=self.tmp,
            )  # fmt: skip
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        else:
            from typer.testing import CliRunner

            from ops.cli import app

            # A fresh process would not know earlier commands' values: forget them,
            # so redaction cannot hide a leak that only this command would cause.
            clear_secret_values()
            result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
            code, out, err = result.exit_code, result.stdout, result.stderr
        self.outputs.append((label, out + err))
        self.codes[label] = code
        return code


@pytest.fixture
def world(
    tmp_path: Path,
    http_doc: DocServer,
    aws: Moto,
    migrated_db: str,
    pg: PgServer,
    openbao: OpenBao,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    c = Canaries()
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    # Credentials that reach the stores are secrets too: the Vault token is a real one
    # (root, on the session's OpenBao; the fixture revokes it and unseals after the test).
    token = c.new("VAULT_TOKEN")
    vault = openbao
    vault.add_token(token, None)
    vault.put("secret", "empire/canary", {"VAULT_CANARY": c.new("VAULT_CANARY"),
              "ADMIN_DASHBOARD_TOKEN": c.new("ADMIN_DASHBOARD_TOKEN")})  # fmt: skip
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", c.new("AWS_SECRET_ACCESS_KEY"))
    aws.client().create_secret(
        Name="empire/canary", SecretString=json.dumps({"AWS_CANARY": c.new("AWS_CANARY")})
    )
    http_doc.routes["/secrets.json"] = (
        200,
        json.dumps({"HTTPS_CANARY": c.new("HTTPS_CANARY")}).encode(),
    )
    db_password = f"CNRYdbpw{pysecrets.token_hex(10)}"  # URL-safe: it sits in a DSN
    c.values["DB_PASSWORD"] = db_password
    # The server checks passwords, so the canary is a real role's password.
    dbname = migrated_db.split("?", 1)[0].rsplit("/", 1)[1]
    dsn = pg.login_role("canary_owner", "superuser", dbname=dbname, password=db_password)
    c.values["DATABASE_URL"] = dsn
    dotenv = {
        "SMTP_PASSWORD": c.new("SMTP_PASSWORD"),
        "EMPIRE_SNAPSHOT_PASSPHRASE": c.new("EMPIRE_SNAPSHOT_PASSPHRASE"),
        "FALLBACK_TOKEN": c.new("FALLBACK_TOKEN"),
        "DOTENV_MULTILINE": c.new("ML1") + "\n" + c.new("ML2"),
    }
    write_env(tmp_path / ".env", render_dotenv(dotenv))
    (tmp_path / "empire-ops.toml").write_text(
        f"""
[logging]
file = "empire-ops.log"

[secrets.sources.vault]
address = "{vault.url}"
mount = "secret"
path = "empire/canary"
timeout = "2s"

[secrets.sources.awssm]
secret_id = "empire/canary"
region = "us-east-1"
endpoint_url = "{aws.endpoint}"
timeout = "2s"

[secrets.sources.https]
url = "{http_doc.url}/secrets.json"
format = "json"
bearer_secret = "FALLBACK_TOKEN"
timeout = "2s"
"""
    )
    env = {
        "VAULT_TOKEN": token,
        "DATABASE_URL": dsn,
        "SUPABASE_JWT_SECRET": c.new("SUPABASE_JWT_SECRET"),
    }
    yield World(tmp_path, c, vault, http_doc, aws, env=env)


def _written_files(root: Path) -> Iterator[Path]:
    skip = {root / ".env", root / "out", root / "repo", root / "bad.env"}
    for path in sorted(root.rglob("*")):
        if any(path == s or s in path.parents for s in skip):
            continue
        if path.is_file():
            yield path


def test_no_canary_escapes_any_secrets_command(world: World) -> None:
    w = world
    ok = w.cli
    # -- load: preflight, status, run (success) -----------------------------------------
    assert ok("preflight") == 0, w.outputs[-1]
    assert ok("preflight", "--json") == 0
    assert ok("--debug", "preflight", "--json", sub=True) == 0, w.outputs[-1]
    assert ok("secrets", "status") == 0
    assert ok("--debug", "secrets", "status", "--json") == 0
    assert ok("run", "--", "true", sub=True) == 0, w.outputs[-1]
    assert ok("--debug", "run", "--", "sh", "-c", "exit 7", sub=True) == 7
    # -- load: failure paths --------------------------------------------------------------
    assert ok("preflight", "--env", "prod", "--json") == 3
    assert ok("--debug", "run", "--env", "prod", "--", "true") == 3
    bad_key = {"SUPABASE_ANON_KEY": w.canaries.new("BAD_ANON_KEY")}
    assert ok("--debug", "preflight", extra=bad_key) == 3
    assert ok("preflight", "--json", extra=bad_key) == 3
    # Vault sealed: the stale cache is used, with a warning.
    w.vault.sealed = True
    assert ok("--debug", "secrets", "status", "--json") == 0
    assert ok("preflight", "--offline") == 0
    assert ok("--debug", "secrets", "snapshot") == 4  # never a snapshot of stale values
    w.vault.sealed = False
    # HTTPS fallback serving broken JSON that holds a canary.
    good_doc = w.doc.routes["/secrets.json"]
    broken = b'{"HTTPS_BROKEN": "' + w.canaries.new("HTTPS_BROKEN").encode() + b'",'
    w.doc.routes["/secrets.json"] = (200, broken)
    assert ok("--debug", "preflight", "--json") == 3
    w.doc.routes["/secrets.json"] = good_doc
    # -- sync / diff ------------------------------------------------------------------------
    aws_url = f"awssm:empire/copy?region=us-east-1&endpoint_url={w.aws.endpoint}"
    assert ok("secrets", "sync", "--from", "vault", "--to", "dotenv:out/sync.env") == 0
    assert (
        ok(
            "--debug",
            "secrets",
            "sync",
            "--from",
            "dotenv",
            "--to",
            "vault:secret/empire/copy",
            "--json",
        )
        == 0
    )
    assert ok("secrets", "sync", "--from", "vault", "--to", aws_url, "--dry-run", "--json") == 0
    assert ok("secrets", "sync", "--from", "vault", "--to", aws_url, "--prune") == 0
    assert ok("secrets", "sync", "--from", "dotenv", "--to", "env:") == 2
    assert ok("--debug", "secrets", "diff", "vault", "awssm", "--json") == 1
    assert ok("secrets", "diff", "dotenv", "https") == 1, w.outputs[-1]
    missing = f"awssm:empire/nope?region=us-east-1&endpoint_url={w.aws.endpoint}"
    assert ok("--debug", "secrets", "diff", "dotenv", missing) != 0
    (w.tmp / "bad.env").write_text(f"GOOD=1\nthis line {w.canaries.new('BAD_LINE')} is broken\n")
    assert ok("--debug", "secrets", "diff", "dotenv:bad.env", "dotenv") == 3
    # -- export -------------------------------------------------------------------------------
    assert ok("secrets", "export", "--format", "dotenv", "--out", "out/export.env") == 0
    assert ok("--debug", "secrets", "export", "--format", "json", "--out", "out/export.json") == 0
    assert ok("secrets", "export", "--format", "json") == 2
    # -- snapshot / restore -----------------------------------------------------------------
    assert ok("secrets", "snapshot") == 0
    assert ok("--debug", "secrets", "snapshot", "--json") == 0
    snaps = sorted((w.tmp / ".empire" / "snapshots").glob("*.snap"))
    assert len(snaps) == 2
    assert ok("secrets", "restore-snapshot", str(snaps[0]), "--to", "dotenv:out/restored.env") == 0
    assert (
        ok(
            "secrets",
            "restore-snapshot",
            str(snaps[0]),
            "--to",
            "vault:secret/empire/restored",
            "--json",
        )
        == 0
    )
    wrong = {"EMPIRE_SNAPSHOT_PASSPHRASE": w.canaries.new("WRONG_PASSPHRASE")}
    assert (
        ok(
            "--debug",
            "secrets",
            "restore-snapshot",
            str(snaps[1]),
            "--to",
            "dotenv:out/never.env",
            extra=wrong,
        )
        == 3
    )
    corrupt = w.tmp / "out" / "corrupt.snap"
    corrupt.write_bytes(snaps[1].read_bytes()[:-5] + b"xxxxx")
    assert (
        ok(
            "--debug",
            "secrets",
            "restore-snapshot",
            str(corrupt),
            "--to",
            "dotenv:out/never.env",
            sub=True,
        )
        == 3
    )
    assert not (w.tmp / "out" / "never.env").exists()
    # -- scan ---------------------------------------------------------------------------------
    repo = make_repo(w.tmp / "repo")
    (repo / "leak.py").write_text(f"KEY = '{w.canaries.values['VAULT_CANARY']}'\n")
    git(repo, "add", "leak.py")
    git(repo, "commit", "-q", "-m", "leak")
    assert ok("secrets", "scan", "--repo", "repo") == 1
    assert ok("--debug", "secrets", "scan", "--repo", "repo", "--history", "--json") == 1
    assert ok("secrets", "scan", "--repo", "repo/../out") == 2  # not a git repository
    # -- Vault denies the token: exit 4, and its cache is deleted ---------------------------
    denied = {"VAULT_TOKEN": w.canaries.new("DENIED_TOKEN")}
    assert ok("--debug", "preflight", "--json", extra=denied) == 4
    assert ok("run", "--", "true", extra=denied) == 4

    # The failure paths failed for the reasons meant (so the search covers them).
    said = dict(w.outputs)
    stale = [t for label, t in w.outputs if "SECRETS_STALE_CACHE" in t]
    assert len(stale) >= 2, "the sealed Vault did not make the loader use its cache"
    assert any("SECRETS_SOURCE_DENIED" in t for _, t in w.outputs)
    assert any("Traceback" in t for _, t in w.outputs), "no --debug traceback was exercised"
    assert any("SECRETS_LEAK" in t for _, t in w.outputs)
    assert "SUPABASE_ANON_KEY" in said["--debug preflight ['SUPABASE_ANON_KEY']"]

    # -- the search ------------------------------------------------------------------------------
    if os.environ.get("CANARY_DUMP"):  # to read what the commands said: CANARY_DUMP=/tmp/x pytest
        dump = "\n".join(f"===== {label}\n{text}" for label, text in w.outputs)
        Path(os.environ["CANARY_DUMP"]).write_text(dump)
    leaks = [
        f"output of `{label}`: {hit}" for label, text in w.outputs for hit in w.canaries.find(text)
    ]
    files = list(_written_files(w.tmp))
    assert any(p.name == "empire-ops.log" for p in files), "the log file was not written"
    assert any(p.suffix == ".snap" for p in files) and any(p.suffix == ".bin" for p in files)
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        leaks += [f"file {path.relative_to(w.tmp)}: {hit}" for hit in w.canaries.find(text)]
    assert leaks == [], "canaries leaked:\n" + "\n".join(leaks)
    # The explicit targets did get the values (the search would have seen them).
    assert w.canaries.values["VAULT_CANARY"] in (w.tmp / "out" / "sync.env").read_text()
    assert w.canaries.values["SMTP_PASSWORD"] in (w.tmp / "out" / "export.json").read_text()


def test_the_search_sees_every_encoding() -> None:
    c = Canaries()
    value = c.new("SELF_TEST")
    for shift in range(3):
        pad = "x" * shift
        assert c.find("..." + base64.b64encode((pad + value + "tail").encode()).decode())
        assert c.find(base64.urlsafe_b64encode((pad + value).encode()).decode())
    assert c.find(f"url?q={quote_plus(value)}&x=1") and c.find(quote(value, safe=""))
    assert c.find(json.dumps({"k": value})) and c.find(f"log: {value}")
    assert not c.find("[REDACTED] " + value[:10])
