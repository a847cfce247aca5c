"""Authenticated encryption for snapshots and the offline cache.

Format (all binary, self-describing)::

    b"EOSNAP1" | salt (16 bytes) | nonce (12 bytes) | AES-256-GCM ciphertext+tag

The key is scrypt(passphrase, salt, n=2**15, r=8, p=1, 32 bytes). The header
is authenticated as associated data, so changing any byte fails decryption.
``cryptography`` is imported inside the functions: the boot path never pays
for it unless a remote source or a snapshot is used.
"""

from __future__ import annotations

import os

from ops.secrets.errors import SecretsCryptoError

MAGIC = b"EOSNAP1"
SALT_LEN = 16
NONCE_LEN = 12
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_HEADER_LEN = len(MAGIC) + SALT_LEN + NONCE_LEN


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
