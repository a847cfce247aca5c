"""A Supabase project's JWKS: parse it, verify ES256/RS256 key signatures, fetch it.

Projects that sign JWTs with asymmetric keys (ES256 on P-256, or RS256) publish
the public keys as a JWKS at ``https://<ref>.supabase.co/auth/v1/.well-known/
jwks.json``; the platform also hands it to functions as ``SUPABASE_JWKS``
(``{"keys": [...]}`` or a bare list). :class:`ProjectJwks` finds the JWKS from,
in order: the ``SUPABASE_JWKS`` secret, the ``SUPABASE_JWKS_URL`` secret,
``[secrets.supabase] jwks_url`` (``auto`` = derived from ``SUPABASE_URL``). A
URL is fetched once, and only when a key needs it, through the https source's
client (its ``verify`` and ``timeout``; never its bearer token or pin, which
belong to the secrets document). A failed fetch is recorded as a reason, never
raised. ``cryptography`` and ``httpx`` are imported only when used: preflight
is benchmarked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ops.config import Config
    from ops.secrets.kinds import Jwt

ASYMMETRIC = ("ES256", "RS256")
JWKS_NAME = "SUPABASE_JWKS"
JWKS_URL_NAME = "SUPABASE_JWKS_URL"
JWKS_URL_SETTING = "secrets.supabase.jwks_url"
WELL_KNOWN = "/auth/v1/.well-known/jwks.json"
# sha256 of the public x coordinate of the Supabase CLI's built-in local signing key
# (supabase/cli pkg/config/config.go, auth.signing_keys). Its private half is published
# too, so anyone can sign with it: outside dev a JWKS must not trust it.
CLI_SIGNING_KEY_X_SHA256 = "1662fea9583feec98002589beb31294edaa465dcf22a02d0b8e1144c704f20a4"
_SHOWN_KID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_KTY = {"ES256": "EC", "RS256": "RSA"}


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _int(part: Any) -> int:
    if not isinstance(part, str) or not part:
        raise ValueError("missing")
    return int.from_bytes(_b64(part), "big")


def kid_label(kid: Any) -> str:
    """A key id as it may be shown: ``'abc-123'``, or ``(an unusual key id)``."""
    return repr(kid) if isinstance(kid, str) and _SHOWN_KID.fullmatch(kid) else "(unusual id)"


def parse_jwks(value: str) -> list[dict[str, Any]]:
    """The keys of a JWKS given as ``{"keys": [...]}`` or a bare list of JWKs.

    Raises ValueError (never quoting the value) for anything else.
    """
    try:
        data = json.loads(value)
    except ValueError:
        raise ValueError('is not JSON: expected {"keys": [...]} or a list of JWKs') from None
    keys = data.get("keys") if isinstance(data, dict) else data
    if not isinstance(keys, list):
        raise ValueError('is not a JWKS: expected {"keys": [...]} or a list of JWKs')
    if not keys:
        raise ValueError("is an empty JWKS: it holds no key")
    for i, key in enumerate(keys, 1):
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            raise ValueError(f"key {i} is not a JWK (a JSON object with kty)")
    return keys


def _public_key(jwk: Mapping[str, Any]) -> Any:
    """The cryptography public key of an EC P-256 or RSA JWK; ValueError otherwise."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if jwk.get("kty") == "EC":
        if jwk.get("crv") != "P-256":
            raise ValueError("an EC key must be on P-256 (ES256)")
        return ec.EllipticCurvePublicNumbers(
            _int(jwk.get("x")), _int(jwk.get("y")), ec.SECP256R1()
        ).public_key()
    if jwk.get("kty") == "RSA":
        return rsa.RSAPublicNumbers(_int(jwk.get("e")), _int(jwk.get("n"))).public_key()
    raise ValueError(f"key type {jwk.get('kty')!r} cannot verify ES256 or RS256")


def jwks_problems(value: str, *, dev: bool) -> list[tuple[str, str]]:
    """(message, severity) for a JWKS value: unusable keys, private material, the CLI's key."""
    try:
        keys = parse_jwks(value)
    except ValueError as exc:
        return [(str(exc), "error")]
    out: list[tuple[str, str]] = []
    private = 0
    for i, jwk in enumerate(keys, 1):
        label = f"key {i} (kid {kid_label(jwk.get('kid'))})"
        if jwk.get("kty") == "oct" or "d" in jwk:
            private += 1
            continue
        try:
            _public_key(jwk)
        except (ValueError, TypeError, ArithmeticError) as exc:
            reason = str(exc) if "must" in str(exc) or "cannot" in str(exc) else "invalid numbers"
            out.append((f"{label} is not a usable public key: {reason}", "error"))
            continue
        x = jwk.get("x")
        cli_key = isinstance(x, str) and hashlib.sha256(x.encode()).hexdigest() == (
            CLI_SIGNING_KEY_X_SHA256
        )
        if cli_key and not dev:
            out.append(
                (
                    f"{label} is the Supabase CLI's public local-development signing key "
                    "(its private half is published); only allowed in dev",
                    "error",
                )
            )
    if private:
        out.append(
            (
                f"holds private key material in {private} key(s) (a d member, or an oct "
                "secret): a JWKS for verifying needs only the public keys",
                "warning",
            )
        )
    return out


