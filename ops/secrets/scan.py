"""Leak guard: find loaded secret values in a git repository, and unsafe ``.env`` files.

:func:`scan_repo` searches every git-tracked file (and, with ``history=True``,
every line added in ``git log -p --all``) for literal occurrences of the
loaded values of six characters or more. A hit names the place (``file:line``
or ``commit:file:line``) and the secret's NAME; the value itself never leaves
this module. It also reports ``.env`` files that are tracked, not git-ignored,
or readable by group or other.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops import findings as F
from ops.errors import UsageError
from ops.findings import Finding
from ops.logs import is_redactable

if TYPE_CHECKING:
    from ops.config import Config

# Folders never searched for stray .env files: tools' caches and virtualenvs.
_PRUNE_DIRS = frozenset(
    {".git", ".venv", "venv", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache",
     ".pytest_cache", ".tox"}
)  # fmt: skip
# Templates that hold names only are meant to be committed.
_TEMPLATE_SUFFIXES = (".example", ".sample", ".template", ".dist")
_GIT_TIMEOUT = 120.0


class NotAGitRepository(UsageError):
    """``secrets scan`` was pointed at a folder that is not inside a git work tree."""


@dataclass(frozen=True)
class LeakHit:
    """One place where a secret's value occurs. Holds the NAME, never the value."""

    name: str
    path: str
    line: int
    commit: str | None = None

    @property
    def where(self) -> str:
        base = f"{self.path}:{self.line}"
        return f"{self.commit[:12]}:{base}" if self.commit else base

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "line": self.line, "commit": self.commit}


@dataclass
class ScanReport(F.FindingsReport):
    """What :func:`scan_repo` found: hits, ``.env`` findings, and what it searched."""

    repo: Path
    hits: list[LeakHit] = field(default_factory=list)
    env_findings: list[Finding] = field(default_factory=list)
    files_scanned: int = 0
    commits_scanned: int = 0
    values_searched: int = 0
    history: bool = False

    @property
    def findings(self) -> list[Finding]:
        out = [
            F.error(
                "SECRETS_LEAK",
                hit.where,
                f"the value of {hit.name} was added to {hit.path}:{hit.line} by commit "
                f"{hit.commit[:12]} (git history)"
                if hit.commit
                else f"the value of {hit.name} occurs here",
                details={"secret": hit.name},
            )
            for hit in self.hits
        ]
        out.extend(self.env_findings)
        if not out:
            where = "tracked files and history" if self.history else "tracked files"
            out.append(
                F.ok(
                    "SECRETS_SCAN_CLEAN",
                    str(self.repo),
                    f"no loaded secret value found in {where}",
                )
            )
        return out

    def extra(self) -> dict[str, Any]:
        return {
            "repo": str(self.repo),
            "history": self.history,
            "files_scanned": self.files_scanned,
            "commits_scanned": self.commits_scanned,
            "values_searched": self.values_searched,
            "hits": [h.to_dict() for h in self.hits],
        }


def _git(repo: Path, *args: str) -> bytes:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        timeout=_GIT_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        reason = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(
            f"git {args[0]} failed in {repo}: {reason[-1] if reason else proc.returncode}",
            hint="check that git works in this folder (`git status`)",
        )
    return proc.stdout


def repo_root(path: Path) -> Path:
    """The top folder of the git work tree holding ``path``.

    Raises NotAGitRepository (exit 2) when there is none.
    """
    proc = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        timeout=_GIT_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise NotAGitRepository(
            f"{path} is not inside a git repository",
            hint="run `empire-ops secrets scan` in the repository, or pass --repo PATH",
        )
    return Path(proc.stdout.strip())


