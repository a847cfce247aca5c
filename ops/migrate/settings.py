"""The ``[migrate]`` config section (light: imported by the config loader)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.config import KNOWN_ENVS, Field, Table

if TYPE_CHECKING:
    from ops.config import Config

SECTION_NAME = "migrate"


def _envs(value: Any) -> Any:
    unknown = [v for v in value if v not in KNOWN_ENVS]
    if unknown:
        raise ValueError(f"unknown environment(s) {unknown}; known: {', '.join(KNOWN_ENVS)}")
    return value


def _schema_name(value: Any) -> Any:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", value):
        raise ValueError(f"{value!r} is not a plain lower-case schema name")
    return value


def _check_dirs(section: dict[str, Any], root: Path) -> list[str]:
    """Every ``dirs`` entry is a folder, relative to the project root."""
    problems = []
    for i, entry in enumerate(section.get("dirs", [])):
        if not isinstance(entry, str) or not entry:
            problems.append(f"dirs[{i}]: expected a folder name, got {entry!r}")
            continue
        folder = Path(entry).expanduser()
        folder = folder if folder.is_absolute() else root / folder
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            problems.append(
                f"dirs[{i}]: {entry!r} {what} ({folder}); point it at a folder of "
                "migration files (relative to the project root), or remove it"
            )
    return problems


SECTION = Table(
    {
        "dirs": Field(
            list,
            [],
            "extra migration folders (e.g. supabase/migrations), applied as up-only files",
        ),
        "allow_down_in": Field(
            list, ["dev", "test"], "environments where `migrate down` needs no --yes", _envs
        ),
        "auto_apply_in": Field(
            list,
            ["dev", "test"],
            "environments where `up`/preflight may apply pending migrations",
            _envs,
        ),
        "auto_heal_in": Field(
            list,
            [],  # none: preflight is read-only unless config asks it to heal
            "environments where preflight and the scheduler run `migrate heal --apply` themselves",
            _envs,
        ),
        "supabase_dir": Field(
            str,
            "supabase/migrations",
            "the Supabase CLI's migration folder; when it exists, empire-ops shares it with the "
            'CLI and adopts the Empire schema into it (`migrate init`); "" never shares',
        ),
        "history_schema": Field(
            str, "ops", "schema of the runner's side table migration_history", _schema_name
        ),
    },
    check=_check_dirs,
)


def auto_apply_enabled(config: Config) -> bool:
    """True when ``up`` and preflight may apply pending migrations in this environment."""
    return config.env in config.get("migrate.auto_apply_in")


def down_allowed_without_yes(config: Config) -> bool:
    """True when ``migrate down`` runs without ``--yes`` in this environment."""
    return config.env in config.get("migrate.allow_down_in")
