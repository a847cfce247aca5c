"""Validators for the built-in secret kinds, including Supabase's keys and URLs.

Each validator takes the value and a :class:`KindContext` and returns
:class:`Problem` s whose messages say *why* without ever quoting the value.
Pure functions: no I/O, no SDKs (JWTs are decoded here with base64 and hmac).
The one exception is the project's JWKS for ES256/RS256 keys: a validator asks
``ctx.jwks`` (:class:`ops.secrets.jwks.ProjectJwks`, which fetches lazily and
at most once) and ``cryptography`` is imported only then.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ops.logs import MIN_REDACT_LENGTH, is_redactable
from ops.secrets import apikeys
from ops.secrets.apikeys import PUBLIC, PUBLISHABLE_PREFIX, SECRET, SECRET_PREFIX, KeyIssue

if TYPE_CHECKING:
    from ops.secrets.jwks import ProjectJwks

DEV = "dev"
_MASK_CHARS = ("•", "·", "****", "●")
_PLACEHOLDERS = {
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "placeholder",
    "todo",
    "tbd",
    "xxx",
    "xxxx",
    "null",
    "none",
    "secret",
    "password",
    "example",
}
_PLACEHOLDER_RE = re.compile(r"^(your|my)[-_ .].*[-_ .]here$|^<[^<>]+>$|^\$\{?[A-Z_]+\}?$", re.I)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# One label of a DNS name; underscores too, as container names (mail_relay) resolve.
_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_SUPABASE_HOST = re.compile(r"^([a-z0-9]{20})\.supabase\.(co|in)$")
# What Supabase signs its role keys with: the JWT secret, or an asymmetric signing key.
KEY_ALGORITHMS = ("HS256", "ES256", "RS256")
_SHOWN_ALG = re.compile(r"[A-Za-z0-9+-]{1,16}")


@dataclass(frozen=True)
class Problem:
    """Why a value is wrong (``error``) or suspicious (``warning``); never quotes it."""

    message: str
    severity: str = "error"
    # The value is the other kind of key (public where secret belongs, or back):
    # a swap of two names explains it better, so a swap finding replaces it.
    role: bool = False


@dataclass
class KindContext:
    """What a validator may look at: the environment, the other secrets, the project's JWKS."""

    env: str
    name: str
    secrets: Mapping[str, str] = field(default_factory=dict)
    jwks: ProjectJwks | None = None

    @property
    def dev(self) -> bool:
        return self.env == DEV


Validator = Callable[[str, KindContext], list[Problem]]


# ---------------------------------------------------------------------- rejected everywhere
def universal_problems(value: str) -> list[Problem]:
    """Masked values, placeholders and the empty string: rejected for every kind."""
    stripped = value.strip()
    if not stripped:
        return [Problem("is empty")]
    if any(m in value for m in _MASK_CHARS):
        return [
            Problem("looks masked (contains •, · or ****): copy the real value, not the display")
        ]
    if stripped.lower() in _PLACEHOLDERS or _PLACEHOLDER_RE.match(stripped):
        return [Problem("is a placeholder (like changeme or your-…-here), not a real value")]
    return []


# ---------------------------------------------------------------------- JWT
@dataclass(frozen=True)
class Jwt:
    """A decoded (not verified) JWT."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode_jwt(value: str) -> Jwt:
    """Decode a compact JWT without verifying it; ValueError (no value quoted) if it is not one."""
    parts = value.strip().split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise ValueError("is not a JWT (expected three base64url parts separated by dots)")
    try:
        header = json.loads(_b64url(parts[0]))
        payload = json.loads(_b64url(parts[1]))
        signature = _b64url(parts[2])
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValueError("is not a JWT (its parts are not base64url-encoded JSON)") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("is not a JWT (header and payload must be JSON objects)")
    return Jwt(header, payload, f"{parts[0]}.{parts[1]}".encode(), signature)


def verify_hs256(token: Jwt, secret: str) -> bool:
    """True when ``token`` carries a valid HS256 signature made with ``secret``."""
    expected = hmac.new(secret.encode(), token.signing_input, hashlib.sha256).digest()
    return hmac.compare_digest(expected, token.signature)


def _jwt(value: str, ctx: KindContext) -> list[Problem]:
    try:
        token = decode_jwt(value)
    except ValueError as exc:
        return [Problem(str(exc))]
    exp = token.payload.get("exp")
    if isinstance(exp, int | float) and exp < time.time():
        day = time.strftime("%Y-%m-%d", time.gmtime(exp))
        return [Problem(f"expired on {day} (exp claim); issue a new key")]
    return []


def project_ref(url: str) -> str | None:
    """The project ref of ``https://<ref>.supabase.co``, or None for other hosts."""
    host = (urlsplit(url).hostname or "").lower()
    match = _SUPABASE_HOST.match(host)
    return match.group(1) if match else None