class _Needles:
    """The values to look for, compiled once; maps each match back to secret names."""

    def __init__(self, secrets: Mapping[str, str], *, per_line: bool) -> None:
        names: dict[bytes, list[str]] = {}
        for name, value in secrets.items():
            # A weak value (SECRETS_WEAK) would match ordinary text and name itself.
            if not isinstance(value, str) or not is_redactable(value):
                continue
            needle = value
            if per_line and "\n" in value:
                # A diff shows one line at a time: look for the value's longest line,
                # the part least likely to be shared with anything else.
                needle = max(value.splitlines(), key=len)
                if not is_redactable(needle):
                    continue
            names.setdefault(needle.encode("utf-8"), []).append(name)
        self.names = names
        ordered = sorted(names, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(n) for n in ordered)) if ordered else None

    def find(self, data: bytes) -> Iterator[tuple[int, list[str]]]:
        """(offset, names) for each occurrence in ``data``."""
        if self.pattern is None:
            return
        for match in self.pattern.finditer(data):
            yield match.start(), self.names[match.group(0)]


def _scan_tracked(repo: Path, needles: _Needles, report: ScanReport) -> None:
    for raw in _git(repo, "ls-files", "-z").split(b"\0"):
        if not raw:
            continue
        rel = raw.decode("utf-8", "surrogateescape")
        path = repo / rel
        if not path.is_file() or path.is_symlink():
            continue  # deleted in the work tree, a submodule, or a link out of the repo
        try:
            data = path.read_bytes()
        except OSError:
            continue
        report.files_scanned += 1
        seen: set[tuple[str, int]] = set()
        for offset, names in needles.find(data):
            line = data.count(b"\n", 0, offset) + 1
            for name in names:
                if (name, line) not in seen:
                    seen.add((name, line))
                    report.hits.append(LeakHit(name, rel, line))


