"""Load and validate ``empire-ops.toml``.

The file is found via ``--config``, ``EMPIRE_OPS_CONFIG`` or ``./empire-ops.toml``;
without one, built-in defaults use the embedded PostgreSQL and a local state
folder. Named environments (``[env.dev]``, ``[env.prod]``…) overlay the base and
are chosen by ``--env`` / ``EMPIRE_ENV`` (default ``dev``).

Config never holds secret values: it *names* secrets, which the secrets loader
resolves. Validation reports every problem at once, each with its dotted path.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.errors import ConfigError

CONFIG_ENV_VAR = "EMPIRE_OPS_CONFIG"
ENV_ENV_VAR = "EMPIRE_ENV"
DEFAULT_CONFIG_NAME = "empire-ops.toml"
DEFAULT_ENV = "dev"
KNOWN_ENVS = ("dev", "test", "staging", "prod")

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w))+\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``"30s"``, ``"1h30m"``, ``"500ms"``, ``"7d"``.

    Raises ValueError naming the accepted units.
    """
    if not isinstance(text, str) or not _DURATION_RE.match(text):
        raise ValueError(f"{text!r} is not a duration (use e.g. 500ms, 30s, 5m, 1h30m, 7d, 2w)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_CRON_NAMES = {m: i + 1 for i, m in enumerate(_MONTHS)} | {d: i for i, d in enumerate(_WEEKDAYS)}


def parse_cron(text: str) -> list[str]:
    """Check a five-field crontab expression; return its fields or raise ValueError.

    Accepts ``*``, numbers, ranges ``a-b``, steps ``*/n`` / ``a-b/n``, lists and
    month/weekday names, as cron and APScheduler's ``CronTrigger.from_crontab`` do.
    """
    parts = text.split() if isinstance(text, str) else []
    if len(parts) != 5:
        raise ValueError(f"{text!r} is not a cron expression (need 5 fields: m h dom mon dow)")
    for part, (name, lo, hi) in zip(parts, _CRON_FIELDS, strict=True):
        for item in part.split(","):
            rng, _, step = item.partition("/")
            if step and not step.isdigit():
                raise ValueError(f"cron {name} step {step!r} is not a number in {text!r}")
            if rng == "*":
                continue
            bounds = rng.split("-")
            if len(bounds) > 2:
                raise ValueError(f"cron {name} {item!r} is not a value or range in {text!r}")
            for b in bounds:
                value = _CRON_NAMES.get(b.lower()) if not b.isdigit() else int(b)
                if value is None or not lo <= value <= hi:
                    raise ValueError(f"cron {name} {b!r} is outside {lo}-{hi} in {text!r}")
    return parts


@dataclass(frozen=True)
class Field:
    """One setting: its type, default and optional extra check (raises ValueError)."""

    type: type | tuple[type, ...]
    default: Any
    doc: str = ""
    check: Callable[[Any], Any] | None = None
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Table:
    """A table of known fields; ``open_items`` makes it a map of name -> ``item`` tables."""

    fields: Mapping[str, Field | Table] = field(default_factory=dict)
    item: Table | None = None
    doc: str = ""


def _is_duration(v: Any) -> Any:
    return parse_duration(v)


def _is_cron(v: Any) -> Any:
    return parse_cron(v)


def _is_secret_name(v: Any) -> Any:
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", v):
        raise ValueError(f"{v!r} is not a secret name (use UPPER_SNAKE_CASE)")
    return v


# The schema. Later capabilities register their sections with `register_section`.
SCHEMA: dict[str, Table] = {
    "project": Table(
        {
            "name": Field(str, "findawise-empire", "a label shown in reports and e-mails"),
            "state_dir": Field(str, ".empire", "where local state lives (embedded pgdata, caches)"),
        }
    ),
    "database": Table(
        {
            "url_secret": Field(
                str,
                "DATABASE_URL",
                "name of the secret holding the DSN; when it is unset, use the embedded server",
                check=_is_secret_name,
            ),
            "connect_timeout": Field(
                str, "5s", "give up connecting after this", check=_is_duration
            ),
            "statement_timeout": Field(str, "60s", "server-side limit per statement", _is_duration),
            "lock_timeout": Field(
                str, "10s", "how long to wait for an advisory lock", _is_duration
            ),
            "application_name": Field(str, "empire-ops", "shown in pg_stat_activity"),
            "min_server_version": Field(int, 15, "oldest PostgreSQL major accepted"),
            "required_extensions": Field(
                list, ["vector"], "extensions that must be installable or installed"
            ),
        }
    ),
    "embedded": Table(
        {
            "enabled": Field(bool, True, "use the embedded PostgreSQL when no DSN is configured"),
            "port": Field(int, 0, "TCP port on 127.0.0.1; 0 picks a free one and keeps it"),
            "database": Field(str, "empire", "database created in the embedded cluster"),
            "os_user": Field(str, "", "OS user to run it as when empire-ops runs as root"),
        }
    ),
    "logging": Table(
        {
            "level": Field(str, "info", "", choices=("debug", "info", "warning", "error")),
            "format": Field(
                str, "auto", "auto = text on a terminal", choices=("auto", "text", "json")
            ),
            "file": Field(str, "", "also append log lines to this file"),
        }
    ),
}


def register_section(name: str, table: Table) -> None:
    """Add a config section (called by a domain package at import time)."""
    SCHEMA[name] = table


# Each domain package declares its own section in a light ``settings`` module
# (no SDK imports) exposing ``SECTION_NAME`` and ``SECTION``.
_DOMAIN_SETTINGS = (
    "ops.secrets.settings",
    "ops.migrate.settings",
    "ops.backup.settings",
    "ops.alerts.settings",
    "ops.scheduler_settings",
    "dashboards.settings",
)
_domains_loaded = False


def load_domain_sections() -> None:
    """Register every domain's config section (once; missing domains are skipped)."""
    global _domains_loaded
    if _domains_loaded:
        return
    import importlib

    for module_name in _DOMAIN_SETTINGS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        register_section(module.SECTION_NAME, module.SECTION)
    _domains_loaded = True


def _defaults(table: Table) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, spec in table.fields.items():
        if isinstance(spec, Table):
            out[key] = _defaults(spec)
        else:
            out[key] = copy.deepcopy(spec.default)
    return out


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        list: "array",
        dict: "table",
    }
    if isinstance(t, tuple):
        return " or ".join(names.get(x, x.__name__) for x in t)
    return names.get(t, t.__name__)


