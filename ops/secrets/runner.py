"""`empire-ops run`: preflight, then the child process with the merged secrets.

The child inherits the process environment plus the loaded secrets. A source
may not overwrite a reserved name (PATH, HOME, ...) unless
``secrets.allow_reserved`` lists it, and names that change how programs load
code (LD_PRELOAD, DYLD_*, PYTHONPATH, ...) are refused outright. SIGINT,
SIGTERM, SIGHUP and SIGQUIT are forwarded to the child, and its exit code is
returned (128 + signal when a signal killed it).

On Linux the child is started with ``PR_SET_PDEATHSIG = SIGKILL``: when
empire-ops itself is killed with a signal it cannot catch (SIGKILL, the OOM
killer), the kernel ends the child too instead of leaving it orphaned. We keep
a parent (rather than ``exec``) because ``run`` forwards signals, logs, and
reports the child's exit code as 128+N when a signal killed it; see
docs/architecture.md ("run and its child").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from ops.errors import EnvironmentTooLarge, UsageError
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
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Linux's limit on one "NAME=value" string of argv or the environment (MAX_ARG_STRLEN).
MAX_ARG_STRLEN = 32 * 4096


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


def parse_only(only: str | None) -> list[str] | None:
    """The names of ``--only A,B``; None when the option was not given.

    Raises UsageError for an empty list or an empty name (``--only ''``,
    ``--only A,,B``): injecting nothing by accident would start the app bare.
    """
    if only is None:
        return None
    names = [n.strip() for n in only.split(",")]
    if not any(names) or not all(names):
        raise UsageError(
            f"--only {only!r} holds an empty name",
            hint="give the secrets to inject as NAME,NAME... or leave --only out to inject all",
        )
    return names


def require_command(argv: Sequence[str]) -> None:
    """UsageError (exit 2) when ``argv`` is empty; checked before anything is loaded."""
    if not argv:
        raise UsageError("run needs a command to start", hint="use: empire-ops run -- CMD ARGS...")


def _pdeathsig_setter() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGKILL the child when this process dies.

    Built before the fork (no import or symbol lookup happens in the child).
    None where prctl does not exist (not Linux): the child then outlives a
    SIGKILLed parent, as with any supervisor that is killed.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_pdeathsig() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody will signal us.
        if os.getppid() != parent:
            os._exit(128 + int(signal.SIGKILL))

    return set_pdeathsig


def _start_error(argv: Sequence[str], env: Mapping[str, str], exc: OSError) -> UsageError:
    """The UsageError (exit 2) for a command that could not be started, with the fix.

    E2BIG is EnvironmentTooLarge, naming the variables over the per-variable
    limit or the largest one, by name and size only.
    """
    if exc.errno == errno.E2BIG:
        sizes = {name: len(name) + len(value) + 2 for name, value in env.items()}
        total = sum(sizes.values()) + sum(len(a) + 1 for a in argv)
        largest = max(sizes, key=lambda n: sizes[n], default="")
        over = [n for n, size in sizes.items() if size > MAX_ARG_STRLEN]
        what = (
            f"{', '.join(sorted(over))} exceed{'s' if len(over) == 1 else ''} the "
            f"{MAX_ARG_STRLEN // 1024} KiB limit on one variable"
            if over
            else f"{total // 1024} KiB in all, the largest being {largest} "
            f"({sizes.get(largest, 0) // 1024} KiB)"
        )
        return EnvironmentTooLarge(
            f"cannot start {argv[0]!r}: its environment is too large for the system (E2BIG): "
            + what,
            hint="inject fewer secrets with --only NAME,..., or keep large values (certificates, "
            "key files) in a file and put its path in the secret",
        )
    reason = exc.strerror or type(exc).__name__
    return UsageError(f"cannot start {argv[0]!r}: {reason}", hint="check the command and PATH")


def spawn(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``argv`` with ``env``, forwarding signals; return its exit code (128+N if killed).

    On Linux the child is killed (SIGKILL) if this process dies first. Raises
    UsageError when the command is empty or cannot be started (not found, not
    executable, or an environment too large to exec).
    """
    require_command(argv)
    # Handlers go in before the child starts: a signal that arrives in between is
    # held and delivered once the child exists, instead of killing us alone.
    started: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not started:
            pending.append(signum)
        elif started[0].poll() is None:
            started[0].send_signal(signum)

    preexec = _pdeathsig_setter()
    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        try:
            proc = subprocess.Popen(list(argv), env=dict(env), preexec_fn=preexec)
        except OSError as exc:
            raise _start_error(argv, env, exc) from None
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

    An empty ``argv`` is refused before anything is loaded. Raises
    UnsafeEnvironment / UsageError (see :func:`child_environment`, :func:`spawn`).
    """
    from ops.preflight import run_preflight

    require_command(argv)
    report = run_preflight(config, offline=offline)
    if report.exit_code or report.secrets is None:
        return RunOutcome(report, report.exit_code, started=False)
    child = child_environment(
        report.secrets.secrets,
        os.environ,
        allow_reserved=config.get("secrets.allow_reserved"),
        only=only,
    )
    log.info("run: starting %s with %d secrets", argv[0], len(child.injected))
    return RunOutcome(report, spawn(argv, child.env), started=True)