def _alg_label(alg: Any) -> str:
    shown = isinstance(alg, str) and _SHOWN_ALG.fullmatch(alg)
    return repr(alg) if shown else "an unknown algorithm"


def _legacy_key(value: str, ctx: KindContext, role: str) -> list[Problem]:
    """A role key as a JWT: algorithm, role, exp, iss, ref, then the signature when checkable."""
    problems = _jwt(value, ctx)
    if problems:
        return problems
    token = decode_jwt(value)
    claims = token.payload
    alg = token.header.get("alg")
    if alg not in KEY_ALGORITHMS:
        problems.append(
            Problem(f"is signed with {_alg_label(alg)}; Supabase keys use HS256, ES256 or RS256")
        )
    if claims.get("role") != role:
        problems.append(
            Problem(f"carries role {claims.get('role')!r}, expected {role!r}", role=True)
        )
    if not isinstance(claims.get("exp"), int | float):
        problems.append(
            Problem("has no exp claim; every Supabase key carries one: copy the whole key")
        )
    if claims.get("iss") == "supabase-demo" and not ctx.dev:
        problems.append(
            Problem("is the public Supabase demo key (iss=supabase-demo); only allowed in dev")
        )
    url = ctx.secrets.get("SUPABASE_URL", "")
    ref = project_ref(url) if url else None
    if ref and claims.get("ref") is None:
        problems.append(
            Problem(f"carries no ref claim, so it is not a key of SUPABASE_URL's project {ref!r}")
        )
    elif ref and claims.get("ref") != ref:
        problems.append(
            Problem(f"belongs to project {claims.get('ref')!r} but SUPABASE_URL is project {ref!r}")
        )
    jwt_secret = ctx.secrets.get("SUPABASE_JWT_SECRET")
    if jwt_secret and alg == "HS256" and not verify_hs256(token, jwt_secret):
        problems.append(Problem("signature does not verify with SUPABASE_JWT_SECRET"))
    if alg in ("ES256", "RS256") and ctx.jwks is not None and ctx.jwks.configured:
        keys = ctx.jwks.keys()  # None: unusable; ProjectJwks reports why, once
        if keys is not None:
            from ops.secrets.jwks import verify_signature

            why = verify_signature(token, keys, ctx.jwks.where)
            if why:
                problems.append(Problem(why))
    return problems


def _issues(issues: list[KeyIssue]) -> list[Problem]:
    return [Problem(i.message, role=i.role) for i in issues]


def _anon_key(value: str, ctx: KindContext) -> list[Problem]:
    if apikeys.opaque_role(value):
        return _issues(apikeys.check_opaque(value, PUBLIC, dev=ctx.dev))
    return _legacy_key(value, ctx, "anon")


def _service_key(value: str, ctx: KindContext) -> list[Problem]:
    if apikeys.opaque_role(value):
        return _issues(apikeys.check_opaque(value, SECRET, dev=ctx.dev))
    return _legacy_key(value, ctx, "service_role")


def _opaque_key(want: str) -> Validator:
    """SUPABASE_PUBLISHABLE_KEY / SUPABASE_SECRET_KEY: an ``sb_`` key, never a legacy JWT."""
    public = want == PUBLIC
    legacy = "anon" if public else "service_role"
    prefix = PUBLISHABLE_PREFIX if public else SECRET_PREFIX
    slot = "publishable" if public else "secret"
    home = "SUPABASE_ANON_KEY" if public else "SUPABASE_SERVICE_ROLE_KEY"

    def check(value: str, ctx: KindContext) -> list[Problem]:
        role = jwt_role(value)
        if role is None:
            return _issues(apikeys.check_opaque(value, want, dev=ctx.dev))
        if role in ("anon", "service_role") and role != legacy:
            why = f"is the {role} key (legacy JWT) where the {slot} key belongs"
            return [Problem(why, role=True)]
        return [
            Problem(
                f"is a legacy JWT key; {ctx.name} takes an {prefix} key "
                f"(a legacy {legacy} key belongs under {home})"
            )
        ]

    return check


def _opaque_keys(want: str) -> Validator:
    """SUPABASE_PUBLISHABLE_KEYS / SUPABASE_SECRET_KEYS: a JSON object of name -> ``sb_`` key."""

    def check(value: str, ctx: KindContext) -> list[Problem]:
        return _issues(apikeys.check_keys_json(value, want, dev=ctx.dev))

    return check


