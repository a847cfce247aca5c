"""The secrets package's error leaves.

``SecretsError`` (exit 3) is the domain base from :mod:`ops.errors`. Source
errors say *why* a source gave no answer, because the loader treats each
differently: unavailable falls through to the next source (and may use the
cache), access denied is a hard stop (exit 4), not found is an empty answer.
No message ever contains a secret value.
"""

from __future__ import annotations

from ops.errors import EXIT_FAILED, DependencyUnreachable, SecretsError

__all__ = [
    "SecretMissing",
    "SecretsCryptoError",
    "SecretsError",
    "SourceAccessDenied",
    "SourceCredentialMissing",
    "SourceError",
    "SourceInvalid",
    "SourceNotFound",
    "SourceUnavailable",
    "SourceWriteRejected",
    "UnsafeEnvironment",
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


class UnsafeEnvironment(SecretsError):
    """A source tried to inject a dangerous variable (LD_PRELOAD, PYTHONPATH...) into `run`."""