def _validate(data: Any, table: Table, path: str, problems: list[str]) -> dict[str, Any]:
    """Check ``data`` against ``table``; append every problem; return data with defaults."""
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a table, got {type(data).__name__}")
        return _defaults(table)
    result = _defaults(table)
    for key, value in data.items():
        dotted = f"{path}.{key}" if path else key
        if table.item is not None and key not in table.fields:
            result[key] = _validate(value, table.item, dotted, problems)
            continue
        spec = table.fields.get(key)
        if spec is None:
            close = difflib.get_close_matches(key, list(table.fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            known = ", ".join(sorted(table.fields)) or "none"
            problems.append(f"{dotted}: unknown key{hint}; known keys: {known}")
            continue
        if isinstance(spec, Table):
            result[key] = _validate(value, spec, dotted, problems)
            continue
        # bool is an int in Python; a TOML `true` must not pass as a port.
        accepted = spec.type if isinstance(spec.type, tuple) else (spec.type,)
        wrong_bool = isinstance(value, bool) and bool not in accepted
        expected = spec.type
        if spec.type is float:
            expected = (int, float)
        if wrong_bool or not isinstance(value, expected):
            problems.append(
                f"{dotted}: expected {_type_name(spec.type)}, got {type(value).__name__} {value!r}"
            )
            continue
        if spec.choices is not None and value not in spec.choices:
            options = ", ".join(map(str, spec.choices))
            problems.append(f"{dotted}: {value!r} is not one of {options}")
            continue
        if spec.check is not None:
            try:
                spec.check(value)
            except ValueError as exc:
                problems.append(f"{dotted}: {exc}")
                continue
        result[key] = value
    return result


def _deep_merge(base: dict[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class Config:
    """The effective configuration for one environment."""

    data: dict[str, Any]
    env: str
    path: Path | None
    base_dir: Path

    def get(self, dotted: str) -> Any:
        """The value at ``dotted`` (``"database.connect_timeout"``); KeyError if absent."""
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    def seconds(self, dotted: str) -> float:
        """A duration setting in seconds."""
        return parse_duration(self.get(dotted))

    @property
    def state_dir(self) -> Path:
        path = Path(self.get("project.state_dir"))
        return path if path.is_absolute() else self.base_dir / path

    def resolve_path(self, value: str) -> Path:
        """A path from config, relative to the config file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "config_file": str(self.path) if self.path else None,
            "settings": copy.deepcopy(self.data),
        }


def find_config_file(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file to use: explicit, then ``$EMPIRE_OPS_CONFIG``, then ``./empire-ops.toml``.

    Raises ConfigError when an explicitly named file does not exist.
    """
    named = explicit or os.environ.get(CONFIG_ENV_VAR)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            source = "--config" if explicit else f"${CONFIG_ENV_VAR}"
            raise ConfigError(
                f"config file {path} (from {source}) does not exist",
                hint="create it from empire-ops.example.toml, or drop the option to use defaults",
            )
        return path.resolve()
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local.resolve() if local.is_file() else None


def collect_problems(raw: Mapping[str, Any], env: str) -> tuple[dict[str, Any], list[str]]:
    """Validate a parsed file for ``env``: return (effective data, every problem found)."""
    load_domain_sections()
    problems: list[str] = []
    raw = dict(raw)
    envs = raw.pop("env", {})
    base_table = Table(SCHEMA)
    base = _validate(raw, base_table, "", problems)
    overlays: dict[str, Any] = {}
    if not isinstance(envs, dict):
        problems.append("env: expected a table of environments like [env.prod]")
        envs = {}
    for name, overlay in envs.items():
        if name not in KNOWN_ENVS:
            close = difflib.get_close_matches(name, KNOWN_ENVS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(
                f"env.{name}: unknown environment{hint}; known: {', '.join(KNOWN_ENVS)}"
            )
            continue
        # Validate each overlay on its own so every environment's mistakes show,
        # not only the selected one's.
        _validate(overlay, base_table, f"env.{name}", problems)
        overlays[name] = overlay if isinstance(overlay, dict) else {}
    effective = base
    if env in overlays:
        merged_raw = _deep_merge(raw, overlays[env])
        effective = _validate(merged_raw, base_table, "", [])
    return effective, problems


def load_config(explicit: str | os.PathLike[str] | None = None, env: str | None = None) -> Config:
    """Load, overlay and validate the configuration.

    Raises ConfigError listing every problem, each with its dotted path.
    """
    env = env or os.environ.get(ENV_ENV_VAR) or DEFAULT_ENV
    if env not in KNOWN_ENVS:
        raise ConfigError(
            f"unknown environment {env!r}", hint=f"use one of: {', '.join(KNOWN_ENVS)}"
        )
    path = find_config_file(explicit)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path.name} is not valid TOML: {exc}",
                hint="fix the syntax at the line and column shown",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
    data, problems = collect_problems(raw, env)
    if problems:
        where = path.name if path else "configuration"
        raise ConfigError(
            f"{where} has {len(problems)} problem{'s' if len(problems) != 1 else ''}:\n  "
            + "\n  ".join(problems),
            hint="run `empire-ops config validate` after fixing; see empire-ops.example.toml",
            problems=problems,
        )
    base_dir = path.parent if path else Path.cwd()
    return Config(data=data, env=env, path=path, base_dir=base_dir)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """A readable TOML rendering of the effective settings (for ``config show``)."""
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    for key, value in scalars.items():
        lines.append(f"{key} = {_toml_value(value)}")
    for key, value in tables.items():
        if lines:
            lines.append("")
        lines.append(render_toml(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(line for line in lines if line is not None).strip("\n")
