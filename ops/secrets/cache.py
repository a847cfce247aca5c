"""The encrypted last-known-good cache of each remote source (the offline fallback).

After every successful remote fetch, the values are written encrypted
(AES-256-GCM under a random 256-bit key, no KDF: :func:`ops.secrets.crypto.encrypt_with_key`),
atomically, mode 0600, to ``<state_dir>/secrets/cache/<source>.bin``. The
loader reads a cache only while its source is *unavailable* (or with
``--offline``) and only within ``max_age``; on 401/403/404 it deletes it.

The key is the secret named by ``secrets.cache.key_secret`` (default
``EMPIRE_CACHE_KEY``: 64 hex or 44 base64 characters, from the environment or
an earlier local source such as ``.env``) when it is set, else a random key in
``<state_dir>/secrets/cache.key`` (mode 0600), created exclusively so that two
first runs at once agree on one key. What this protects against, and what it
does not, is docs/decisions/0005. A cache that cannot be decrypted (another
key, the older passphrase format, a damaged file) counts as absent.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ops.errors import OpsError
from ops.fsutil import atomic_write_bytes, create_exclusive
from ops.secrets.errors import SecretsError
from ops.secrets.model import SecretValue

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)

DEFAULT_KEY_SECRET = "EMPIRE_CACHE_KEY"
KEY_FILE = "cache.key"


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
        self.key_secret = config.get("secrets.cache.key_secret") or DEFAULT_KEY_SECRET
        self.lookup = lookup
        self._key: bytes | None = None

    def path(self, source: str) -> Path:
        return self.dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", source) + ".bin")

    @property
    def key_file(self) -> Path:
        return self.root / KEY_FILE

    def key(self) -> bytes:
        """The 32-byte cache key: the ``key_secret`` secret when set, else the key file.

        The file is created on first use (mode 0600, exclusively: of two
        processes creating it at once, one writes it and both use that one).
        Raises SecretsCryptoError for a secret or file that is not a 256-bit
        key, and StorageError (an OSError) when the file cannot be written.
        """
        if self._key is None:
            from ops.secrets.crypto import new_key, parse_key

            value = self.lookup(self.key_secret)
            if value:
                self._key = parse_key(value, self.key_secret)
            else:
                try:
                    create_exclusive(self.key_file, (new_key() + "\n").encode(), mode=0o600)
                except FileExistsError:
                    pass  # made earlier, or by a run that started at the same time
                self._key = parse_key(self.key_file.read_text(), str(self.key_file))
        return self._key

    def store(self, source: str, where: str, values: dict[str, SecretValue]) -> None:
        """Write ``values`` for ``source``; failures are logged (by source name) and ignored."""
        from ops.secrets.crypto import encrypt_with_key

        payload = {
            "source": source,
            "where": where,
            "fetched_at": time.time(),
            "values": {n: [v.value, v.detail] for n, v in values.items()},
        }
        try:
            blob = encrypt_with_key(json.dumps(payload).encode(), self.key())
            atomic_write_bytes(self.path(source), blob, mode=0o600)
        except (OSError, SecretsError) as exc:
            log.warning("secrets cache for %s not written: %s", source, _why(exc))

    def load(self, source: str, where: str) -> CachedSecrets | None:
        """The cache of ``source`` if it decrypts, matches ``where`` and is within max_age.

        None (absent) for a missing, undecryptable (other key, older format,
        damaged) or malformed cache: never an error, the source is refetched.
        """
        from ops.secrets.crypto import decrypt_with_key

        path = self.path(source)
        try:
            blob = path.read_bytes()
            payload = json.loads(decrypt_with_key(blob, self.key()))
            values = {
                n: SecretValue(n, v, source, f"{d} (cached)")
                for n, (v, d) in payload["values"].items()
            }
            fetched_at = float(payload.get("fetched_at", 0))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError, AttributeError, SecretsError) as exc:
            log.warning("secrets cache for %s unusable, treated as absent: %s", source, _why(exc))
            return None
        age = time.time() - fetched_at
        if payload.get("where") != where or age > self.max_age or age < -300:
            return None
        return CachedSecrets(values, where, age)

    def drop(self, source: str) -> bool:
        """Delete the cache of ``source``; True when there was one."""
        try:
            self.path(source).unlink()
        except FileNotFoundError:
            return False
        log.warning("secrets cache for %s deleted", source)
        return True


def _why(exc: BaseException) -> str:
    # Our own errors' messages never hold a value; anything else is named by type only.
    return exc.message if isinstance(exc, OpsError) else type(exc).__name__
