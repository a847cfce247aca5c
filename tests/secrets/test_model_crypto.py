"""Value types never show a value; the blob format encrypts, authenticates and says why."""

from __future__ import annotations

import hashlib

import pytest

from ops.secrets.crypto import MAGIC, decrypt_blob, encrypt_blob, parse_key
from ops.secrets.errors import SecretsCryptoError
from ops.secrets.model import SecretSet, SecretValue, fingerprint

VALUE = "correct-horse-battery-staple"


def test_fingerprint_is_the_sha256_prefix() -> None:
    assert fingerprint(VALUE) == hashlib.sha256(VALUE.encode()).hexdigest()[:8]
    # A weak value (decision 0004) has no fingerprint: its hash would reveal it.
    assert fingerprint("x") == "(weak)"
    assert fingerprint("postgres") == "(weak)"


def test_reprs_never_show_the_value() -> None:
    sv = SecretValue("PW", VALUE, "dotenv", ".env:3")
    sset = SecretSet({"PW": sv})
    for text in (repr(sv), str(sv), repr(sset), str(sset)):
        assert VALUE not in text
    assert fingerprint(VALUE) in repr(sv)
    assert sset["PW"] == VALUE and dict(sset) == {"PW": VALUE}
    assert sset.provenance("PW").detail == ".env:3"
    assert sset.items_meta() == [
        {"name": "PW", "source": "dotenv", "detail": ".env:3", "fingerprint": fingerprint(VALUE)}
    ]


def test_blob_round_trips_with_a_fresh_salt_each_time() -> None:
    data = 'pässwörd\n"$x"'.encode()
    one, two = encrypt_blob(data, "pw-1"), encrypt_blob(data, "pw-1")
    assert one.startswith(MAGIC) and one != two
    assert data not in one
    assert decrypt_blob(one, "pw-1") == data == decrypt_blob(two, "pw-1")


def test_wrong_passphrase_tampering_and_garbage_are_clear_errors() -> None:
    blob = encrypt_blob(VALUE.encode(), "right")
    with pytest.raises(SecretsCryptoError, match="wrong passphrase"):
        decrypt_blob(blob, "wrong")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SecretsCryptoError, match="modified") as err:
        decrypt_blob(tampered, "right")
    assert VALUE not in str(err.value)
    header_changed = blob[:10] + bytes([blob[10] ^ 1]) + blob[11:]
    with pytest.raises(SecretsCryptoError):
        decrypt_blob(header_changed, "right")
    with pytest.raises(SecretsCryptoError, match="not an empire-ops encrypted file"):
        decrypt_blob(b"PK\x03\x04 not ours", "right")
    with pytest.raises(SecretsCryptoError, match="empty"):
        encrypt_blob(b"x", "")


def test_key_blobs_round_trip_and_refuse_another_key_or_format() -> None:
    from ops.secrets.crypto import KEY_MAGIC, decrypt_with_key, encrypt_with_key, new_key

    key = parse_key(new_key(), "test")
    blob = encrypt_with_key(VALUE.encode(), key)
    assert blob.startswith(KEY_MAGIC) and VALUE.encode() not in blob
    assert decrypt_with_key(blob, key) == VALUE.encode()
    with pytest.raises(SecretsCryptoError, match="wrong key"):
        decrypt_with_key(blob, bytes(32))
    with pytest.raises(SecretsCryptoError, match="wrong key, or the file was modified"):
        decrypt_with_key(blob[:-1] + bytes([blob[-1] ^ 1]), key)
    # A blob of the passphrase scheme (what caches held before) is another format.
    with pytest.raises(SecretsCryptoError, match="another format"):
        decrypt_with_key(encrypt_blob(VALUE.encode(), "pw"), key)


def test_parse_key_takes_hex_or_base64_and_never_echoes_a_bad_one() -> None:
    import base64

    raw = bytes(range(32))
    assert parse_key(raw.hex(), "K") == raw
    assert parse_key(base64.b64encode(raw).decode(), "K") == raw
    assert parse_key(base64.urlsafe_b64encode(raw).decode() + "\n", "K") == raw
    for bad in ("too-short-key-value", raw.hex()[:-2], base64.b64encode(raw[:16]).decode()):
        with pytest.raises(SecretsCryptoError, match="K is not a 256-bit key") as err:
            parse_key(bad, "K")
        assert bad not in str(err.value) and bad not in (err.value.hint or "")
