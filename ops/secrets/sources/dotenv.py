"""The ``dotenv`` source: one or more ``.env`` files, parsed by python-dotenv.

Interpolation is off by default, so a ``$`` in a password survives. Quoted
multi-line values, ``export`` prefixes, a UTF-8 BOM and CRLF line ends are
accepted. The first file listed wins over later ones; inside a file the last
duplicate wins (as python-dotenv does), with a warning naming both lines. A
line that does not parse is an error naming the file and line.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from ops import findings as F
from ops.fsutil import atomic_write_text
from ops.secrets.errors import SourceInvalid, SourceNotFound, SourceUnavailable
from ops.secrets.sources.base import RawSecrets, SecretSource

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote_value(value: str) -> str:
    """``value`` as a double-quoted dotenv value that python-dotenv reads back unchanged."""
    return '"' + "".join(_ESCAPES.get(c, c) for c in value) + '"'


def parse_dotenv_text(
    text: str, where: str, *, interpolate: bool = False
) -> tuple[dict[str, tuple[str, int]], list[tuple[str, int, int]]]:
    """Parse dotenv ``text``: (``name -> (value, line)``, duplicates as (name, old, new line)).

    Raises SourceInvalid naming ``where`` and the line of the first statement
    that does not parse.
    """
    from dotenv.main import resolve_variables
    from dotenv.parser import parse_stream

    found: dict[str, tuple[str, int]] = {}
    dupes: list[tuple[str, int, int]] = []
    for binding in parse_stream(io.StringIO(text.lstrip("\ufeff"))):
        line = binding.original.line
        if binding.error:
            raise SourceInvalid(
                f"{where}:{line}: cannot parse this line",
                hint="use NAME=value, quote values with spaces or newlines ('...' or \"...\")",
            )
        if binding.key is None or binding.value is None:
            continue
        if binding.key in found:
            dupes.append((binding.key, found[binding.key][1], line))
        found[binding.key] = (binding.value, line)
    if interpolate:
        resolved = resolve_variables(((k, v) for k, (v, _) in found.items()), override=True)
        found = {k: (resolved[k] or "", line) for k, (_, line) in found.items()}
    return found, dupes


class DotenvSource(SecretSource):
    """Reads (and for ``sync``, writes) ``.env`` files; a missing file holds nothing."""

    type = "dotenv"
    writable = True

    @property
    def paths(self) -> list[Path]:
        names = self.options.get("paths") or [".env"]
        base = self.config.base_dir if self.config is not None else Path.cwd()
        return [p if p.is_absolute() else base / p for p in (Path(n).expanduser() for n in names)]

    def describe(self) -> str:
        return ", ".join(p.name if p.parent == Path.cwd() else str(p) for p in self.paths)

    def _fetch_raw(self) -> RawSecrets:
        interpolate = bool(self.options.get("interpolate", False))
        result: RawSecrets = {}
        for path in self.paths:
            try:
                text = path.read_text(encoding="utf-8-sig")
                mode = path.stat().st_mode
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as exc:
                raise SourceUnavailable(
                    f"cannot read {path}: {type(exc).__name__}", source=self.name
                ) from None
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                self.notes.append(
                    F.warning(
                        "SECRETS_ENV_PERMISSIONS",
                        str(path),
                        f"{path.name} is readable by group or others (mode "
                        f"{stat.S_IMODE(mode):o}); run: chmod 600 {path}",
                        runbook="runbooks/SECRETS_ENV_PERMISSIONS.md",
                    )
                )
            found, dupes = parse_dotenv_text(text, str(path), interpolate=interpolate)
            for name, old, new in dupes:
                self.notes.append(
                    F.warning(
                        "SECRETS_DOTENV_DUPLICATE",
                        name,
                        f"{path.name} sets {name} on line {old} and again on line {new}; "
                        f"line {new} wins. Remove one of them.",
                        runbook="runbooks/SECRETS_DOTENV_DUPLICATE.md",
                    )
                )
            for name, (value, line) in found.items():
                result.setdefault(name, (value, f"{path.name}:{line}"))
        return result

    # -- writing (secrets sync / restore-snapshot destinations) --------------------------
    def _target(self) -> Path:
        return self.paths[0]

    def _rewrite(self, values: dict[str, str], drop: set[str]) -> None:
        from dotenv.parser import parse_stream

        path = self._target()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            text = ""
        pending = dict(values)
        out: list[str] = []
        for binding in parse_stream(io.StringIO(text)):
            chunk = binding.original.string
            if binding.key in drop:
                continue
            if binding.key is not None and binding.key in pending:
                chunk = f"{binding.key}={quote_value(pending.pop(binding.key))}\n"
            out.append(chunk if chunk.endswith("\n") else chunk + "\n")
        out.extend(f"{k}={quote_value(v)}\n" for k, v in pending.items())
        atomic_write_text(path, "".join(out), mode=0o600)

    def _write_raw(self, values: dict[str, str]) -> None:
        self._rewrite(values, set())

    def _delete_raw(self, names: list[str]) -> None:
        if not self._target().exists():
            raise SourceNotFound(f"{self._target()} does not exist", source=self.name)
        self._rewrite({}, set(names))


def file_mode_is_private(path: Path) -> bool:
    """True when ``path`` is readable by its owner only."""
    return not os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO)
