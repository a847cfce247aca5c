"""Helpers shared by test modules: files they write, git repositories, tmpfs mounts, checks.

Fixtures live in the conftest files; these are plain functions a test calls.
Each was written more than once before it moved here.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import typer

from tests.conftest import require_service, server_tmpdir


# -- files -------------------------------------------------------------------------------
def write_config(path: Path, text: str) -> Path:
    """Write ``text`` as the project's ``empire-ops.toml`` in the folder ``path``; its path."""
    target = path / "empire-ops.toml"
    target.write_text(text)
    return target


def write_env(path: Path, values: Mapping[str, str] | str) -> Path:
    """Write a ``.env`` file at ``path``, mode 0600 (as the dotenv source requires); its path.

    ``values`` is the file's text, or names and values written as ``NAME='value'``.
    """
    text = values if isinstance(values, str) else "".join(f"{k}='{v}'\n" for k, v in values.items())
    path.write_text(text)
    path.chmod(0o600)
    return path


# -- TLS ------------------------------------------------------------------------------------
def make_certificate(folder: Path, name: str = "empire-ops test") -> tuple[Path, Path]:
    """A throwaway self-signed CA certificate for 127.0.0.1 and localhost: (cert, key) PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# -- git repositories ----------------------------------------------------------------------
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity and no user or system config; its stdout."""
    env = {**os.environ, **GIT_ENV, "HOME": str(repo)}
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


def make_repo(path: Path) -> Path:
    """A git repository at ``path`` with one commit (README.md, a .gitignore of .env)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / ".gitignore").write_text(".env\n")
    (path / "README.md").write_text("hello\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "init")
    return path


# -- machine faults ------------------------------------------------------------------------
@contextlib.contextmanager
def tmpfs(options: str) -> Iterator[Path]:
    """A tmpfs mounted with ``options`` (e.g. ``ro`` or ``size=4m``) in a folder all can reach.

    What stops root too (EROFS, ENOSPC). Skipped (failed under CI=true) where
    mounting is not allowed.
    """
    root = server_tmpdir("mnt")
    mnt = root / "m"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    try:
        require_service(
            done.returncode == 0, f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}"
        )
        yield mnt
    finally:
        if done.returncode == 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def assert_ordinary(result: Any, code: int, *words: str, secret: str | None = None) -> None:
    """``result`` (a CliResult) is an ordinary fault: exit ``code``, a hint, never a traceback.

    Each of ``words`` is in its stderr; ``secret``, when given, is nowhere in its output.
    """
    output, stderr = result.output, result.stderr
    assert result.exit_code == code, output
    assert "internal error" not in output and "Traceback" not in output
    assert "hint: " in stderr
    for word in words:
        assert word in stderr, stderr
    if secret is not None:
        assert secret not in output


# -- the CLI -------------------------------------------------------------------------------
def cli_commands() -> Iterator[tuple[str, object]]:
    """Every leaf command of the app: (its words, e.g. ``"db start"``, its click command)."""
    from ops.cli import app

    def walk(cmd: object, path: list[str]) -> Iterator[tuple[str, object]]:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), cmd

    yield from walk(typer.main.get_command(app), [])


# -- leaks ---------------------------------------------------------------------------------
def encoded_forms(value: str) -> set[str]:
    """The value as it could appear if it leaked through a URL, JSON, base64…"""
    forms = {value, json.dumps(value)[1:-1], quote(value, safe=""), quote(value), quote_plus(value)}
    raw = value.encode()
    for shift in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            text = enc(b"\0" * shift + raw).decode()
            # Drop the quartets that mix in neighbouring bytes; the core is unique.
            forms.add(text[4 if shift else 0 : -4])
    forms.update(line for line in value.splitlines() if len(line) >= 6)
    return {f for f in forms if len(f) >= 12}


ADMIN_LOGS_REWRITES = (
    "update public.admin_logs set subject = 'rewritten'",
    "delete from public.admin_logs",
    "truncate public.admin_logs",
)


def assert_admin_logs_refuse_rewrites(conn: Any) -> None:
    """Each way of rewriting admin_logs fails with the append-only trigger's message.

    ``conn`` is an autocommit psycopg connection as a role that holds the
    privileges (the owner, or a superuser): the trigger, not a grant, refuses.
    """
    import pytest
    from psycopg import errors

    for statement in ADMIN_LOGS_REWRITES:
        with pytest.raises(errors.RaiseException, match="admin_logs is append-only"):
            conn.execute(statement)
