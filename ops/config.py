"""Load and validate ``empire-ops.toml``.

The file is ``--config``, else ``$EMPIRE_OPS_CONFIG``, else the nearest
``empire-ops.toml`` found walking up from the working folder (as git finds
``.git``). Its folder is the *project root*: the state folder, the default
``.env`` and every relative path in the config resolve against it, so a command
run from a subfolder uses the project's ``.empire`` and ``.env``, never a second
cluster of its own. Without a file, the working folder is the root and built-in
defaults use the embedded PostgreSQL. Named environments (``[env.dev]``,
``[env.prod]``…) overlay the base and are chosen by ``--env`` / ``EMPIRE_ENV``
(default ``dev``).

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
from ops.logs import LOG_FORMATS

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


def format_duration(seconds: float) -> str:
    """A duration as people read it: ``45s``, ``12m``, ``3.5h`` (the inverse, roughly,
    of :func:`parse_duration`)."""
    if seconds < 120:
        return f"{int(seconds)}s"
    if seconds < 7200:
        return f"{int(seconds // 60)}m"
    return f"{seconds / 3600:.1f}h"


def format_time(ts: float | None) -> str:
    """An epoch time as people read it: ``2026-12-07 13:05:19 UTC`` (``-`` for none)."""
    if not ts:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# Where a cron expression's fields sit in APScheduler's CronTrigger, with a label.
_CRON_FIELDS = (
    ("minute", "minute"),
    ("hour", "hour"),
    ("day", "day of month"),
    ("month", "month"),
    ("day_of_week", "day of week"),
)
_LEADING_ZEROS = re.compile(r"\b0+(?=\d)")


def check_cron(text: str) -> str:
    """Check a five-field crontab expression as the scheduler will run it; return it.

    The grammar is APScheduler's (``CronTrigger.from_crontab``), the library
    that runs the schedule, so there is one grammar. The day of week must be
    ``*`` or weekday names (``sun``, ``mon-fri``, ``sat,sun``): APScheduler 3
    counts ``0`` as Monday where cron counts it as Sunday, so a number there
    would not mean what a crontab reader expects. Parts APScheduler would
    silently ignore (``mon-fri/2``, ``mon#2``) are refused too.
    Raises ValueError saying what to write instead.
    """
    parts = text.split() if isinstance(text, str) else []
    if len(parts) != 5:
        raise ValueError(
            f"{text!r} is not a cron expression (need 5 fields: "
            "minute hour day-of-month month day-of-week)"
        )
    if any(ch.isdigit() for ch in parts[4]):
        raise ValueError(
            f"cron day of week {parts[4]!r}: write weekday names (sun, mon-fri, sat,sun), "
            "not numbers: the scheduler counts 0 as Monday, cron as Sunday"
        )
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(text, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a cron expression: {exc}") from None
    # APScheduler matches name expressions by prefix; compare what it read with
    # what was written, so nothing written is dropped without a word.
    for (name, label), part in zip(_CRON_FIELDS, parts, strict=True):
        read = str(trigger.fields[CronTrigger.FIELD_NAMES.index(name)])
        if read != _LEADING_ZEROS.sub("", part.lower()):
            raise ValueError(
                f"cron {label} {part!r} would run as {read!r}: the scheduler ignores the rest; "
                f"write {read!r} or a plain value, range, list or */step"
            )
    return text


def is_timezone(v: Any) -> Any:
    """Check an IANA time zone name (``UTC``, ``Europe/Paris``); return it or raise ValueError."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{v!r} is not a time zone (use an IANA name such as UTC or Europe/Paris)"
        ) from None
    return v


@dataclass(frozen=True)
class Field:
    """One setting: its type, default and optional extra check (raises ValueError).

    A default of None means "unset": the key is absent from the effective
    settings until the file sets it (TOML has no null).
    """

    type: type | tuple[type, ...]
    default: Any
    doc: str = ""
    check: Callable[[Any], Any] | None = None
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Variants:
    """Items of an open table whose options depend on one of their values.

    ``[secrets.sources.<name>]`` is one: its ``type`` picks the table of options
    that type declares. When ``key`` is unset, the item's own name is the type
    (``[secrets.sources.vault]``).
    """

    key: str
    tables: Mapping[str, Table]
    noun: str = "item"