def _jwks(value: str, ctx: KindContext) -> list[Problem]:
    from ops.secrets.jwks import jwks_problems

    return [Problem(message, severity) for message, severity in jwks_problems(value, dev=ctx.dev)]


def _jwt_secret(value: str, ctx: KindContext) -> list[Problem]:
    if not ctx.dev and apikeys.is_cli_jwt_secret(value):
        return [
            Problem(
                "is the Supabase CLI's public local-development JWT secret; only allowed in dev"
            )
        ]
    return []


# ---------------------------------------------------------------------- URLs and DSNs
def _url(value: str, ctx: KindContext) -> list[Problem]:
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        return [Problem("is not a URL")]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [Problem("is not an http(s) URL with a host")]
    if parts.scheme != "https" and not ctx.dev:
        return [Problem("must use https outside dev")]
    return []


def _supabase_url(value: str, ctx: KindContext) -> list[Problem]:
    problems = _url(value, ctx)
    if problems:
        return problems
    parts = urlsplit(value.strip())
    if parts.path not in ("", "/"):
        return [Problem("must be the project URL only (https://<ref>.supabase.co), no path")]
    return []


def _postgres_dsn(value: str, ctx: KindContext) -> list[Problem]:
    from ops import db
    from ops.errors import ConfigError

    if "://" in value and value.split("://", 1)[0] not in ("postgres", "postgresql"):
        return [Problem("must start with postgresql://")]
    try:
        info = db.parse_dsn(value)
    except ConfigError as exc:
        # The error names what is wrong (never a part of the DSN) and how to fix it.
        reason = exc.message.removeprefix("the database DSN ")
        return [Problem(f"is not a usable PostgreSQL DSN: {reason}; {exc.hint}")]
    # The transaction pooler and a remote host without TLS: db's one reading of them.
    warnings = [Problem(w, "warning") for w in db.dsn_warnings(info)]
    return _supabase_dsn_problems(info, ctx) + warnings


def _supabase_dsn_problems(info: Any, ctx: KindContext) -> list[Problem]:
    """Errors of a DSN on Supabase's hosts: the port and user each host expects, the project."""
    from ops import db

    host, port, user = info.host.lower(), info.port, info.user
    problems: list[Problem] = []
    direct = db.SUPABASE_DIRECT_HOST.match(host)
    if direct:
        # 5432 is the database itself; 6543 the project's dedicated pooler (PgBouncer).
        if port not in (5432, db.TRANSACTION_POOLER_PORT):
            problems.append(
                Problem(
                    f"direct Supabase host {host} listens on 5432 (the database) or 6543 "
                    f"(the dedicated pooler), not {port}"
                )
            )
        if user != "postgres":
            problems.append(Problem(f"direct Supabase host {host} expects user postgres"))
        ref = direct.group(1)
    elif db.SUPABASE_POOLER_HOST.match(host):
        ref = user.partition(".")[2] or None
        if not user.startswith("postgres.") or not ref:
            problems.append(Problem("the Supabase pooler expects user postgres.<project-ref>"))
        if port not in (5432, db.TRANSACTION_POOLER_PORT):
            problems.append(Problem(f"the Supabase pooler listens on 5432 or 6543, not {port}"))
    else:
        return []
    url_ref = project_ref(ctx.secrets.get("SUPABASE_URL", ""))
    if ref and url_ref and ref != url_ref:
        problems.append(
            Problem(f"points at project {ref!r} but SUPABASE_URL is project {url_ref!r}")
        )
    return problems


# ---------------------------------------------------------------------- scalars
def _string(value: str, ctx: KindContext) -> list[Problem]:
    return []


def _int(value: str, ctx: KindContext) -> list[Problem]:
    return [] if re.fullmatch(r"[+-]?\d+", value.strip()) else [Problem("is not an integer")]


def _bool(value: str, ctx: KindContext) -> list[Problem]:
    ok = value.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off")
    return [] if ok else [Problem("is not a boolean (true/false, 1/0, yes/no, on/off)")]


def _email(value: str, ctx: KindContext) -> list[Problem]:
    return [] if _EMAIL_RE.match(value.strip()) else [Problem("is not an e-mail address")]


