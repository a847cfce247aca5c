"""The encrypted last-known-good cache of each remote source (the offline fallback).

After every successful remote fetch, the values are written encrypted (the
snapshot format of :mod:`ops.secrets.crypto`), atomically, mode 0600, to
``<state_dir>/secrets/cache/<source>.bin``. The loader reads a cache only while
its source is *unavailable* (or with ``--offline``) and only within ``max_age``;
on 401/403/404 it deletes it. The passphrase is the secret named by
``secrets.cache.passphrase_secret``, else a random key kept in
``<state_dir>/secrets/cache.key`` (mode 0600).
"""

from __future__ import annotations

import json
import logging
import re
import secrets as pysecrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ops.fsutil import atomic_write_bytes, atomic_write_text
from ops.secrets.errors import SecretsError
from ops.secrets.model import SecretValue

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedSecrets:
    """What a cache held: the values, where they came from, and how old they are."""

    values: dict[str, SecretValue]
    where: str
    age_seconds: float


class SecretsCache:
    """Per-source encrypted cache files under the state folder."""

    def __init__(self, config: Config, lookup: Callable[[str], str | None]) -> None:
        self.root = config.state_dir / "secrets"
        self.dir = self.root / "cache"
        self.max_age = config.seconds("secrets.cache.max_age")
        self.passphrase_secret = config.get("secrets.cache.passphrase_secret")
        self.lookup = lookup

    def path(self, source: str) -> Path:
        return self.dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", source) + ".bin")

    def _passphrase(self) -> str:
        if self.passphrase_secret:
            value = self.lookup(self.passphrase_secret)
            if not value:
                raise SecretsError(
                    f"the cache passphrase secret {self.passphrase_secret} is not set",
                    hint="set it (environment or .env) or unset secrets.cache.passphrase_secret",
                )
            return value
        key_file = self.root / "cache.key"
        if not key_file.exists():
            atomic_write_text(key_file, pysecrets.token_hex(32), mode=0o600)
        return key_file.read_text().strip()

    def store(self, source: str, where: str, values: dict[str, SecretValue]) -> None:
        """Write ``values`` for ``source``; failures are logged (by source name) and ignored."""
        from ops.secrets.crypto import encrypt_blob

        payload = {
            "source": source,
            "where": where,
            "fetched_at": time.time(),
            "values": {n: [v.value, v.detail] for n, v in values.items()},
        }
        try:
            blob = encrypt_blob(json.dumps(payload).encode(), self._passphrase())
            atomic_write_bytes(self.path(source), blob, mode=0o600)
        except (OSError, SecretsError) as exc:
            log.warning("secrets cache for %s not written: %s", source, type(exc).__name__)

    def load(self, source: str, where: str) -> CachedSecrets | None:
        """The cache of ``source`` if it decrypts, matches ``where`` and is within max_age."""
        from ops.secrets.crypto import decrypt_blob

        path = self.path(source)
        try:
            blob = path.read_bytes()
            payload = json.loads(decrypt_blob(blob, self._passphrase()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, SecretsError) as exc:
            log.warning("secrets cache for %s unusable: %s", source, type(exc).__name__)
            return None
        age = time.time() - float(payload.get("fetched_at", 0))
        if payload.get("where") != where or age > self.max_age or age < -300:
            return None
        values = {
            n: SecretValue(n, v, source, f"{d} (cached)") for n, (v, d) in payload["values"].items()
        }
        return CachedSecrets(values, where, age)

    def drop(self, source: str) -> bool:
        """Delete the cache of ``source``; True when there was one."""
        try:
            self.path(source).unlink()
        except FileNotFoundError:
            return False
        log.warning("secrets cache for %s deleted", source)
        return True
