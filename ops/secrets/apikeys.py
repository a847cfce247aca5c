"""Supabase's opaque API keys (``sb_publishable_…``, ``sb_secret_…``) and their JSON forms.

Pure functions, no I/O. The shape is the one Supabase's own code uses: the
Supabase CLI (``pkg/config/apikeys.go``) and the hosted platform both issue
the prefix, 22 URL-safe base64 characters, ``_`` and 8 more. Only the platform
can tell whether a key is live, so locally we check the prefix (the role), the
shape, and that it is not one of the CLI's public local-development keys.

Those public keys are recognised by their sha256 only, so that no key-looking
literal sits in this code (the values are published in supabase/cli).
Messages never quote a value; a JSON form's entries are named by position and,
when the name is an ordinary key name, by that name.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

PUBLISHABLE_PREFIX = "sb_publishable_"
SECRET_PREFIX = "sb_secret_"
PUBLIC = "public"
SECRET = "secret"

# The prefix, 22 URL-safe base64 characters (16 random bytes), "_", 8 more.
_BODY = re.compile(r"[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{8}")
_BODY_LEN = 31
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]*")
SHAPE = "then 22 URL-safe characters, _ and 8 more"

# sha256 of the Supabase CLI's public local-development keys (supabase/cli
# pkg/config/apikeys.go: defaultPublishableKey, defaultSecretKey, defaultJwtSecret).
CLI_PUBLISHABLE_KEY_SHA256 = "9705102db0d5f99ee08daa19a73e510d9877a2a9add9369da247cbbe6c2a0140"
CLI_SECRET_KEY_SHA256 = "c85debb55f2f204d868cc1552c42faa143b4c675f61363ab040dd50b5b5304cd"
CLI_JWT_SECRET_SHA256 = "a064b502e61d27e94b8717290e5e1b32e36720e9fbdf952ec81a84c07128cb37"
_CLI_KEYS = {CLI_PUBLISHABLE_KEY_SHA256, CLI_SECRET_KEY_SHA256}

# A JSON form's entry name is shown only when it looks like a key name
# ("default", "backend_jobs"), never when it could be a pasted key.
_SHOWN_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def is_cli_dev_key(value: str) -> bool:
    """True for the Supabase CLI's public local ``sb_publishable_``/``sb_secret_`` key."""
    return _sha256(value.strip()) in _CLI_KEYS


def is_cli_jwt_secret(value: str) -> bool:
    """True for the Supabase CLI's public local JWT secret."""
    return _sha256(value) == CLI_JWT_SECRET_SHA256


def opaque_role(value: str) -> str | None:
    """PUBLIC for ``sb_publishable_…``, SECRET for ``sb_secret_…``, else None."""
    if value.startswith(PUBLISHABLE_PREFIX):
        return PUBLIC
    if value.startswith(SECRET_PREFIX):
        return SECRET
    return None


@dataclass(frozen=True)
class KeyIssue:
    """Why an opaque key is wrong. ``role`` marks the wrong kind of key (a swap explains it)."""

    message: str
    role: bool = False


def shape_issue(value: str, prefix: str) -> str | None:
    """Why ``value`` (which starts with ``prefix``) is not of Supabase's shape, or None."""
    body = value[len(prefix) :]
    if _BODY.fullmatch(body):
        return None
    if not _URL_SAFE.fullmatch(body):
        return (
            f"has characters an {prefix} key never holds (only A-Z, a-z, 0-9, - and _): "
            "a space, quote or line break copied with it?"
        )
    if len(body) < _BODY_LEN:
        return f"is shorter than an {prefix} key ({prefix} {SHAPE}): cut off when copied?"
    if len(body) > _BODY_LEN:
        return f"is longer than an {prefix} key ({prefix} {SHAPE}): two keys pasted together?"
    return f"is not of the shape of an {prefix} key ({prefix} {SHAPE})"


def check_opaque(value: str, want: str, *, dev: bool) -> list[KeyIssue]:
    """Problems of ``value`` as an opaque key of role ``want`` (PUBLIC or SECRET)."""
    prefix = PUBLISHABLE_PREFIX if want == PUBLIC else SECRET_PREFIX
    got = opaque_role(value)
    if got is None:
        return [KeyIssue(f"must start with {prefix} ({prefix} {SHAPE})")]
    if got != want:
        if got == SECRET:
            what = "is a secret key (sb_secret_…) where the publishable key belongs"
        else:
            what = "is a publishable key (sb_publishable_…) where the secret key belongs"
        return [KeyIssue(what, role=True)]
    shape = shape_issue(value, prefix)
    if shape:
        return [KeyIssue(shape)]
    if not dev and is_cli_dev_key(value):
        which = "publishable" if want == PUBLIC else "secret"
        return [
            KeyIssue(
                f"is the Supabase CLI's public local-development {which} key; "
                "only allowed in dev (use the project's key from Settings > API Keys)"
            )
        ]
    return []


def entry_label(index: int, name: str) -> str:
    """``entry 2 ('default')``, or ``entry 2`` when the name could itself be a key."""
    shown = _SHOWN_NAME.fullmatch(name) and not name.startswith("sb_")
    return f"entry {index} ({name!r})" if shown else f"entry {index}"


def parse_keys_json(value: str) -> dict[str, str]:
    """The ``{"name": "sb_…"}`` object of SUPABASE_PUBLISHABLE_KEYS / SUPABASE_SECRET_KEYS.

    Raises ValueError (never quoting the value) when it is not a non-empty JSON
    object of strings.
    """
    try:
        data = json.loads(value)
    except ValueError:
        raise ValueError(
            'is not JSON: expected an object of key name to key, e.g. {"default": "sb_…"}'
        ) from None
    if not isinstance(data, dict):
        raise ValueError('is not a JSON object of key name to key, e.g. {"default": "sb_…"}')
    if not data:
        raise ValueError("is an empty JSON object: it holds no key")
    for i, (name, key) in enumerate(data.items(), 1):
        if not isinstance(key, str):
            raise ValueError(f"{entry_label(i, name)} is not a string")
    return data


def keys_role(value: str) -> str | None:
    """The role every key of a JSON form shares (PUBLIC or SECRET), else None."""
    try:
        roles = {opaque_role(k) for k in parse_keys_json(value).values()}
    except ValueError:
        return None
    return roles.pop() if len(roles) == 1 else None


def json_holds_secret(value: str) -> bool:
    """True when ``value`` is a JSON object with an ``sb_secret_`` key among its values."""
    if not value.lstrip().startswith("{"):
        return False
    try:
        data = json.loads(value)
    except ValueError:
        return False
    return isinstance(data, dict) and any(
        isinstance(v, str) and v.startswith(SECRET_PREFIX) for v in data.values()
    )


def check_keys_json(value: str, want: str, *, dev: bool) -> list[KeyIssue]:
    """Problems of a JSON form whose every entry must be an opaque key of role ``want``."""
    try:
        keys = parse_keys_json(value)
    except ValueError as exc:
        return [KeyIssue(str(exc))]
    issues: list[KeyIssue] = []
    for i, (name, key) in enumerate(keys.items(), 1):
        issues += [
            KeyIssue(f"{entry_label(i, name)} {issue.message}", issue.role)
            for issue in check_opaque(key, want, dev=dev)
        ]
    return issues
