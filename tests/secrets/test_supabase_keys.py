"""Today's Supabase keys: every form, the right and the wrong way round, and no value shown.

Publishable/secret keys (and the platform's JSON forms), the legacy JWT pair,
asymmetric (ES256, RS256) role keys verified against a JWKS — inline, or served
by a real TLS server on 127.0.0.1 with a throwaway self-signed certificate —
and the rule that outside dev one complete pair, new or legacy, is required.
The last test seeds canary values into every form and runs preflight and
``secrets status`` (``--json``, ``--debug``, a log file) to show none escapes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets as pysecrets
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ops.config import load_config
from ops.errors import ConfigError
from ops.logs import clear_secret_values
from ops.secrets import apikeys, load_secrets
from ops.secrets.jwks import CLI_SIGNING_KEY_X_SHA256, ProjectJwks
from ops.secrets.model import SecretSet, SecretValue
from ops.secrets.spec import load_spec, validate
from tests.conftest import REPO, PgServer
from tests.secrets.conftest import REF, SUPABASE_URL, DocServer, make_jwt, write_config
from tests.secrets.test_canary import Canaries, _written_files

# The Supabase CLI's public local-development keys (supabase/cli
# pkg/config/apikeys.go), split so that no scanner takes this file for a leak.
CLI_PUBLISHABLE = "sb_publishable_" + "ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
CLI_SECRET = "sb_secret_" + "N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"
CLI_JWT_SECRET = "super-secret-jwt-token-" + "with-at-least-32-characters-long"
# The CLI's built-in ES256 signing key (pkg/config/config.go), public half.
CLI_SIGNING_JWK = {
    "kty": "EC",
    "kid": "b81269f1-21d8-4f2e-b719-c2240a840d90",
    "alg": "ES256",
    "crv": "P-256",
    "x": "M5Sjqn5zwC9Kl1zVfUUGvv9boQjCGd45G8sdopBExB4",
    "y": "P6IXMvA2WYXSHSOMTBH2jsw_9rrzGy89FjPf6oOsIxQ",
}
_URL_SAFE = string.ascii_letters + string.digits + "-_"


def opaque(prefix: str, tag: str = "") -> str:
    """A key of Supabase's shape: the prefix, 22 URL-safe characters, _ and 8 more."""
    body = (tag + "".join(pysecrets.choice(_URL_SAFE) for _ in range(22)))[:22]
    tail = "".join(pysecrets.choice(string.ascii_letters + string.digits) for _ in range(8))
    return f"{prefix}{body}_{tail}"


PUB = opaque("sb_publishable_")
SEC = opaque("sb_secret_")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- asymmetric signing keys ----------------------------------------------------------------
@dataclass
class SigningKey:
    alg: str
    kid: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        numbers = self.private.public_key().public_numbers()
        if self.alg == "ES256":
            coords = {
                "crv": "P-256",
                "x": b64(numbers.x.to_bytes(32)),
                "y": b64(numbers.y.to_bytes(32)),
            }
            return {"kty": "EC", "kid": self.kid, "alg": "ES256", "use": "sig", **coords}
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8)
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8)
        return {
            "kty": "RSA",
            "kid": self.kid,
            "alg": "RS256",
            "use": "sig",
            "n": b64(n),
            "e": b64(e),
        }

    def sign(
        self, payload: dict[str, Any], *, kid: str | None = None, with_kid: bool = True
    ) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header = {"alg": self.alg, "typ": "JWT"}
        if with_kid:
            header["kid"] = kid or self.kid
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
        data = signing_input.encode()
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32) + s.to_bytes(32)
        else:
            sig = self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64(sig)}"


