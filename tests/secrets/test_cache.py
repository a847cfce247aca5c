"""The offline cache: a random 256-bit key (no KDF), from EMPIRE_CACHE_KEY or a 0600 file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ops.config import Config, load_config
from ops.secrets import load_secrets
from ops.secrets.cache import SecretsCache
from ops.secrets.crypto import KEY_MAGIC, encrypt_blob, new_key, parse_key
from ops.secrets.model import SecretValue
from tests.conftest import REPO
from tests.secrets.conftest import Moto, aws_config, write_config

VALUES = {"API_TOKEN": SecretValue("API_TOKEN", "tok-cached-0123456789", "vault", "p@1")}


def cache(lookup: dict[str, str] | None = None) -> SecretsCache:
    return SecretsCache(load_config(), (lookup or {}).get)


def test_without_a_key_secret_a_random_key_file_is_made_once_0600(tmp_path: Path) -> None:
    first = cache()
    first.store("vault", "vault secret/x", VALUES)
    key_file = tmp_path / ".empire/secrets/cache.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(parse_key(key_file.read_text(), "file")) == 32
    blob = (tmp_path / ".empire/secrets/cache/vault.bin").read_bytes()
    assert blob.startswith(KEY_MAGIC) and b"tok-cached" not in blob
    again = cache().load("vault", "vault secret/x")
    assert again is not None and again.values["API_TOKEN"].value == "tok-cached-0123456789"
    assert cache().key() == first.key()  # read back, not replaced


def test_the_key_secret_wins_and_no_key_file_is_written(tmp_path: Path) -> None:
    key = new_key()
    with_key = cache({"EMPIRE_CACHE_KEY": key})
    with_key.store("vault", "w", VALUES)
    assert not (tmp_path / ".empire/secrets/cache.key").exists()
    assert with_key.key() == bytes.fromhex(key)
    assert cache({"EMPIRE_CACHE_KEY": key}).load("vault", "w") is not None
    # A copy of the cache folder without the key reads as absent, not as a crash.
    assert cache({"EMPIRE_CACHE_KEY": new_key()}).load("vault", "w") is None
    assert cache().load("vault", "w") is None


def test_a_malformed_key_secret_disables_the_cache_without_leaking_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "not-a-key-but-a-secret-value-42"
    broken = cache({"EMPIRE_CACHE_KEY": bad})
    broken.store("vault", "w", VALUES)
    assert not (tmp_path / ".empire/secrets/cache/vault.bin").exists()
    assert broken.load("vault", "w") is None
    assert "EMPIRE_CACHE_KEY is not a 256-bit key" in caplog.text and bad not in caplog.text


def test_a_cache_in_the_old_passphrase_format_is_absent_and_refetched(
    tmp_path: Path, aws: Moto
) -> None:
    aws.client().create_secret(Name="empire/prod", SecretString=json.dumps({"A_TOKEN": "new-v"}))
    write_config(tmp_path, aws_config(aws))
    old_key = "ab" * 32  # the old cache.key held 64 hex characters, used as a passphrase
    (tmp_path / ".empire/secrets/cache").mkdir(parents=True)
    (tmp_path / ".empire/secrets/cache.key").write_text(old_key)
    old = encrypt_blob(json.dumps({"where": "empire/prod in us-east-1"}).encode(), old_key)
    cache_file = tmp_path / ".empire/secrets/cache/awssm.bin"
    cache_file.write_bytes(old)
    assert cache().load("awssm", "empire/prod in us-east-1") is None
    offline = load_secrets(load_config(), offline=True)
    assert "awssm: unavailable" in offline.consulted  # absent, not an internal error
    online = load_secrets(load_config())
    assert online.secrets["A_TOKEN"] == "new-v"
    assert cache_file.read_bytes().startswith(KEY_MAGIC)  # refetched and rewritten
    assert load_secrets(load_config(), offline=True).secrets["A_TOKEN"] == "new-v"


def test_two_first_runs_at_once_agree_on_one_key(tmp_path: Path) -> None:
    for attempt in range(5):
        (tmp_path / "empire-ops.toml").write_text(f'[project]\nstate_dir = "st{attempt}"\n')
        config = load_config()
        barrier = threading.Barrier(8)
        keys: list[bytes] = []

        def make(config: Config, barrier: threading.Barrier, keys: list[bytes]) -> None:
            one = SecretsCache(config, {}.get)
            barrier.wait()
            keys.append(one.key())

        threads = [threading.Thread(target=make, args=(config, barrier, keys)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(keys) == 8 and len(set(keys)) == 1
        folder = tmp_path / f"st{attempt}/secrets"
        assert sorted(os.listdir(folder)) == ["cache.key"]  # no temporary file left behind
        assert parse_key((folder / "cache.key").read_text(), "f") == keys[0]


def test_two_processes_at_once_agree_on_one_key(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from ops.config import load_config\n"
        "from ops.secrets.cache import SecretsCache\n"
        "print(SecretsCache(load_config(), {}.get).key().hex())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(4)
    ]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1
    assert (tmp_path / ".empire/secrets/cache.key").read_text().strip() == keys.pop()


def test_a_cache_round_trip_derives_no_key(tmp_path: Path) -> None:
    # The boot path used to pay ~200 ms of scrypt per remote fetch: the KDF is not loaded now.
    code = (
        "import sys\n"
        "from ops.config import load_config\n"
        "from ops.secrets.cache import SecretsCache\n"
        "from ops.secrets.model import SecretValue\n"
        "c = SecretsCache(load_config(), {}.get)\n"
        "c.store('vault', 'w', {'A': SecretValue('A', 'value-123456', 'vault')})\n"
        "assert c.load('vault', 'w').values['A'].value == 'value-123456'\n"
        "print([m for m in sys.modules if 'kdf' in m])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
