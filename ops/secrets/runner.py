"""`empire-ops run`: preflight, then the child process with the merged secrets.

The child inherits the process environment plus the loaded secrets. A source
may not overwrite a reserved name (PATH, HOME, ...) unless
``secrets.allow_reserved`` lists it, and names that change how programs load
code (LD_PRELOAD, DYLD_*, PYTHONPATH, ...) are refused outright. SIGINT,
SIGTERM, SIGHUP and SIGQUIT are forwarded to the child, and its exit code is
returned (128 + signal when a signal killed it).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from ops.errors import UsageError
from ops.secrets.errors import UnsafeEnvironment
from ops.secrets.model import SecretSet

if TYPE_CHECKING:
    from ops.config import Config
    from ops.preflight import PreflightReport

log = logging.getLogger(__name__)

RESERVED = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "TERM", "LANG",
        "LANGUAGE", "LC_ALL", "LC_CTYPE", "TMPDIR", "HOSTNAME", "SHLVL", "TZ", "MAIL",
        "DISPLAY", "SSH_AUTH_SOCK", "XDG_RUNTIME_DIR", "EMPIRE_ENV", "EMPIRE_OPS_CONFIG",
    }
)  # fmt: skip
DANGEROUS = frozenset(
    {
        "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PYTHONINSPECT", "PYTHONUSERBASE",
        "PYTHONBREAKPOINT", "NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PERL5LIB", "PERLLIB",
        "RUBYOPT", "RUBYLIB", "BASH_ENV", "ENV", "PROMPT_COMMAND", "IFS", "GCONV_PATH",
        "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "GIT_SSH_COMMAND",
    }
)  # fmt: skip
DANGEROUS_PREFIXES = ("LD_", "DYLD_")
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def is_dangerous(name: str) -> bool:
    return name in DANGEROUS or name.startswith(DANGEROUS_PREFIXES)


@dataclass
class ChildEnv:
    """The child's environment and the names that were held back (reserved)."""

    env: dict[str, str]
    injected: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def child_environment(
    secrets: SecretSet,
    base: Mapping[str, str],
    *,
    allow_reserved: Sequence[str] = (),
    only: Sequence[str] | None = None,
) -> ChildEnv:
    """``base`` plus ``secrets`` (or the ``only`` subset), minus reserved names not allowed.

    Raises UnsafeEnvironment when a secret would set a dangerous name, and
    UsageError when ``only`` names a secret that was not loaded.
    """
    names = list(secrets)
    if only is not None:
        unknown = [n for n in only if n not in secrets]
        if unknown:
            raise UsageError(
                f"--only names secrets that were not loaded: {', '.join(unknown)}",
                hint="see `empire-ops secrets status` for the loaded names",
            )
        names = list(only)
    bad = sorted(n for n in names if is_dangerous(n))
    if bad:
        sources = ", ".join(f"{n} (from {secrets.provenance(n).source})" for n in bad)
        raise UnsafeEnvironment(
            f"refusing to run: a secret source sets {sources}, which would change how the "
            "child loads code",
            hint="remove it from the source; `run` never injects LD_*, DYLD_*, PYTHONPATH...",
        )
    result = ChildEnv(dict(base))
    for name in names:
        if name in RESERVED and name not in allow_reserved:
            result.kept.append(name)
            continue
        result.env[name] = secrets[name]
        result.injected.append(name)
    if result.kept:
        log.warning(
            "run: not overwriting reserved names %s (allow them in secrets.allow_reserved)",
            ", ".join(sorted(result.kept)),
        )
    return result


def spawn(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``argv`` with ``env``, forwarding signals; return its exit code (128+N if killed).

    Raises UsageError when the command cannot be started.
    """
    if not argv:
        raise UsageError("no command given", hint="use: empire-ops run -- CMD ARGS...")
    # Handlers go in before the child starts: a signal that arrives in between is
    # held and delivered once the child exists, instead of killing us alone.
    started: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not started:
            pending.append(signum)
        elif started[0].poll() is None:
            started[0].send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        try:
            proc = subprocess.Popen(list(argv), env=dict(env))
        except (FileNotFoundError, PermissionError) as exc:
            raise UsageError(
                f"cannot start {argv[0]!r}: {exc.strerror}", hint="check the command and PATH"
            ) from None
        started.append(proc)
        for signum in pending:
            proc.send_signal(signum)
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


@dataclass
class RunOutcome:
    """What `run` did: the preflight report, and the child's exit code when it ran."""

    report: PreflightReport
    exit_code: int
    started: bool


def run_with_secrets(
    config: Config, argv: Sequence[str], *, only: Sequence[str] | None = None, offline: bool = False
) -> RunOutcome:
    """Preflight; on a gap return its report without starting anything; else run ``argv``.

    Raises UnsafeEnvironment / UsageError (see :func:`child_environment`, :func:`spawn`).
    """
    from ops.preflight import run_preflight

    report = run_preflight(config, offline=offline)
    if report.exit_code or report.secrets is None:
        return RunOutcome(report, report.exit_code, started=False)
    child = child_environment(
        report.secrets.secrets,
        os.environ,
        allow_reserved=config.get("secrets.allow_reserved"),
        only=only,
    )
    log.info("run: starting %s with %d secrets", argv[0] if argv else "?", len(child.injected))
    return RunOutcome(report, spawn(argv, child.env), started=True)