def new_key(alg: str, kid: str) -> SigningKey:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if alg == "ES256":
        return SigningKey(alg, kid, ec.generate_private_key(ec.SECP256R1()))
    return SigningKey(alg, kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    """The project's ES256 and RS256 keys, and an impostor ES256 key reusing the first kid."""
    return {
        "ES256": new_key("ES256", "es-key-1"),
        "RS256": new_key("RS256", "rs-key-1"),
        "impostor": new_key("ES256", "es-key-1"),
    }


def claims(role: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": "supabase",
        "ref": REF,
        "role": role,
        "iat": now,
        "exp": now + 3650 * 86400,
        **extra,
    }


def jwks_of(*signing: SigningKey) -> str:
    return json.dumps({"keys": [k.jwk() for k in signing]})


# -- helpers ------------------------------------------------------------------------------
def sset(values: dict[str, str]) -> SecretSet:
    return SecretSet({k: SecretValue(k, v, "test", "") for k, v in values.items()})


def check(values: dict[str, str], env: str = "prod") -> tuple[list[Any], list[str]]:
    return validate(sset({"SUPABASE_URL": SUPABASE_URL, **values}), load_spec(None), env)


def problems(values: dict[str, str], env: str = "prod") -> dict[str, list[str]]:
    """subject -> messages of every finding that is not ok."""
    out: dict[str, list[str]] = {}
    for f in check(values, env)[0]:
        out.setdefault(f.subject, []).append(f"{f.code}: {f.message}")
    return out


def fp(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def assert_no_value(found: object, *values: str) -> None:
    text = json.dumps(found, default=str)
    for value in values:
        assert value not in text
        assert value[-12:] not in text  # not even the tail of a key


ENVS = ["dev", "prod"]


# -- the new pair, and its JSON forms ---------------------------------------------------------
@pytest.mark.parametrize("env", ENVS)
def test_new_pair_the_right_way_round_passes(env: str) -> None:
    assert problems({"SUPABASE_PUBLISHABLE_KEY": PUB, "SUPABASE_SECRET_KEY": SEC}, env) == {}
    _, missing = check({"SUPABASE_PUBLISHABLE_KEY": PUB, "SUPABASE_SECRET_KEY": SEC}, env)
    assert "supabase_api_keys" not in missing


@pytest.mark.parametrize("env", ENVS)
def test_new_pair_the_wrong_way_round_names_both(env: str) -> None:
    found = problems({"SUPABASE_PUBLISHABLE_KEY": SEC, "SUPABASE_SECRET_KEY": PUB}, env)
    assert set(found) == {"SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SECRET_KEY"}
    for messages in found.values():
        assert len(messages) == 1  # the swap, not a role error on top
        assert "swapped" in messages[0]
        assert "SUPABASE_PUBLISHABLE_KEY" in messages[0] and "SUPABASE_SECRET_KEY" in messages[0]
    assert_no_value(found, PUB, SEC)


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize(
    "name, value, why",
    [
        ("SUPABASE_PUBLISHABLE_KEY", SEC, "is a secret key (sb_secret_…) where the publishable"),
        ("SUPABASE_SECRET_KEY", PUB, "is a publishable key (sb_publishable_…) where the secret"),
        ("SUPABASE_ANON_KEY", SEC, "is a secret key (sb_secret_…) where the publishable"),
        ("SUPABASE_SERVICE_ROLE_KEY", PUB, "is a publishable key"),
    ],
)
def test_one_key_of_the_wrong_role(env: str, name: str, value: str, why: str) -> None:
    found = problems({name: value}, env)
    assert list(found) == [name]
    assert found[name][0].startswith(f"SECRETS_INVALID: {name} {why}")
    assert_no_value(found, value)


@pytest.mark.parametrize("env", ENVS)
def test_new_keys_under_the_legacy_names_are_accepted(env: str) -> None:
    assert problems({"SUPABASE_ANON_KEY": PUB, "SUPABASE_SERVICE_ROLE_KEY": SEC}, env) == {}


def test_legacy_jwts_under_the_new_names_say_where_they_belong(keys: dict[str, SigningKey]) -> None:
    anon = keys["ES256"].sign(claims("anon"))
    service = keys["ES256"].sign(claims("service_role"))
    found = problems({"SUPABASE_PUBLISHABLE_KEY": anon, "SUPABASE_SECRET_KEY": service})
    assert "belongs under SUPABASE_ANON_KEY" in found["SUPABASE_PUBLISHABLE_KEY"][0]
    assert "belongs under SUPABASE_SERVICE_ROLE_KEY" in found["SUPABASE_SECRET_KEY"][0]
    swapped = problems({"SUPABASE_PUBLISHABLE_KEY": service, "SUPABASE_SECRET_KEY": anon})
    assert all("swapped" in m[0] for m in swapped.values()) and len(swapped) == 2
    assert_no_value([found, swapped], anon, service)


@pytest.mark.parametrize("env", ENVS)
def test_json_forms_right_and_wrong_way_round(env: str) -> None:
    pubs = json.dumps({"default": PUB, "mobile": opaque("sb_publishable_")})
    secs = json.dumps({"default": SEC, "backend_jobs": opaque("sb_secret_")})
    ok = {"SUPABASE_PUBLISHABLE_KEYS": pubs, "SUPABASE_SECRET_KEYS": secs}
    assert problems(ok, env) == {}
    assert "supabase_api_keys" not in check(ok, env)[1]
    swapped = problems({"SUPABASE_PUBLISHABLE_KEYS": secs, "SUPABASE_SECRET_KEYS": pubs}, env)
    assert set(swapped) == {"SUPABASE_PUBLISHABLE_KEYS", "SUPABASE_SECRET_KEYS"}
    assert all(len(m) == 1 and "swapped" in m[0] for m in swapped.values())
    # One wrong entry is named by position and name, never by value.
    mixed = json.dumps({"default": PUB, "oops": SEC})
    found = problems({"SUPABASE_PUBLISHABLE_KEYS": mixed, "SUPABASE_SECRET_KEYS": secs}, env)
    assert found == {
        "SUPABASE_PUBLISHABLE_KEYS": [
            "SECRETS_INVALID: SUPABASE_PUBLISHABLE_KEYS entry 2 ('oops') is a secret key "
            "(sb_secret_…) where the publishable key belongs (from test, fingerprint "
            + hashlib.sha256(mixed.encode()).hexdigest()[:8]
            + ")"
        ]
    }
    assert_no_value([swapped, found], PUB, SEC)


@pytest.mark.parametrize(
    "value, why",
    [
        ('{"default": "sb_publishable_', "is not JSON"),
        (json.dumps([PUB]), "is not a JSON object"),
        ("{}", "is an empty JSON object"),
        (json.dumps({"default": 42}), "entry 1 ('default') is not a string"),
        # A name that could be a pasted key is not shown.
        (json.dumps({SEC: PUB[:-1]}), "entry 1 is shorter than an sb_publishable_ key"),
    ],
)
def test_json_forms_that_are_not_an_object_of_keys(value: str, why: str) -> None:
    found = problems({"SUPABASE_PUBLISHABLE_KEYS": value})
    assert found["SUPABASE_PUBLISHABLE_KEYS"][0].startswith(
        f"SECRETS_INVALID: SUPABASE_PUBLISHABLE_KEYS {why}"
    ), found
    assert_no_value(found, PUB, SEC)


# -- the shape and the CLI's public keys -------------------------------------------------
@pytest.mark.parametrize(
    "value, why",
    [
        ("sb_publishable_", "is shorter than an sb_publishable_ key"),
        (PUB[:-3], "is shorter than"),
        (PUB + "abc", "is longer than"),
        (PUB[:20] + " " + PUB[21:], "has characters an sb_publishable_ key never holds"),
        (PUB[:20] + "." + PUB[21:], "has characters"),
        ("sb_publishable_" + "a" * 31, "is not of the shape"),  # no _ before the last 8
        ("pk_live_" + "a" * 31, "must start with sb_publishable_"),
    ],
)
def test_the_shape_of_a_key(value: str, why: str) -> None:
    for env in ENVS:
        found = problems({"SUPABASE_PUBLISHABLE_KEY": value}, env)
        [message] = found["SUPABASE_PUBLISHABLE_KEY"]
        assert message.startswith("SECRETS_INVALID: SUPABASE_PUBLISHABLE_KEY ") and why in message
        if "has characters" not in why:
            assert "(sb_publishable_ then 22 URL-safe characters, _ and 8 more)" in message
        if len(value) > 16:
            assert_no_value(found, value)


def test_the_cli_keys_are_recognised_by_hash_only() -> None:
    assert apikeys.is_cli_dev_key(CLI_PUBLISHABLE) and apikeys.is_cli_dev_key(CLI_SECRET)
    assert apikeys.is_cli_jwt_secret(CLI_JWT_SECRET)
    assert hashlib.sha256(CLI_SIGNING_JWK["x"].encode()).hexdigest() == CLI_SIGNING_KEY_X_SHA256
    # No key-looking literal in the code: the values are known there only by sha256.
    source = "".join(p.read_text() for p in (REPO / "ops").rglob("*.py"))
    for value in (CLI_PUBLISHABLE, CLI_SECRET, CLI_JWT_SECRET, CLI_SIGNING_JWK["x"]):
        assert value not in source and value[-20:] not in source


def test_the_cli_local_keys_only_in_dev() -> None:
    values = {
        "SUPABASE_PUBLISHABLE_KEY": CLI_PUBLISHABLE,
        "SUPABASE_SECRET_KEY": CLI_SECRET,
        "SUPABASE_PUBLISHABLE_KEYS": json.dumps({"default": CLI_PUBLISHABLE}),
        "SUPABASE_SECRET_KEYS": json.dumps({"default": CLI_SECRET}),
        "SUPABASE_ANON_KEY": CLI_PUBLISHABLE,
        "SUPABASE_SERVICE_ROLE_KEY": CLI_SECRET,
        "SUPABASE_JWT_SECRET": CLI_JWT_SECRET,
        "SUPABASE_JWKS": json.dumps({"keys": [CLI_SIGNING_JWK]}),
    }
    assert problems(values, "dev") == {}
    found = problems(values, "prod")
    assert set(found) == set(values)
    for name, messages in found.items():
        assert len(messages) == 1 and "Supabase CLI's public local-development" in messages[0]
        assert "only allowed in dev" in messages[0], name
    assert_no_value(found, CLI_PUBLISHABLE, CLI_SECRET, CLI_JWT_SECRET)


# -- client-side names ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, value",
    [
        ("NEXT_PUBLIC_SUPABASE_SECRET_KEY", SEC),
        ("VITE_SUPABASE_SECRET_KEY", SEC),
        ("NEXT_PUBLIC_SUPABASE_SECRET_KEYS", json.dumps({"default": SEC})),
        ("VITE_SUPABASE_PUBLISHABLE_KEY", SEC),  # a secret key under a public name, either way
        ("NEXT_PUBLIC_SUPABASE_ANON_KEY", make_jwt(claims("service_role"))),
    ],
)
def test_a_secret_key_under_a_client_side_name(name: str, value: str) -> None:
    found = problems({name: value})
    assert found == {
        name: [
            f"SECRETS_INVALID: {name} holds a service/secret key under a client-side name; "
            f"browsers would get it (from test, fingerprint {fp(value)})"
        ]
    }


def test_a_public_key_under_a_client_side_name_is_fine() -> None:
    public = {
        "NEXT_PUBLIC_SUPABASE_PUBLISHABLE_KEY": PUB,
        "VITE_SUPABASE_PUBLISHABLE_KEYS": json.dumps({"default": PUB}),
        "VITE_SUPABASE_ANON_KEY": make_jwt(claims("anon")),
    }
    assert problems(public) == {}


def test_the_env_source_reads_the_new_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_PUBLISHABLE_KEY", PUB)
    monkeypatch.setenv("SUPABASE_SECRET_KEYS", json.dumps({"default": SEC}))
    monkeypatch.setenv("NEXT_PUBLIC_SUPABASE_SECRET_KEY", SEC)
    loaded = load_secrets(load_config())
    assert {"SUPABASE_PUBLISHABLE_KEY", "SUPABASE_SECRET_KEYS"} <= set(loaded.secrets)
    assert any(f.subject == "NEXT_PUBLIC_SUPABASE_SECRET_KEY" for f in loaded.findings)


# -- what outside dev requires: either pair ------------------------------------------------------
def _missing(loaded: Any) -> list[Any]:
    return [f for f in loaded.findings if f.code == "SECRETS_MISSING"]


@pytest.mark.parametrize(
    "pair",
    [
        {"SUPABASE_PUBLISHABLE_KEY": PUB, "SUPABASE_SECRET_KEY": SEC},
        {
            "SUPABASE_PUBLISHABLE_KEYS": json.dumps({"d": PUB}),
            "SUPABASE_SECRET_KEYS": json.dumps({"d": SEC}),
        },
        {
            "SUPABASE_ANON_KEY": make_jwt(claims("anon")),
            "SUPABASE_SERVICE_ROLE_KEY": make_jwt(claims("service_role")),
        },
    ],
    ids=["new", "json", "legacy"],
)
def test_outside_dev_either_pair_is_enough(
    pair: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {"SUPABASE_URL": SUPABASE_URL, **pair}.items():
        monkeypatch.setenv(name, value)
    for env in ("test", "staging", "prod"):
        loaded = load_secrets(load_config(env=env))
        assert [f.subject for f in _missing(loaded)] == (["DATABASE_URL"] if env != "test" else [])
        assert not [f for f in loaded.findings if f.code == "SECRETS_INVALID"], loaded.findings


def test_outside_dev_no_pair_names_both_alternatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_URL", SUPABASE_URL)
    loaded = load_secrets(load_config(env="test"))
    [gap] = _missing(loaded)
    assert gap.subject == "supabase_api_keys" and gap.exit_code == 3
    assert gap.message.startswith(
        "SUPABASE_PUBLISHABLE_KEY and SUPABASE_SECRET_KEY, or SUPABASE_PUBLISHABLE_KEYS and "
        "SUPABASE_SECRET_KEYS, or SUPABASE_ANON_KEY and SUPABASE_SERVICE_ROLE_KEY "
        "[supabase_api_keys] is required in test but no source has it"
    ), gap.message
    assert gap.runbook == "runbooks/SECRETS_MISSING.md"
    # Half a pair says what the closest alternative lacks.
    monkeypatch.setenv("SUPABASE_PUBLISHABLE_KEY", PUB)
    [gap] = _missing(load_secrets(load_config(env="test")))
    assert "(SUPABASE_PUBLISHABLE_KEY is set but SUPABASE_SECRET_KEY not)" in gap.message
    assert PUB not in gap.message
    # In dev nothing is required.
    assert _missing(load_secrets(load_config(env="dev"))) == []


def test_the_group_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPABASE_URL", SUPABASE_URL)
    write_config(tmp_path, "[secrets.groups.supabase_api_keys]\nrequired = false\n")
    assert _missing(load_secrets(load_config(env="test"))) == []
    write_config(
        tmp_path,
        '[secrets.groups.supabase_api_keys]\none_of = [["SUPABASE_SECRET_KEY"]]\n'
        '[secrets.groups.stripe]\nrequired = true\none_of = [["STRIPE_KEY"], ["STRIPE_KEYS"]]\n'
        "[secrets.spec.STRIPE_KEY]\n[secrets.spec.STRIPE_KEYS]\n",
    )
    gaps = {f.subject: f.message for f in _missing(load_secrets(load_config(env="test")))}
    assert gaps.keys() == {"supabase_api_keys", "stripe"}
    assert gaps["stripe"].startswith("STRIPE_KEY, or STRIPE_KEYS [stripe] is required in test")
    write_config(tmp_path, '[secrets.groups.x]\nrequired = true\none_of = [["NOT_DECLARED"]]\n')
    with pytest.raises(ConfigError, match="NOT_DECLARED not declared"):
        load_spec(load_config())
    write_config(tmp_path, '[secrets.groups.Bad-Name]\none_of = [["SUPABASE_URL"]]\n')
    with pytest.raises(ConfigError, match="not a group name"):
        load_config()
    write_config(tmp_path, "[secrets.groups.x]\none_of = [[]]\n")
    with pytest.raises(ConfigError, match="non-empty lists"):
        load_config()


# -- asymmetric (ES256, RS256) role keys ---------------------------------------------------------
@pytest.mark.parametrize("alg", ["ES256", "RS256"])
@pytest.mark.parametrize("env", ENVS)
def test_asymmetric_keys_are_accepted_with_their_claims_checked(
    alg: str, env: str, keys: dict[str, SigningKey]
) -> None:
    key = keys[alg]
    anon, service = key.sign(claims("anon")), key.sign(claims("service_role"))
    assert problems({"SUPABASE_ANON_KEY": anon, "SUPABASE_SERVICE_ROLE_KEY": service}, env) == {}
    swapped = problems({"SUPABASE_ANON_KEY": service, "SUPABASE_SERVICE_ROLE_KEY": anon}, env)
    assert len(swapped) == 2 and all("swapped" in m[0] and len(m) == 1 for m in swapped.values())
    old = key.sign(claims("anon", exp=int(time.time()) - 60))
    other = key.sign(claims("anon", ref="zzzzzzzzzzzzzzzzzzzz"))
    no_ref = key.sign({k: v for k, v in claims("anon").items() if k != "ref"})
    no_exp = key.sign({k: v for k, v in claims("anon").items() if k != "exp"})
    for token, why in [
        (old, "expired on"),
        (other, "belongs to project 'zzzzzzzzzzzzzzzzzzzz' but SUPABASE_URL is project"),
        (no_ref, "carries no ref claim"),
        (no_exp, "has no exp claim"),
        (key.sign(claims("authenticated")), "carries role 'authenticated', expected 'anon'"),
    ]:
        found = problems({"SUPABASE_ANON_KEY": token}, env)
        assert why in found["SUPABASE_ANON_KEY"][0], (why, found)
        assert_no_value(found, token)


def test_other_algorithms_are_refused() -> None:
    for alg in ("none", "HS512", "ES512"):
        token = make_jwt(claims("anon"), alg=alg)
        found = problems({"SUPABASE_ANON_KEY": token})
        assert (
            f"is signed with '{alg}'; Supabase keys use HS256, ES256 or RS256"
            in (found["SUPABASE_ANON_KEY"][0])
        )


@pytest.mark.parametrize("form", ["object", "bare list"])
def test_signatures_verify_against_an_inline_jwks(form: str, keys: dict[str, SigningKey]) -> None:
    es, rs, impostor = keys["ES256"], keys["RS256"], keys["impostor"]
    doc = [es.jwk(), rs.jwk()]
    jwks = json.dumps({"keys": doc} if form == "object" else doc)
    good = {
        "SUPABASE_JWKS": jwks,
        "SUPABASE_ANON_KEY": es.sign(claims("anon")),
        "SUPABASE_SERVICE_ROLE_KEY": rs.sign(claims("service_role")),
    }
    assert problems(good) == {}
    other = "zzzzzzzzzzzzzzzzzzzz"
    cases = [
        (impostor.sign(claims("anon")),
         "signature does not verify with key 'es-key-1' of the JWKS from SUPABASE_JWKS"),
        (es.sign(claims("anon"), kid="gone-key"),
         "is signed with key id 'gone-key', not in the JWKS from SUPABASE_JWKS"),
        (es.sign(claims("anon"), kid="rs-key-1"), "is signed with key id 'rs-key-1', not in"),
        (es.sign(claims("anon", exp=int(time.time()) - 5)), "expired on"),
        (es.sign(claims("anon", ref=other)), f"belongs to project '{other}'"),
    ]  # fmt: skip
    for token, why in cases:
        found = problems({**good, "SUPABASE_ANON_KEY": token})
        assert list(found) == ["SUPABASE_ANON_KEY"] and why in found["SUPABASE_ANON_KEY"][0], found
        assert_no_value(found, token)
    # A token without kid tries every key of its algorithm.
    no_kid = es.sign(claims("anon"), with_kid=False)
    assert problems({**good, "SUPABASE_ANON_KEY": no_kid}) == {}
    tampered = _tamper(es.sign(claims("anon")))
    assert (
        "signature does not verify"
        in problems({**good, "SUPABASE_ANON_KEY": tampered})["SUPABASE_ANON_KEY"][0]
    )


def _tamper(token: str) -> str:
    """The same signature over a payload that now claims another expiry."""
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["exp"] += 1
    return f"{head}.{b64(json.dumps(payload).encode())}.{sig}"


@pytest.mark.parametrize(
    "value, severity, why",
    [
        ("not json", "error", "is not JSON"),
        ('{"keys": []}', "error", "is an empty JWKS"),
        ('{"nope": 1}', "error", "is not a JWKS"),
        ('[{"kid": "a"}]', "error", "key 1 is not a JWK"),
        (json.dumps([{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]), "error",
         "must be on P-256"),
        (json.dumps([{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]), "error",
         "not a usable public key"),
        (json.dumps([CLI_SIGNING_JWK, {"kty": "oct", "k": "c2VjcmV0"}]), "warning",
         "holds private key material in 1 key"),
    ],
)  # fmt: skip
def test_a_jwks_that_cannot_verify(value: str, severity: str, why: str) -> None:
    found = check({"SUPABASE_JWKS": value}, "dev")[0]
    assert [(f.subject, f.severity.label) for f in found] == [("SUPABASE_JWKS", severity)]
    assert why in found[0].message


# -- a JWKS served over HTTPS ----------------------------------------------------------------
def jwks_server_config(tmp_path: Path, doc: DocServer, extra: str = "") -> None:
    """Config whose https source trusts the test server's certificate (and has no url)."""
    write_config(
        tmp_path, f'[secrets.sources.https]\nverify = "{doc.ca_path}"\ntimeout = "2s"\n{extra}'
    )


def role_keys(monkeypatch: pytest.MonkeyPatch, anon: str, service: str) -> None:
    monkeypatch.setenv("SUPABASE_URL", SUPABASE_URL)
    monkeypatch.setenv("SUPABASE_ANON_KEY", anon)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", service)


def findings_of(env: str = "test") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in load_secrets(load_config(env=env)).findings:
        if f.severity.label != "ok":
            out.setdefault(f.subject, []).append(f"{f.code}: {f.message}")
    return out


def test_keys_verify_against_a_jwks_served_over_https(
    https_doc: DocServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keys: dict[str, SigningKey],
) -> None:
    es, rs, impostor = keys["ES256"], keys["RS256"], keys["impostor"]
    https_doc.routes["/auth/v1/.well-known/jwks.json"] = (200, jwks_of(es, rs).encode())
    jwks_server_config(tmp_path, https_doc)
    monkeypatch.setenv("SUPABASE_JWKS_URL", f"{https_doc.url}/auth/v1/.well-known/jwks.json")
    role_keys(monkeypatch, es.sign(claims("anon")), rs.sign(claims("service_role")))
    assert findings_of() == {}
    assert len(https_doc.seen) == 1  # fetched once for both keys
    # Wrong signature, unknown kid: refused, naming the JWKS's source, never a value.
    bad_anon, bad_service = (
        impostor.sign(claims("anon")),
        rs.sign(claims("service_role"), kid="old"),
    )
    role_keys(monkeypatch, bad_anon, bad_service)
    found = findings_of()
    where = f"SUPABASE_JWKS_URL ({https_doc.url}/auth/v1/.well-known/jwks.json)"
    assert found["SUPABASE_ANON_KEY"][0].startswith(
        f"SECRETS_INVALID: SUPABASE_ANON_KEY signature does not verify with key 'es-key-1' of "
        f"the JWKS from {where}"
    )
    assert (
        f"is signed with key id 'old', not in the JWKS from {where}"
        in (found["SUPABASE_SERVICE_ROLE_KEY"][0])
    )
    assert_no_value(found, bad_anon, bad_service)


def test_the_jwks_url_from_config(
    https_doc: DocServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keys: dict[str, SigningKey],
) -> None:
    es = keys["ES256"]
    https_doc.routes["/jwks"] = (200, jwks_of(es).encode())
    jwks_server_config(
        tmp_path, https_doc, f'[secrets.supabase]\njwks_url = "{https_doc.url}/jwks"\n'
    )
    role_keys(monkeypatch, keys["impostor"].sign(claims("anon")), es.sign(claims("service_role")))
    found = findings_of()
    assert list(found) == ["SUPABASE_ANON_KEY"]
    assert (
        f"the JWKS from secrets.supabase.jwks_url ({https_doc.url}/jwks)"
        in found["SUPABASE_ANON_KEY"][0]
    )
    # The inline JWKS comes first: no request is made.
    seen = len(https_doc.seen)
    monkeypatch.setenv("SUPABASE_JWKS", jwks_of(keys["impostor"], es))
    assert findings_of() == {}
    assert len(https_doc.seen) == seen


def test_auto_derives_the_well_known_url_from_supabase_url(tmp_path: Path) -> None:
    write_config(tmp_path, '[secrets.supabase]\njwks_url = "auto"\n')
    jwks = ProjectJwks({"SUPABASE_URL": SUPABASE_URL + "/"}, load_config())
    assert jwks.url == f"{SUPABASE_URL}/auth/v1/.well-known/jwks.json"
    assert ProjectJwks({}, load_config()).configured is False
    write_config(tmp_path, '[secrets.supabase]\njwks_url = "http://example.com/jwks"\n')
    with pytest.raises(ConfigError, match="must be an https:// URL, auto or empty"):
        load_config()


def test_no_request_without_an_asymmetric_key(
    https_doc: DocServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jwks_server_config(tmp_path, https_doc)
    monkeypatch.setenv("SUPABASE_JWKS_URL", f"{https_doc.url}/jwks")
    role_keys(monkeypatch, make_jwt(claims("anon")), make_jwt(claims("service_role")))
    assert findings_of() == {}
    assert https_doc.seen == []


@pytest.mark.parametrize(
    "route, why",
    [
        (None, "answered 404"),
        ((500, b"oops"), "answered 500"),
        ((200, b"<html>"), "invalid JSON"),
        ((200, b'{"other": []}'), "the document has no keys list"),
        ((200, b'{"keys": []}'), "is unusable: an empty JWKS"),
    ],
)
def test_a_jwks_fetch_failure_is_a_clear_finding(
    route: tuple[int, bytes] | None,
    why: str,
    https_doc: DocServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keys: dict[str, SigningKey],
) -> None:
    if route:
        https_doc.routes["/jwks"] = route
    jwks_server_config(tmp_path, https_doc)
    monkeypatch.setenv("SUPABASE_JWKS_URL", f"{https_doc.url}/jwks")
    role_keys(
        monkeypatch, keys["ES256"].sign(claims("anon")), keys["RS256"].sign(claims("service_role"))
    )
    loaded = load_secrets(load_config(env="prod"))
    [finding] = [f for f in loaded.findings if f.code == "SECRETS_JWKS_UNAVAILABLE"]
    assert finding.subject == "SUPABASE_JWKS_URL" and finding.severity.label == "warning"
    assert why in finding.message, finding.message
    starts = ("cannot fetch the JWKS from SUPABASE_JWKS_URL", "the JWKS from SUPABASE_JWKS_URL")
    assert finding.message.startswith(starts)
    assert finding.runbook == "runbooks/SECRETS_JWKS_UNAVAILABLE.md"
    assert not [f for f in loaded.findings if f.subject.startswith("SUPABASE_ANON")]


def test_an_untrusted_certificate_or_a_hung_server_is_unavailable_in_time(
    https_doc: DocServer,
    silent_server: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keys: dict[str, SigningKey],
) -> None:
    https_doc.routes["/jwks"] = (200, jwks_of(keys["ES256"]).encode())
    role_keys(monkeypatch, keys["ES256"].sign(claims("anon")), make_jwt(claims("service_role")))
    # No verify setting: the default trust store does not know the test certificate.
    monkeypatch.setenv("SUPABASE_JWKS_URL", f"{https_doc.url}/jwks")
    found = findings_of()
    assert list(found) == ["SUPABASE_JWKS_URL"]
    assert "cannot fetch the JWKS from SUPABASE_JWKS_URL" in found["SUPABASE_JWKS_URL"][0]
    # A server that accepts and never answers: the https source's timeout (and one retry).
    write_config(tmp_path, '[secrets.sources.https]\ntimeout = "1s"\n')
    monkeypatch.setenv("SUPABASE_JWKS_URL", f"https://127.0.0.1:{silent_server}/jwks")
    started = time.monotonic()
    found = findings_of()
    assert time.monotonic() - started < 8
    assert "Timeout" in found["SUPABASE_JWKS_URL"][0], found


def test_the_bearer_token_of_the_secrets_document_is_never_sent_to_the_jwks_url(
    https_doc: DocServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keys: dict[str, SigningKey],
) -> None:
    https_doc.routes["/jwks"] = (200, jwks_of(keys["ES256"]).encode())
    jwks_server_config(tmp_path, https_doc, "")
    (tmp_path / "empire-ops.toml").write_text(
        (tmp_path / "empire-ops.toml").read_text() + 'bearer_secret = "DOC_TOKEN"\n'
    )
    monkeypatch.setenv("DOC_TOKEN", "bearer-for-the-secrets-document")
    monkeypatch.setenv("SUPABASE_JWKS_URL", f"{https_doc.url}/jwks")
    role_keys(monkeypatch, keys["ES256"].sign(claims("anon")), make_jwt(claims("service_role")))
    assert findings_of() == {}
    assert [h.get("Authorization") for h in https_doc.seen] == [None]


# -- no value in any output -------------------------------------------------------------
def _cli(args: list[str], env: dict[str, str], tmp: Path, *, sub: bool = False) -> tuple[int, str]:
    if sub:
        full = {**os.environ, **env, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            [sys.executable, "-m", "ops", *args],
            capture_output=True, text=True, env=full, timeout=120, cwd=tmp,
        )  # fmt: skip
        return proc.returncode, proc.stdout + proc.stderr
    from typer.testing import CliRunner

    from ops.cli import app

    clear_secret_values()  # a fresh process would not know earlier commands' values
    result = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def test_no_key_value_escapes_preflight_or_secrets_status(
    tmp_path: Path,
    https_doc: DocServer,
    migrated_db: str,
    pg: PgServer,
    keys: dict[str, SigningKey],
) -> None:
    c = Canaries()
    es, rs = keys["ES256"], keys["RS256"]

    def key(name: str, prefix: str) -> str:
        c.values[name] = opaque(prefix, "CNRY")
        return c.values[name]

    def token(name: str, signer: SigningKey, role: str, **extra: Any) -> str:
        c.values[name] = signer.sign(claims(role, jti=pysecrets.token_hex(8), **extra))
        return c.values[name]

    pubs = {
        "default": key("PUBS_DEFAULT", "sb_publishable_"),
        "web": key("PUBS_WEB", "sb_publishable_"),
    }
    secs = {"default": key("SECS_DEFAULT", "sb_secret_"), "jobs": key("SECS_JOBS", "sb_secret_")}
    c.values["PUBS"], c.values["SECS"] = json.dumps(pubs), json.dumps(secs)
    jwt_secret = c.new("SUPABASE_JWT_SECRET")
    c.values["DB_PASSWORD"] = db_password = f"CNRYdbpw{pysecrets.token_hex(10)}"
    dbname = migrated_db.split("?", 1)[0].rsplit("/", 1)[1]
    dsn = pg.login_role("canary_keys", "superuser", dbname=dbname, password=db_password)
    jwks_token = f"CNRY-jwks-token-{pysecrets.token_hex(8)}"
    c.values["JWKS_URL_TOKEN"] = jwks_token
    https_doc.routes[f"/jwks?token={jwks_token}"] = (200, jwks_of(es, rs).encode())
    (tmp_path / "empire-ops.toml").write_text(
        '[logging]\nfile = "empire-ops.log"\n\n'
        f'[secrets.sources.https]\nverify = "{https_doc.ca_path}"\ntimeout = "2s"\n'
    )
    right = {
        "DATABASE_URL": dsn,
        "SUPABASE_URL": SUPABASE_URL,
        "SUPABASE_PUBLISHABLE_KEY": key("PUBLISHABLE", "sb_publishable_"),
        "SUPABASE_SECRET_KEY": key("SECRET", "sb_secret_"),
        "SUPABASE_PUBLISHABLE_KEYS": c.values["PUBS"],
        "SUPABASE_SECRET_KEYS": c.values["SECS"],
        "SUPABASE_ANON_KEY": token("ANON", es, "anon"),
        "SUPABASE_SERVICE_ROLE_KEY": token("SERVICE", rs, "service_role"),
        "SUPABASE_JWT_SECRET": jwt_secret,
        "SUPABASE_JWKS_URL": f"{https_doc.url}/jwks?token={jwks_token}",
    }
    wrong = {
        **right,
        "SUPABASE_PUBLISHABLE_KEY": right["SUPABASE_SECRET_KEY"],
        "SUPABASE_SECRET_KEY": right["SUPABASE_PUBLISHABLE_KEY"],
        "SUPABASE_PUBLISHABLE_KEYS": c.values["SECS"],
        "SUPABASE_SECRET_KEYS": c.values["PUBS"],
        "SUPABASE_ANON_KEY": right["SUPABASE_SERVICE_ROLE_KEY"],
        "SUPABASE_SERVICE_ROLE_KEY": right["SUPABASE_ANON_KEY"],
        "NEXT_PUBLIC_SUPABASE_SECRET_KEY": right["SUPABASE_SECRET_KEY"],
        "VITE_SUPABASE_SECRET_KEYS": c.values["SECS"],
    }
    broken = {
        **right,
        "SUPABASE_PUBLISHABLE_KEY": right["SUPABASE_PUBLISHABLE_KEY"][:-2],
        "SUPABASE_SECRET_KEYS": json.dumps({c.values["SECS_JOBS"]: "x", "ok": secs["default"]}),
        "SUPABASE_ANON_KEY": token("FORGED", keys["impostor"], "anon"),
        "SUPABASE_SERVICE_ROLE_KEY": token("EXPIRED", rs, "service_role", exp=int(time.time()) - 9),
        "SUPABASE_JWKS_URL": f"{https_doc.url}/gone?token={jwks_token}",
    }
    outputs: list[tuple[str, str]] = []
    codes: dict[str, list[str]] = {}
    for label, env in (("right", right), ("wrong", wrong), ("broken", broken)):
        for args in (
            ["preflight", "--env", "prod"],
            ["preflight", "--env", "prod", "--json"],
            ["--debug", "preflight", "--env", "prod", "--json"],
            ["secrets", "status", "--env", "prod", "--json"],
            ["--debug", "secrets", "status", "--env", "dev"],
        ):
            code, text = _cli(args, env, tmp_path)
            outputs.append((f"{label}: {' '.join(args)}", text))
            if args == ["preflight", "--env", "prod", "--json"]:
                data = json.loads(text)
                codes[label] = sorted(
                    f"{f['code']}:{f['subject']}"
                    for f in data["findings"]
                    if f["code"].startswith("SECRETS_")
                )
                assert code == (0 if label == "right" else 3), (label, codes[label])
        code, text = _cli(
            ["--debug", "preflight", "--env", "prod", "--json"], env, tmp_path, sub=True
        )
        outputs.append((f"{label}: subprocess --debug preflight", text))
    # Each run failed (or passed) for the reasons meant, so the search covers those paths.
    assert not [c for c in codes["right"] if "INVALID" in c or "MISSING" in c], codes["right"]
    assert {
        "SECRETS_INVALID:SUPABASE_PUBLISHABLE_KEY", "SECRETS_INVALID:SUPABASE_SECRET_KEY",
        "SECRETS_INVALID:SUPABASE_PUBLISHABLE_KEYS", "SECRETS_INVALID:SUPABASE_SECRET_KEYS",
        "SECRETS_INVALID:SUPABASE_ANON_KEY", "SECRETS_INVALID:SUPABASE_SERVICE_ROLE_KEY",
        "SECRETS_INVALID:NEXT_PUBLIC_SUPABASE_SECRET_KEY",
        "SECRETS_INVALID:VITE_SUPABASE_SECRET_KEYS",
    } <= set(codes["wrong"])  # fmt: skip
    assert {
        "SECRETS_INVALID:SUPABASE_PUBLISHABLE_KEY", "SECRETS_INVALID:SUPABASE_SECRET_KEYS",
        "SECRETS_INVALID:SUPABASE_SERVICE_ROLE_KEY", "SECRETS_JWKS_UNAVAILABLE:SUPABASE_JWKS_URL",
    } <= set(codes["broken"])  # fmt: skip
    said = "\n".join(t for _, t in outputs)
    assert "swapped" in said and "expired on" in said and "answered 404" in said
    assert "Traceback" not in said
    if os.environ.get("CANARY_DUMP"):  # to read what the commands said
        Path(os.environ["CANARY_DUMP"]).write_text(
            "\n".join(f"===== {label}\n{text}" for label, text in outputs)
        )
    leaks = [f"output of `{label}`: {hit}" for label, text in outputs for hit in c.find(text)]
    files = list(_written_files(tmp_path))
    assert any(p.name == "empire-ops.log" for p in files), "the log file was not written"
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        leaks += [f"file {path.relative_to(tmp_path)}: {hit}" for hit in c.find(text)]
    assert leaks == [], "canaries leaked:\n" + "\n".join(leaks)
