"""The secrets package's error leaves.

``SecretsError`` (exit 3) is the domain base from :mod:`ops.errors`. Source
errors say *why* a source gave no answer, because the loader treats each
differently: unavailable falls through to the next source (and may use the
cache), access denied is a hard stop (exit 4), not found is an empty answer.
No message ever contains a secret value.
"""

from __future__ import annotations

from ops.errors import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_SECRETS,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ConfigError,
    DependencyUnreachable,
    LockBusy,
    SecretsError,
)

__all__ = [
    "SecretMissing",
    "SecretsBusy",
    "SecretsCheckFailed",
    "SecretsCryptoError",
    "SecretsError",
    "SecretsMisconfigured",
    "SecretsUnavailable",
    "SourceAccessDenied",
    "SourceCredentialMissing",
    "SourceError",
    "SourceInvalid",
    "SourceNotFound",
    "SourceUnavailable",
    "SourceWriteRejected",
    "UnsafeEnvironment",
    "gap_error",
]


class SourceError(SecretsError):
    """Base of the errors a secret source raises; ``source`` names it (never a value)."""

    def __init__(self, message: str, *, source: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.source = source


class SourceUnavailable(SourceError, DependencyUnreachable):
    """The source did not answer (network error, timeout, 5xx, Vault sealed or standby).

    The loader falls through to the next source; exit 4 if it escapes.
    """

    exit_code = DependencyUnreachable.exit_code


class SourceAccessDenied(SourceError, DependencyUnreachable):
    """The source refused our credentials (401/403): a hard error, never a fall-through."""

    exit_code = DependencyUnreachable.exit_code


class SourceNotFound(SourceError):
    """The configured secret, path or file does not exist at the source (404)."""


class SourceInvalid(SourceError):
    """The source answered with something unusable (malformed .env line, bad JSON, sha256)."""


class SourceCredentialMissing(SourceInvalid):
    """The credential a source needs (a Vault token, AppRole ids) is not set: nothing was sent.

    A configuration problem, not a refusal: the credential is itself a missing secret
    (exit 3), the chain reports the source as invalid, and its cache is kept.
    """


class SourceWriteRejected(SourceError):
    """The store refused a write it understood as invalid (Vault 400, e.g. a check-and-set
    conflict): not an access refusal, so no cache is touched; ``hint`` says what to do."""

    exit_code = EXIT_FAILED


class SecretsCryptoError(SecretsError):
    """An encrypted blob could not be decrypted: wrong passphrase, tampering or bad format."""


class SecretMissing(SecretsError):
    """A secret a command needs is missing or invalid."""


class SecretsUnavailable(SecretMissing, DependencyUnreachable):
    """Secrets are missing because a source did not answer or refused access (exit 4)."""

    exit_code = EXIT_UNREACHABLE


class SecretsMisconfigured(SecretMissing, ConfigError):
    """Secrets are missing because the secrets configuration is wrong (exit 2)."""

    exit_code = EXIT_USAGE


class SecretsBusy(SecretMissing, LockBusy):
    """Secrets are missing because another run holds a lock they need (exit 5)."""

    exit_code = EXIT_BUSY


class SecretsCheckFailed(SecretMissing):
    """The secrets' checks failed for a reason that is none of the above (exit 1)."""

    exit_code = EXIT_FAILED


_GAP_BY_EXIT: dict[int, type[SecretMissing]] = {
    EXIT_FAILED: SecretsCheckFailed,
    EXIT_USAGE: SecretsMisconfigured,
    EXIT_SECRETS: SecretMissing,
    EXIT_UNREACHABLE: SecretsUnavailable,
    EXIT_BUSY: SecretsBusy,
}


def gap_error(exit_code: int, message: str, *, hint: str | None = None) -> SecretMissing:
    """The :class:`SecretMissing` whose class carries ``exit_code`` (of :func:`exit_code_for`).

    So the exit code is the class's, never a value patched onto an instance.
    """
    return _GAP_BY_EXIT.get(exit_code, SecretMissing)(message, hint=hint)


class UnsafeEnvironment(SecretsError):
    """A source tried to inject a dangerous variable (LD_PRELOAD, PYTHONPATH...) into `run`."""
