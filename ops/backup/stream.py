"""Reading a backup back: stored bytes -> sha256 check -> age -> zstd -> a sink, in one pass.

Used by `backup verify` (the sink is `pg_restore --list`), `restore` and
`drill run` (the sink is `pg_restore -d`, or a file for ``-j N``: a parallel
restore needs a seekable archive). The stored bytes are hashed as they are
read, so a backup is checked by the same pass that uses it.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from ops.backup.errors import BackupCorrupt
from ops.backup.manifest import Artifact, BackupManifest
from ops.backup.repo.base import Repository, iter_chunks
from ops.errors import SecretsError

if TYPE_CHECKING:
    from ops.config import Config

CHUNK = 1 << 20


class ObservedReader:
    """A reader that tells ``on_read`` how many bytes each read returned (progress)."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None] | None = None) -> None:
        self.raw = raw
        self.on_read = on_read

    def readable(self) -> bool:
        return True

    def _seen(self, data: bytes) -> None:
        if self.on_read is not None:
            self.on_read(len(data))

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n and n > 0 else CHUNK)
        self._seen(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _HashingReader(ObservedReader):
    """An observed reader that also hashes and counts what passes through it."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None] | None = None) -> None:
        super().__init__(raw, progress)
        self.sha = hashlib.sha256()
        self.size = 0

    def _seen(self, data: bytes) -> None:
        self.sha.update(data)
        self.size += len(data)
        super()._seen(data)


class StderrDrain:
    """A child's stderr read as it comes, in a thread: a child blocks on a full pipe
    when it has much to say (pg_restore's errors), and would never finish."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.chunks: list[bytes] = []
        pipe = proc.stderr
        self.thread = threading.Thread(
            target=lambda: self.chunks.append(pipe.read()) if pipe is not None else None,
            daemon=True,
        )
        self.thread.start()

    def text(self, timeout: float = 30) -> str:
        """All the child wrote (call once it has exited)."""
        self.thread.join(timeout=timeout)
        return b"".join(self.chunks).decode("utf-8", "replace")


class ProcessSink:
    """Feeds a child's stdin; once the child stops reading (``--list`` reads only the TOC),
    the rest is counted and dropped, so the whole artifact is still read and hashed."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.closed_early = False
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        chunk = bytes(data)
        self.size += len(chunk)
        if not self.closed_early and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(chunk)
            except (BrokenPipeError, ValueError):
                self.closed_early = True
        return len(chunk)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.proc.stdin is not None and not self.closed_early:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                self.closed_early = True


def load_identity(config: Config) -> Any:
    """The age identity from the secret ``[backup] identity_secret``, for encrypted backups.

    Raises SecretsError (exit 3) when the secret is missing or is not an age
    identity (``AGE-SECRET-KEY-1…``); the value is never shown.
    """
    from pyrage import x25519

    from ops.secrets import load_secrets

    name = config.get("backup.identity_secret")
    value = load_secrets(config).secrets.get(name, "")
    if not value:
        raise SecretsError(
            f"the backup is encrypted, and the secret {name} (the age identity) is not set",
            hint=f"set {name} where restores and drills run (env, .env, Vault, AWS SM); it is "
            "the AGE-SECRET-KEY-1... line of the key made with age-keygen",
        )
    try:
        return x25519.Identity.from_str(value.strip())
    except Exception:
        raise SecretsError(
            f"the secret {name} is not an age identity",
            hint="it must be the AGE-SECRET-KEY-1... line written by age-keygen (not the "
            "public age1... key, which goes in [backup] recipients)",
        ) from None


@dataclass
class ReadResult:
    """What one pass over an artifact saw."""

    stored_size: int
    stored_sha256: str
    decoded_size: int


def read_artifact(
    repo: Repository,
    manifest: BackupManifest,
    artifact: Artifact,
    sink: Any,
    *,
    identity: Any = None,
    progress: Callable[[int], None] | None = None,
) -> ReadResult:
    """Stream ``artifact`` through age and zstd into ``sink`` (``write``), checking it.

    Raises BackupCorrupt (exit 1) when the stored size or sha256 differs from
    the manifest, or the bytes do not decrypt or decompress; SecretsError
    (exit 3) when it is encrypted and ``identity`` is None or not one of its
    recipients' (nothing reaches ``sink`` then but undecodable bytes: none).
    ``progress`` is called with each count of stored bytes read.
    """
    where = f"{repo.name}:{manifest.backup_id}/{artifact.name}"
    if artifact.encrypted and identity is None:
        raise SecretsError(f"{where} is encrypted and no age identity was given")
    raw = repo.open_artifact(manifest.backup_id, artifact.name)
    reader = _HashingReader(raw, progress)
    decoded = _CountingSink(sink)
    try:
        target: Any = decoded
        decompressor = None
        if artifact.compression == "zstd":
            import zstandard

            decompressor = zstandard.ZstdDecompressor().stream_writer(
                decoded,  # type: ignore[arg-type]  # any object with write() will do
                write_size=CHUNK,
                closefd=False,
            )
            target = decompressor
        if artifact.encrypted:
            import pyrage

            try:
                pyrage.decrypt_io(reader, target, [identity])
            except pyrage.DecryptError as exc:
                if "No matching keys" in str(exc) or "no identity matched" in str(exc).lower():
                    raise SecretsError(
                        f"{where}: the age identity is not one of this backup's recipients",
                        hint=f"use the identity whose public key was in [backup] recipients "
                        f"when it was taken (fingerprints: {', '.join(manifest.recipients)})",
                    ) from None
                raise
        else:
            for chunk in iter_chunks(reader, CHUNK):  # type: ignore[arg-type]
                target.write(chunk)
        if decompressor is not None:
            decompressor.flush()
        while reader.read(CHUNK):  # what decryption did not need (nothing, normally)
            pass
    except SecretsError:
        raise
    except Exception as exc:  # zstd/age errors on damaged bytes
        while reader.read(CHUNK):  # hash the whole stored copy: a sha mismatch says more
            pass
        _check_sums(reader, artifact, where)
        raise BackupCorrupt(
            f"{where} does not decode: {type(exc).__name__}: {exc}",
            hint="the stored copy is damaged; restore from another backup or repository",
        ) from None
    finally:
        raw.close()
    _check_sums(reader, artifact, where)
    return ReadResult(reader.size, reader.sha.hexdigest(), decoded.size)


class _CountingSink:
    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.size += len(data)
        self.sink.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def _check_sums(reader: _HashingReader, artifact: Artifact, where: str) -> None:
    if reader.size != artifact.size or reader.sha.hexdigest() != artifact.sha256:
        raise BackupCorrupt(
            f"{where} differs from its manifest: {reader.size} bytes, sha256 "
            f"{reader.sha.hexdigest()[:16]}..., recorded {artifact.size} bytes, sha256 "
            f"{artifact.sha256[:16]}...",
            hint="the stored copy is damaged; restore from another backup or repository",
        )