@dataclass(frozen=True)
class Table:
    """A table of known fields; with ``item``, also a map of name -> ``item`` tables.

    ``key_check`` checks the names of those items (raises ValueError).
    ``check(data, root)`` looks across the validated table, given the project
    root, and returns problems as ``"key: message"``.
    """

    fields: Mapping[str, Field | Table] = field(default_factory=dict)
    item: Table | Variants | None = None
    doc: str = ""
    key_check: Callable[[str], Any] | None = None
    check: Callable[[dict[str, Any], Path], list[str]] | None = None


def _is_duration(v: Any) -> Any:
    return parse_duration(v)


def _is_secret_name(v: Any) -> Any:
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", v):
        upper = v.upper()
        fix = f": {upper!r}" if re.fullmatch(r"[A-Z_][A-Z0-9_]*", upper) else ""
        raise ValueError(f"{v!r} is not a secret name (use UPPER_SNAKE_CASE{fix})")
    return v


def _is_port(v: Any) -> Any:
    if not 0 <= v <= 65535:
        raise ValueError(f"{v} is not a TCP port (use 1-65535, or 0 to pick a free one)")
    return v


def _is_identifier(v: Any) -> Any:
    # Names are quoted where they are used; this keeps them to ones that need
    # no quoting anywhere (psql, a DSN, the Supabase CLI) and fit NAMEDATALEN.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", v):
        raise ValueError(
            f"{v!r} is not a database name (letters, digits and _, not starting with a digit, "
            "at most 63 characters)"
        )
    return v


def _is_count(v: Any) -> Any:
    if v < 0:
        raise ValueError(f"{v} is negative (use 0 or more)")
    return v


def _is_positive(v: Any) -> Any:
    if v < 1:
        raise ValueError(f"{v} is not a positive count (use 1 or more)")
    return v


# The schema. Later capabilities register their sections with `register_section`.
SCHEMA: dict[str, Table] = {
    "project": Table(
        {
            "name": Field(str, "findawise-empire", "a label shown in reports and e-mails"),
            "state_dir": Field(
                str,
                ".empire",
                "where local state lives (embedded pgdata, caches); relative to the project root",
            ),
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
            "min_server_version": Field(
                int, 15, "oldest PostgreSQL major accepted", check=_is_count
            ),
            "required_extensions": Field(
                list, ["vector"], "extensions that must be installable or installed"
            ),
        }
    ),
    "embedded": Table(
        {
            "enabled": Field(bool, True, "use the embedded PostgreSQL when no DSN is configured"),
            "port": Field(
                int, 0, "TCP port on 127.0.0.1; 0 picks a free one and keeps it", _is_port
            ),
            "database": Field(
                str, "empire", "database created in the embedded cluster", _is_identifier
            ),
            "os_user": Field(str, "", "OS user to run it as when empire-ops runs as root"),
        }
    ),
    "logging": Table(
        {
            "level": Field(str, "info", "", choices=("debug", "info", "warning", "error")),
            "format": Field(
                str, "auto", "auto = text on a terminal, plain otherwise", choices=LOG_FORMATS
            ),
            "file": Field(str, "", "also append log lines to this file"),
        }
    ),
}


def register_section(name: str, table: Table) -> None:
    """Add a config section (called by a domain package at import time)."""
    SCHEMA[name] = table


# Each domain package declares its own section in a light ``settings`` module
# (no SDK imports) exposing ``SECTION_NAME`` and ``SECTION``. A new domain adds
# its line here.
_DOMAIN_SETTINGS = (
    "ops.secrets.settings",
    "ops.migrate.settings",
    "ops.backup.settings",
    "ops.alerts.settings",
    "ops.scheduler.settings",
    "ops.data.settings",
    "dashboards.settings",
)
_domains_loaded = False


def load_domain_sections() -> None:
    """Register every domain's config section (once)."""
    global _domains_loaded
    if _domains_loaded:
        return
    import importlib

    for module_name in _DOMAIN_SETTINGS:
        module = importlib.import_module(module_name)
        register_section(module.SECTION_NAME, module.SECTION)
    _domains_loaded = True


def _defaults(table: Table) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, spec in table.fields.items():
        if isinstance(spec, Table):
            out[key] = _defaults(spec)
        elif spec.default is not None:
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


