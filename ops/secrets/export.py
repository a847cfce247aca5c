"""Export resolved secrets to a dotenv or JSON file (mode 0600, written atomically).

An existing file is never replaced without ``force``: without it the file is
created exclusively, so even a file that appears meanwhile is not overwritten.
A folder, an unwritable path or a full disk is refused with its exit code
(2, 2, 1) and leaves nothing behind.

The dotenv rendering quotes every value so that it reads back unchanged with
python-dotenv (interpolation off): newlines, quotes, backslashes, ``$``, ``#``
and non-ASCII characters all round-trip.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ops.errors import UsageError
from ops.fsutil import atomic_write_bytes, create_exclusive
from ops.secrets.errors import SecretMissing, SecretsUnavailable
from ops.secrets.sources.dotenv import quote_value

if TYPE_CHECKING:
    from ops.config import Config
    from ops.secrets.model import SecretSet

FORMATS = ("dotenv", "json")
# Source states whose values are missing or possibly stale (see ops.secrets.merge.SourceStatus).
_NOT_LIVE = ("denied", "invalid", "unavailable", "stale-cache")
SECRET_FILE_MODE = 0o600


def render_dotenv(secrets: Mapping[str, str]) -> str:
    """A dotenv document, one ``NAME="value"`` line per secret, sorted by name.

    Quoted as the dotenv source writes (``sync`` to a dotenv file), so both read back the same.
    """
    return "".join(f"{name}={quote_value(secrets[name])}\n" for name in sorted(secrets))


def render_json(secrets: Mapping[str, str]) -> str:
    """A JSON object ``{name: value}``, sorted by name."""
    return json.dumps(dict(sorted(secrets.items())), indent=2, ensure_ascii=False) + "\n"


def render(secrets: Mapping[str, str], fmt: str) -> str:
    """``secrets`` in ``fmt`` (dotenv or json). Raises UsageError for another format."""
    if fmt == "dotenv":
        return render_dotenv(secrets)
    if fmt == "json":
        return render_json(secrets)
    raise UsageError(f"unknown export format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")


def check_out_path(out: Path, *, force: bool = False) -> None:
    """Refuse ``out`` before anything is loaded: a folder, or an existing file without ``force``.

    Raises UsageError (exit 2).
    """
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder", hint="give --out a file name")
    if out.exists() and not force:
        raise UsageError(
            f"--out {out} already exists; not overwriting it",
            hint="pass --force to replace it (atomically, mode 0600), or choose another name",
        )


def export_to_file(secrets: Mapping[str, str], fmt: str, out: Path, *, force: bool = False) -> int:
    """Write ``secrets`` to ``out`` in ``fmt``, mode 0600, atomically; return how many.

    Without ``force`` an existing ``out`` is refused, even one created while
    exporting. Raises UsageError (exit 2) for an unknown format, a folder or an
    existing file; PathNotUsable (exit 2) for a path that cannot be written and
    DiskFull (exit 1), leaving no partial or temporary file.
    """
    data = render(secrets, fmt).encode("utf-8")
    check_out_path(out, force=force)
    if force:
        atomic_write_bytes(out, data, mode=SECRET_FILE_MODE)
        return len(secrets)
    try:
        create_exclusive(out, data, mode=SECRET_FILE_MODE)
    except FileExistsError:
        check_out_path(out)  # raises: it appeared while we exported
        raise
    return len(secrets)


def resolved_secrets(config: Config) -> SecretSet:
    """Every secret the configured chain resolves, live, for export and snapshots.

    Refuses (SecretMissing) unless every configured source answered: a source
    that denied access (exit 4), answered garbage (exit 3), or was unreachable
    (exit 4, even when its stale cache could stand in) would make a partial or
    stale set look complete. See docs/decisions/0002.
    """
    from ops.secrets import load_secrets

    result = load_secrets(config)
    broken = [s for s in result.sources if s.status in _NOT_LIVE]
    if broken:
        # Only answers that were garbage are a secrets problem (3); else a source is down (4).
        cls = SecretMissing if all(s.status == "invalid" for s in broken) else SecretsUnavailable
        raise cls(
            "not every secrets source answered: "
            + ", ".join(f"{s.name} ({s.status})" for s in broken),
            hint="fix or wait for the source (`empire-ops secrets status` shows why), then retry",
        )
    return result.secrets


def export_secrets(config: Config, fmt: str, out: Path, *, force: bool = False) -> int:
    """Write every resolved secret to ``out`` (0600, atomic); return how many written.

    ``out`` is checked before any source is read; see :func:`export_to_file`.
    """
    render({}, fmt)  # an unknown format fails before anything is loaded
    check_out_path(out, force=force)
    return export_to_file(resolved_secrets(config), fmt, out, force=force)