_HUNK = re.compile(rb"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_COMMIT_MARK = b"\x00commit "


def _scan_history(repo: Path, needles: _Needles, report: ScanReport) -> None:
    """Search every added line of every commit reachable from any ref (streamed)."""
    args = ["log", "-p", "--all", "--no-color", "--no-ext-diff", "--no-textconv", "--unified=0"]
    with subprocess.Popen(
        ["git", "-C", str(repo), *args, "--format=%x00commit %H"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        _parse_log(proc.stdout, needles, report)
    if proc.returncode != 0:
        raise UsageError(
            f"git log failed in {repo} (exit {proc.returncode})",
            hint="check that `git log --all` works in this repository",
        )


def _parse_log(lines: Iterable[bytes], needles: _Needles, report: ScanReport) -> None:
    commit: str | None = None
    path: str | None = None
    line_no = 0
    seen: set[tuple[str, str, str, int]] = set()
    for raw in lines:
        line = raw.rstrip(b"\n")
        if line.startswith(_COMMIT_MARK):
            commit = line[len(_COMMIT_MARK) :].decode()
            report.commits_scanned += 1
            path = None
            continue
        if line.startswith(b"+++ "):
            target = line[4:]
            path = None if target == b"/dev/null" else target[2:].decode("utf-8", "replace")
            continue
        hunk = _HUNK.match(line)
        if hunk:
            line_no = int(hunk.group(1))
            continue
        if line.startswith(b"+") and path is not None and commit is not None:
            for _, names in needles.find(line[1:]):
                for name in names:
                    key = (commit, path, name, line_no)
                    if key not in seen:
                        seen.add(key)
                        report.hits.append(LeakHit(name, path, line_no, commit))
            line_no += 1


def _is_env_file(name: str) -> bool:
    if name.endswith(_TEMPLATE_SUFFIXES):
        return False
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


def find_env_files(repo: Path) -> list[Path]:
    """Every ``.env``-like file in the work tree (templates such as ``.env.example`` excluded)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if d not in _PRUNE_DIRS]
        found.extend(Path(root) / f for f in files if _is_env_file(f))
    return sorted(found)


def check_env_files(repo: Path, extra: Iterable[Path] = ()) -> list[Finding]:
    """Findings for ``.env`` files: tracked (error); not ignored, or readable by others (warning).

    ``extra`` adds files outside the usual names (e.g. the configured dotenv
    sources); those outside ``repo`` get only the mode check.
    """
    out: list[Finding] = []
    candidates = {p.resolve() for p in find_env_files(repo)}
    candidates.update(p.resolve() for p in extra if p.is_file())
    tracked = {
        (repo / raw.decode("utf-8", "surrogateescape")).resolve()
        for raw in _git(repo, "ls-files", "-z").split(b"\0")
        if raw and _is_env_file(Path(raw.decode("utf-8", "surrogateescape")).name)
    }
    candidates |= tracked
    for path in sorted(candidates):
        try:
            rel = path.relative_to(repo.resolve()).as_posix()
        except ValueError:
            rel = None
        shown = rel or str(path)
        if rel is not None and path in tracked:
            out.append(
                F.error(
                    "SECRETS_ENV_TRACKED",
                    shown,
                    "this .env file is tracked by git; its values are in the repository",
                )
            )
        elif rel is not None and not _ignored(repo, rel):
            out.append(
                F.warning(
                    "SECRETS_ENV_NOT_IGNORED",
                    shown,
                    "this .env file is not git-ignored; one `git add .` would commit it",
                )
            )
        if path.is_file():
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                out.append(
                    F.warning(
                        "SECRETS_ENV_PERMISSIONS",
                        shown,
                        f"mode {mode:04o} lets group or others read it; run: chmod 600 {shown}",
                        details={"mode": f"{mode:04o}"},
                    )
                )
    return out


def _ignored(repo: Path, rel: str) -> bool:
    proc = subprocess.run(
        ["git", "-C", str(repo), "check-ignore", "-q", "--no-index", "--", rel],
        capture_output=True,
        timeout=_GIT_TIMEOUT,
        check=False,
    )
    return proc.returncode == 0


def scan_repo(
    path: Path,
    secrets: Mapping[str, str],
    *,
    history: bool = False,
    extra_env_files: Iterable[Path] = (),
) -> ScanReport:
    """Search the git repository at ``path`` for the values in ``secrets`` (name -> value).

    Values shorter than six characters are skipped (they would match by chance,
    and the log filter does not redact them either). The report holds names and
    places only. Raises NotAGitRepository (exit 2) outside a git work tree.
    """
    repo = repo_root(path)
    report = ScanReport(repo=repo, history=history)
    tracked_needles = _Needles(secrets, per_line=False)
    report.values_searched = sum(len(n) for n in tracked_needles.names.values())
    _scan_tracked(repo, tracked_needles, report)
    if history:
        _scan_history(repo, _Needles(secrets, per_line=True), report)
    report.env_findings = check_env_files(repo, extra_env_files)
    return report


def scan_loaded(config: Config, path: Path, *, history: bool = False) -> ScanReport:
    """Load the configured secrets and :func:`scan_repo` ``path`` for their values.

    The dotenv files of the chain get the ``.env`` checks too, wherever they are.
    Values of entries declared ``secret = false`` are not searched for.
    Unavailable sources are skipped as the loader skips them (their values are
    then not searched). Raises NotAGitRepository (exit 2).
    """
    from ops.secrets import load_secrets
    from ops.secrets.sources import configured_source
    from ops.secrets.sources.dotenv import DotenvSource

    repo = repo_root(path)  # fail fast, before reaching any remote source
    result = load_secrets(config)
    dotenv_files: list[Path] = []
    for name in config.get("secrets.chain"):
        source = configured_source(name, config)
        if isinstance(source, DotenvSource):
            dotenv_files.extend(source.paths)
    # A value declared `secret = false` (SMTP_HOST) is no leak where it is written down.
    public = result.spec.public_names()
    secrets = {n: v for n, v in result.secrets.items() if n not in public}
    return scan_repo(repo, secrets, history=history, extra_env_files=dotenv_files)