def _verify_one(jwk: Mapping[str, Any], alg: str, token: Jwt) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    try:
        key = _public_key(jwk)
        if alg == "ES256":
            sig = token.signature
            if len(sig) != 64:  # JWS ES256 is r || s, 32 bytes each
                return False
            der = encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:]))
            key.verify(der, token.signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(token.signature, token.signing_input, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError, ArithmeticError):
        return False
    return True


def verify_signature(token: Jwt, keys: list[dict[str, Any]], where: str) -> str | None:
    """Why ``token`` (ES256 or RS256) does not verify with ``keys`` (from ``where``), or None."""
    alg = token.header.get("alg")
    assert alg in ASYMMETRIC
    usable = [
        k
        for k in keys
        if k.get("kty") == _KTY[alg] and k.get("alg") in (None, alg) and k.get("use") != "enc"
    ]
    kid = token.header.get("kid")
    if kid is not None:
        usable = [k for k in usable if k.get("kid") == kid]
        if not usable:
            return f"is signed with key id {kid_label(kid)}, not in the JWKS from {where}"
    elif not usable:
        return f"is signed with {alg}, but the JWKS from {where} holds no {alg} key"
    if any(_verify_one(k, alg, token) for k in usable):
        return None
    which = f"key {kid_label(kid)}" if kid is not None else f"any {alg} key"
    return f"signature does not verify with {which} of the JWKS from {where}"


def _shown_url(url: str) -> str:
    # Never a query string or user info: they may carry tokens.
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _https_options(config: Config | None) -> dict[str, Any]:
    """``verify`` and ``timeout`` of the configured https source (the first of that type)."""
    if config is None:
        return {}
    for name, options in config.get("secrets.sources").items():
        if (options.get("type") or name) == "https":
            return {k: options[k] for k in ("verify", "timeout") if options.get(k) is not None}
    return {}


class ProjectJwks:
    """The project's JWKS, found lazily; ``failure`` says why a configured one is unusable."""

    def __init__(self, secrets: Mapping[str, str], config: Config | None) -> None:
        self.secrets = secrets
        self.config = config
        self.failure: str | None = None
        self.where = ""
        self.url: str | None = None
        self._keys: list[dict[str, Any]] | None = None
        self._done = False
        if JWKS_NAME in secrets:
            self.where = JWKS_NAME
        elif secrets.get(JWKS_URL_NAME):
            self.url = secrets[JWKS_URL_NAME].strip()
            self.where = f"{JWKS_URL_NAME} ({_shown_url(self.url)})"
        else:
            setting = str(config.get(JWKS_URL_SETTING) or "") if config is not None else ""
            base = secrets.get("SUPABASE_URL", "").strip().rstrip("/")
            if setting == "auto" and base:
                self.url = base + WELL_KNOWN
            elif setting and setting != "auto":
                self.url = setting
            if self.url:
                self.where = f"{JWKS_URL_SETTING} ({_shown_url(self.url)})"

    @property
    def configured(self) -> bool:
        return bool(self.where)

    def keys(self) -> list[dict[str, Any]] | None:
        """The JWKS's keys, or None (not configured, invalid, or ``failure`` says why)."""
        if not self._done:
            self._done = True
            self._keys = self._load()
        return self._keys

    def _load(self) -> list[dict[str, Any]] | None:
        if self.where == JWKS_NAME:
            try:
                return parse_jwks(self.secrets[JWKS_NAME])
            except ValueError:
                return None  # SUPABASE_JWKS's own check reports why
        if self.url is None:
            return None
        return self._fetch(self.url)

    def _fetch(self, url: str) -> list[dict[str, Any]] | None:
        from ops.errors import OpsError
        from ops.secrets.sources import get_source

        options = {"type": "https", "url": url, "format": "json", **_https_options(self.config)}
        try:
            document = get_source("jwks", options, self.config).fetch()
            keys = document.get("keys")
            if keys is None:
                raise ValueError("the document has no keys list")
            return parse_jwks(keys.value)
        except OpsError as exc:
            # The source's message names the URL, which ``where`` already shows.
            reason = exc.message.replace(_shown_url(url), "it")
            self.failure = f"cannot fetch the JWKS from {self.where}: {reason}"
        except ValueError as exc:
            reason = str(exc).removeprefix("is ")
            self.failure = f"the JWKS from {self.where} is unusable: {reason}"
        return None
