"""Authenticated encryption for snapshots (a passphrase) and the offline cache (a key).

Snapshots, under a human passphrase (all binary, self-describing)::

    b"EOSNAP1" | salt (16 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext+tag

with the key scrypt(passphrase, salt, n=2**15, r=8, p=1, 32 bytes): the KDF is
what makes a guessable passphrase expensive to attack.

The cache, under a random 256-bit key (no KDF: a random key needs no
stretching, and scrypt cost ~200 ms on every remote fetch; see
docs/decisions/0005)::

    b"EOKEY1" | nonce (12 bytes) | AES-256-GCM ciphertext+tag

In both, the header is authenticated as associated data, so changing any byte
fails decryption. ``cryptography`` is imported inside the functions: the boot
path never pays for it unless a remote source or a snapshot is used.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

from ops.secrets.errors import SecretsCryptoError

MAGIC = b"EOSNAP1"
SALT_LEN = 16
NONCE_LEN = 12
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_HEADER_LEN = len(MAGIC) + SALT_LEN + NONCE_LEN
KEY_MAGIC = b"EOKEY1"
KEY_LEN = 32
_KEY_HEADER_LEN = len(KEY_MAGIC) + NONCE_LEN


def _derive_key(passphrase: str, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    if not passphrase:
        raise SecretsCryptoError(
            "the encryption passphrase is empty", hint="set the passphrase secret to a long value"
        )
    kdf = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return kdf.derive(passphrase.encode("utf-8"))


def encrypt_blob(plaintext: bytes, passphrase: str) -> bytes:
    """Encrypt ``plaintext`` under ``passphrase``; a fresh salt and nonce every call.

    Raises SecretsCryptoError for an empty passphrase.
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt = os.urandom(SALT_LEN)
    nonce = os.urandom(NONCE_LEN)
    header = MAGIC + salt + nonce
    key = _derive_key(passphrase, salt)
    return header + AESGCM(key).encrypt(nonce, plaintext, header)


def decrypt_blob(blob: bytes, passphrase: str) -> bytes:
    """Decrypt a blob made by :func:`encrypt_blob`.

    Raises SecretsCryptoError when the blob is not in this format, was changed,
    or the passphrase is wrong (the two cannot be told apart, by design).
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < _HEADER_LEN + 16 or not blob.startswith(MAGIC):
        raise SecretsCryptoError(
            "not an empire-ops encrypted file (bad header or truncated)",
            hint="check that the file is a snapshot/cache written by empire-ops",
        )
    header = blob[:_HEADER_LEN]
    salt = header[len(MAGIC) : len(MAGIC) + SALT_LEN]
    nonce = header[len(MAGIC) + SALT_LEN :]
    key = _derive_key(passphrase, salt)
    try:
        return AESGCM(key).decrypt(nonce, blob[_HEADER_LEN:], header)
    except InvalidTag:
        raise SecretsCryptoError(
            "cannot decrypt: wrong passphrase, or the file was modified",
            hint="use the passphrase the file was written with; a modified file cannot be read",
        ) from None


def new_key() -> str:
    """A fresh random 256-bit key as 64 hex characters (what :func:`parse_key` reads)."""
    return os.urandom(KEY_LEN).hex()


def parse_key(text: str, where: str) -> bytes:
    """The 32-byte key written as 64 hex characters or as base64 (standard or URL-safe).

    ``where`` names the secret or file in the error. Raises SecretsCryptoError
    (never echoing the text) for anything else.
    """
    text = text.strip()
    raw: bytes | None = None
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raw = bytes.fromhex(text)
    else:
        try:
            raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != KEY_LEN:
        raise SecretsCryptoError(
            f"{where} is not a 256-bit key (64 hex characters or 44 base64 characters)",
            hint='make one with: python -c "import secrets; print(secrets.token_hex(32))"',
        )
    return raw


def encrypt_with_key(plaintext: bytes, key: bytes) -> bytes:
    """Encrypt ``plaintext`` under a random 32-byte ``key``; a fresh nonce every call."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_LEN)
    header = KEY_MAGIC + nonce
    return header + AESGCM(key).encrypt(nonce, plaintext, header)


def decrypt_with_key(blob: bytes, key: bytes) -> bytes:
    """Decrypt a blob made by :func:`encrypt_with_key`.

    Raises SecretsCryptoError when the blob is in another format (for example
    a cache written with the older passphrase scheme), was changed, or the key
    is wrong.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < _KEY_HEADER_LEN + 16 or not blob.startswith(KEY_MAGIC):
        raise SecretsCryptoError(
            "not an empire-ops key-encrypted file (another format, or truncated)",
            hint="a cache in an older format is refetched from its source",
        )
    header = blob[:_KEY_HEADER_LEN]
    try:
        return AESGCM(key).decrypt(header[len(KEY_MAGIC) :], blob[_KEY_HEADER_LEN:], header)
    except InvalidTag:
        raise SecretsCryptoError(
            "cannot decrypt: wrong key, or the file was modified",
            hint="the cache is refetched from its source when it cannot be read",
        ) from None
