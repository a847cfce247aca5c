"""The ``dotenv`` source: one or more ``.env`` files, parsed by python-dotenv.

Interpolation is off by default, so a ``$`` in a password survives. Quoted
multi-line values, ``export`` prefixes, a UTF-8 BOM and CRLF line ends are
accepted. The first file listed wins over later ones; inside a file the last
duplicate wins (as python-dotenv does), with a warning naming both lines. A
line that does not parse, and a file that exists but cannot be read as UTF-8
text (a folder, no permission, another encoding), is an error (SourceInvalid)
naming the file and line: never a fall-through that boots without its secrets.
A name that is not a valid variable name (``BAD-NAME``) is reported by
file:line and ignored.
"""

from __future__ import annotations

import io
import os
import re
import stat
from pathlib import Path

from ops import findings as F
from ops.fsutil import atomic_write_text
from ops.secrets.errors import SourceInvalid, SourceNotFound
from ops.secrets.sources.base import RawSecrets, SecretSource

# A name a process environment can carry and a shell can export (POSIX).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
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
    """Reads (and for ``sync``, writes) ``.env`` files; a missing file holds nothing.

    With ``must_exist`` (a source used on its own, e.g. ``sync --from``), no
    file existing at all is SourceNotFound.
    """

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
            text = self._read(path)
            if text is None:
                continue
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                self.notes.append(
                    F.warning(
                        "SECRETS_ENV_PERMISSIONS",
                        str(path),
                        f"{path.name} is readable by group or others (mode "
                        f"{stat.S_IMODE(mode):o}); run: chmod 600 {path}",
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
                    )
                )
            for name, (value, line) in found.items():
                if not ENV_NAME.fullmatch(name):
                    self.notes.append(
                        F.warning(
                            "SECRETS_DOTENV_BAD_NAME",
                            f"{path.name}:{line}",
                            f"{path}:{line}: {name!r} is not a valid variable name (letters, "
                            "digits and _, not starting with a digit); it is ignored. "
                            "Rename it, e.g. BAD-NAME -> BAD_NAME.",
                        )
                    )
                    continue
                result.setdefault(name, (value, f"{path.name}:{line}"))
        if self.must_exist and not any(p.exists() for p in self.paths):
            raise SourceNotFound(
                f"{self.describe()} does not exist",
                source=self.name,
                hint="check the path (relative paths are read from the folder of empire-ops.toml)",
            )
        return result

    def _read(self, path: Path) -> str | None:
        """The text of ``path``; None when it does not exist.

        Raises SourceInvalid when it exists but cannot be read as UTF-8 text (a
        folder, no permission, another encoding): booting without the secrets
        it holds would be worse than stopping.
        """
        try:
            return path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            raise SourceInvalid(
                f"{path}:{line}: not UTF-8 text (byte {exc.start})",
                source=self.name,
                hint=f"save {path.name} as UTF-8, e.g. iconv -f latin1 -t utf-8",
            ) from None
        except IsADirectoryError:
            raise SourceInvalid(
                f"{path} is a folder, not a .env file",
                source=self.name,
                hint="point [secrets.sources.dotenv] paths at a file",
            ) from None
        except PermissionError:
            raise SourceInvalid(
                f"{path} cannot be read: permission denied",
                source=self.name,
                hint=f"run empire-ops as the file's owner, or: chmod 600 {path}",
            ) from None
        except OSError as exc:
            raise SourceInvalid(
                f"{path} cannot be read: {exc.strerror or type(exc).__name__}",
                source=self.name,
                hint="check the path in [secrets.sources.dotenv] paths",
            ) from None

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