def _email_list(value: str, ctx: KindContext) -> list[Problem]:
    """One or more addresses separated by commas (spaces around them allowed)."""
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        return [Problem("has an empty entry (two commas, or one at either end)")]
    bad = [str(i) for i, item in enumerate(items, 1) if not _EMAIL_RE.match(item)]
    if not bad:
        return []
    if len(items) == 1:
        return [Problem("is not an e-mail address (separate several with commas)")]
    which = f"entry {bad[0]} is" if len(bad) == 1 else f"entries {', '.join(bad)} are"
    return [Problem(f"{which} not an e-mail address ({len(items)} entries, by position)")]


def _hostname(value: str, ctx: KindContext) -> list[Problem]:
    """A DNS name or an IP address literal, as a client connects to it: nothing around it."""
    if "://" in value:
        return [Problem("is a URL; give the host name only, without scheme")]
    if any(c.isspace() for c in value):
        return [Problem("contains spaces; give the host name only")]
    if "/" in value:
        return [Problem("has a path; give the host name only")]
    try:
        ipaddress.ip_address(value)
        return []
    except ValueError:
        pass
    if value.startswith("["):
        return [Problem("has brackets; write an IPv6 address without them (and without a port)")]
    if ":" in value:
        return [Problem("has a port or is not an IP address; give the host only (no :port)")]
    name = value.removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return [Problem("is not a host name (letters, digits and hyphens between dots)")]
    if labels[-1].isdigit():
        return [Problem("is not an IP address")]
    return []


def _port(value: str, ctx: KindContext) -> list[Problem]:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 65535:
        return [Problem("is not a TCP port (a whole number from 1 to 65535)")]
    return []


KIND_VALIDATORS: dict[str, Validator] = {
    "string": _string,
    "int": _int,
    "bool": _bool,
    "url": _url,
    "postgres_dsn": _postgres_dsn,
    "email": _email,
    "email_list": _email_list,
    "hostname": _hostname,
    "port": _port,
    "jwt": _jwt,
    "supabase_url": _supabase_url,
    "supabase_anon_key": _anon_key,
    "supabase_service_role_key": _service_key,
    "supabase_publishable_key": _opaque_key(PUBLIC),
    "supabase_secret_key": _opaque_key(SECRET),
    "supabase_publishable_keys": _opaque_keys(PUBLIC),
    "supabase_secret_keys": _opaque_keys(SECRET),
    "supabase_jwt_secret": _jwt_secret,
    "jwks": _jwks,
}


# Kinds whose value is a credential a person chose, so it can be weak. The
# others have a format of their own (a JWT, a key, a URL, a number).
_WEAK_CHECKED = ("string", "postgres_dsn", "supabase_jwt_secret")


def weakness(kind: str, value: str) -> str | None:
    """Why ``value`` (of ``kind``) is weak, or None: too short or too common to redact.

    A weak value cannot be kept out of output by redaction without garbling
    ordinary words (and so revealing itself); see docs/decisions/0004. For a
    DSN it is the password that counts. Never quotes the value.
    """
    if kind not in _WEAK_CHECKED:
        return None
    what = "is"
    if kind == "postgres_dsn":
        from ops import db

        password = db.dsn_password(value)
        if password is None:
            return None
        value, what = password, "has a password that is"
    if len(value) < MIN_REDACT_LENGTH:
        return f"{what} shorter than {MIN_REDACT_LENGTH} characters: too weak to use"
    if not is_redactable(value):
        return f"{what} a common word or default: too weak to use"
    return None


def check_value(kind: str, value: str, ctx: KindContext) -> list[Problem]:
    """Every problem of ``value`` as a ``kind``: universal checks first, then the kind's own."""
    return universal_problems(value) or KIND_VALIDATORS[kind](value, ctx)


def jwt_role(value: str) -> str | None:
    """The ``role`` claim of a legacy key, or None when the value is not a JWT."""
    try:
        role = decode_jwt(value).payload.get("role")
    except ValueError:
        return None
    return role if isinstance(role, str) else None


def is_service_key(value: str) -> bool:
    """True for a service-role JWT, an ``sb_secret_`` key or a JSON form holding one.

    These are the values that must stay server-side.
    """
    return (
        value.startswith(SECRET_PREFIX)
        or jwt_role(value) == "service_role"
        or apikeys.json_holds_secret(value)
    )


def key_role(value: str) -> str | None:
    """PUBLIC or SECRET for any form of Supabase API key (opaque, legacy JWT, JSON form)."""
    role = apikeys.opaque_role(value)
    if role is not None:
        return role
    legacy = jwt_role(value)
    if legacy is not None:
        return {"anon": PUBLIC, "service_role": SECRET}.get(legacy)
    return apikeys.keys_role(value) if value.lstrip().startswith("{") else None