def _unknown_key(key: str, dotted: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{dotted}: unknown key{hint}; known keys: {', '.join(sorted(known)) or 'none'}"


@dataclass
class _Validator:
    """Checks data against the schema, collecting every problem with its dotted path.

    ``root`` is the project root, for checks that look at the disk (migration
    folders); ``cross`` turns the tables' cross-field checks on.
    """

    root: Path
    problems: list[str] = field(default_factory=list)
    cross: bool = True

    def table(self, data: Any, table: Table, path: str) -> dict[str, Any]:
        """``data`` checked against ``table``, with defaults filled in."""
        if not isinstance(data, dict):
            self.problems.append(f"{path}: expected a table, got {type(data).__name__}")
            return _defaults(table)
        result = _defaults(table)
        for key, value in data.items():
            dotted = f"{path}.{key}" if path else key
            if table.item is not None and key not in table.fields:
                result[key] = self.item(key, value, table, dotted)
                continue
            spec = table.fields.get(key)
            if spec is None:
                self.problems.append(_unknown_key(key, dotted, table.fields))
            elif isinstance(spec, Table):
                result[key] = self.table(value, spec, dotted)
            elif self.value(value, spec, dotted):
                result[key] = value
        if self.cross and table.check is not None:
            self.problems.extend(f"{path}.{p}" for p in table.check(result, self.root))
        return result

    def item(self, key: str, value: Any, table: Table, dotted: str) -> dict[str, Any]:
        if table.key_check is not None:
            try:
                table.key_check(key)
            except ValueError as exc:
                self.problems.append(f"{dotted}: {exc}")
        if isinstance(table.item, Variants):
            return self.variant(key, value, table.item, dotted)
        assert table.item is not None
        return self.table(value, table.item, dotted)

    def variant(self, name: str, data: Any, variants: Variants, path: str) -> dict[str, Any]:
        """An item checked against the options its ``variants.key`` (its type) declares."""
        if not isinstance(data, dict):
            self.problems.append(f"{path}: expected a table, got {type(data).__name__}")
            return {}
        chosen = data.get(variants.key, name)
        known = ", ".join(variants.tables)
        if not isinstance(chosen, str) or chosen not in variants.tables:
            if variants.key in data:
                self.problems.append(
                    f"{path}.{variants.key}: {chosen!r} is not a {variants.noun} type; "
                    f"known: {known}"
                )
            else:
                self.problems.append(
                    f"{path}: {name!r} is not a {variants.noun} type, and no {variants.key} "
                    f"is set; set {variants.key} to one of: {known}"
                )
            return dict(data)
        table = variants.tables[chosen]
        own: dict[str, Any] = {}
        for key, value in data.items():
            owners = [t for t, other in variants.tables.items() if key in other.fields]
            if key not in table.fields and owners:
                self.problems.append(
                    f"{path}.{key}: an option of {' and '.join(owners)} {variants.noun}s, "
                    f"not of this {chosen} {variants.noun}; {chosen} options: "
                    f"{', '.join(sorted(table.fields))}"
                )
                continue
            own[key] = value
        return self.table(own, table, path)

    def value(self, value: Any, spec: Field, dotted: str) -> bool:
        """True when ``value`` fits ``spec``; else record why and return False."""
        # bool is an int in Python; a TOML `true` must not pass as a port.
        accepted = spec.type if isinstance(spec.type, tuple) else (spec.type,)
        wrong_bool = isinstance(value, bool) and bool not in accepted
        expected = (int, float) if spec.type is float else spec.type
        if wrong_bool or not isinstance(value, expected):
            self.problems.append(
                f"{dotted}: expected {_type_name(spec.type)}, got {type(value).__name__} {value!r}"
            )
            return False
        if spec.choices is not None and value not in spec.choices:
            options = ", ".join(map(str, spec.choices))
            self.problems.append(f"{dotted}: {value!r} is not one of {options}")
            return False
        if spec.check is not None:
            try:
                spec.check(value)
            except ValueError as exc:
                self.problems.append(f"{dotted}: {exc}")
                return False
        return True


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
    """The effective configuration for one environment.

    ``base_dir`` is the project root: the config file's folder, or the working
    folder when there is no file. ``env_explicit`` is False when the
    environment is the default (no ``--env``, no ``$EMPIRE_ENV``): commands
    that write to a non-embedded database then ask for ``--yes``.
    """

    data: dict[str, Any]
    env: str
    path: Path | None
    base_dir: Path
    env_explicit: bool = False

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
        """``project.state_dir``, relative to the project root."""
        return self.resolve_path(self.get("project.state_dir"))

    def resolve_path(self, value: str) -> Path:
        """A path from config, relative to the project root (the config file's folder)."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "config_file": str(self.path) if self.path else None,
            "settings": copy.deepcopy(self.data),
        }

    def to_toml(self) -> str:
        """The effective settings as TOML that ``tomllib`` reads back to ``data``.

        The first line is a comment naming the environment and the file.
        """
        import tomli_w

        where = str(self.path) if self.path else "built-in defaults"
        # A comment ends at a newline: keep a strange file name on one line.
        where = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", where)
        return f"# environment: {self.env}; file: {where}\n{tomli_w.dumps(self.data)}"


def _cwd() -> Path:
    try:
        return Path.cwd()
    except FileNotFoundError:
        raise ConfigError(
            "the working folder no longer exists",
            hint="cd into the project folder (or any existing folder) and run it again",
        ) from None


def find_config_file(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The config file: explicit, then ``$EMPIRE_OPS_CONFIG``, then the nearest ``empire-ops.toml``.

    The nearest is the first found in the working folder or one of its parents.
    Returns None when there is none. Raises ConfigError when an explicitly
    named file does not exist.
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
    cwd = _cwd()
    for folder in (cwd, *cwd.parents):
        candidate = folder / DEFAULT_CONFIG_NAME
        try:
            if candidate.is_file():
                return candidate.resolve()
        except OSError:  # a parent we may not look into ends the search
            return None
    return None


def collect_problems(
    raw: Mapping[str, Any], env: str, base_dir: Path | None = None
) -> tuple[dict[str, Any], list[str]]:
    """Validate a parsed file for ``env``: return (effective data, every problem found).

    ``base_dir`` is the project root that relative paths resolve against
    (default: the working folder). Every environment overlay is checked, not
    only the selected one.
    """
    load_domain_sections()
    root = base_dir or _cwd()
    raw = dict(raw)
    envs = raw.pop("env", {})
    base_table = Table(SCHEMA)
    check = _Validator(root)
    base = check.table(raw, base_table, "")
    overlays: dict[str, Any] = {}
    if not isinstance(envs, dict):
        check.problems.append("env: expected a table of environments like [env.prod]")
        envs = {}
    for name, overlay in envs.items():
        if name not in KNOWN_ENVS:
            close = difflib.get_close_matches(name, KNOWN_ENVS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            check.problems.append(
                f"env.{name}: unknown environment{hint}; known: {', '.join(KNOWN_ENVS)}"
            )
            continue
        # Each overlay's own mistakes, with its path...
        own = _Validator(root, cross=False)
        own.table(overlay, base_table, f"env.{name}")
        check.problems.extend(own.problems)
        overlays[name] = overlay if isinstance(overlay, dict) else {}
        # ...and those that only show once it is merged (a chain naming a source
        # the base defines), reported under the overlay.
        merged = _Validator(root)
        merged.table(_deep_merge(raw, overlays[name]), base_table, "")
        for problem in merged.problems:
            scoped = f"env.{name}.{problem}"
            if problem not in check.problems and scoped not in check.problems:
                check.problems.append(scoped)
    effective = base
    if env in overlays:
        effective = _Validator(root).table(_deep_merge(raw, overlays[env]), base_table, "")
    return effective, check.problems


def load_config(explicit: str | os.PathLike[str] | None = None, env: str | None = None) -> Config:
    """Load, overlay and validate the configuration.

    Raises ConfigError listing every problem, each with its dotted path.
    """
    env_explicit = bool(env or os.environ.get(ENV_ENV_VAR))
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
    base_dir = path.parent if path else _cwd()
    data, problems = collect_problems(raw, env, base_dir)
    if problems:
        where = path.name if path else "configuration"
        raise ConfigError(
            f"{where} has {len(problems)} problem{'s' if len(problems) != 1 else ''}:\n  "
            + "\n  ".join(problems),
            hint="run `empire-ops config validate` after fixing; see empire-ops.example.toml",
            problems=problems,
        )
    return Config(data=data, env=env, path=path, base_dir=base_dir, env_explicit=env_explicit)
