"""Shared pieces of every typer command: the error-mapping group, global state, output.

Domain CLIs (``ops/<domain>/cli.py``) build their typer apps with
``cls=OpsGroup`` and use :func:`state`, :func:`echo` and :func:`echo_json`, so
that every error, whatever the command, is mapped to its exit code in one place
and every byte of output passes through redaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import typer
from typer.core import TyperGroup

from ops.errors import EXIT_INTERNAL, OpsError


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a service manager stopping us, ``timeout``, ``kill``) interrupts a command
    as Ctrl-C does: KeyboardInterrupt, so that what it was writing is removed or marked
    failed (a child such as pg_dump stopped) as on any failure, rather than left
    behind as by a kill; :class:`OpsGroup` makes it exit 130. A command that stops
    gracefully on its own terms (``run --``, ``scheduler run``, ``dashboard serve``)
    sets its own handler while it runs. Only in the main thread, where Python runs
    signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class OpsGroup(TyperGroup):
    """Runs a command and turns any error into one redacted message and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except OpsError as exc:
            _report_error(ctx, exc, f"error: {exc.message}", exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:
            mapped = _machine_fault(exc)
            if mapped is not None:
                _report_error(ctx, exc, f"error: {mapped.message}", mapped.hint)
                raise typer.Exit(mapped.exit_code) from None
            # a bug: say so, and how to report it
            _report_error(
                ctx,
                exc,
                f"internal error: {type(exc).__name__}: {exc}",
                "this is a bug in empire-ops; rerun with --debug and report the traceback",
            )
            raise typer.Exit(EXIT_INTERNAL) from None


def _machine_fault(exc: BaseException) -> OpsError | None:
    """The documented error for an OSError that is a fault of the machine, else None.

    A safety net: the sites that touch files raise StorageError themselves; a
    read-only path, a refused permission, a full disk or E2BIG that still
    escapes gets its documented code (ops.errors), never 10.
    """
    if not isinstance(exc, OSError):
        return None
    from ops.errors import storage_error

    return storage_error(exc, "use")


def _report_error(ctx: Any, exc: BaseException, message: str, hint: str | None) -> None:
    from ops.logs import redact

    state = ctx.obj if isinstance(ctx.obj, AppState) else None
    if state and state.debug:
        tb = "".join(traceback.format_exception(exc))
        typer.echo(redact(tb), err=True)
    typer.echo(redact(message), err=True)
    if hint:
        typer.echo(redact(f"hint: {hint}"), err=True)


@dataclass
class AppState:
    """Global options, and the config loaded on first use."""

    config_path: str | None = None
    env: str | None = None
    debug: bool = False
    log_format: str | None = None
    _config: Any = field(default=None, repr=False)

    @property
    def config(self) -> Any:
        if self._config is None:
            from ops.config import load_config

            self._config = load_config(self.config_path, self.env)
        return self._config


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_object(AppState)
    assert obj is not None
    return obj


def configure_logging_from(ctx: typer.Context) -> None:
    """Apply the config file's logging settings unless a flag overrode them."""
    from ops.logs import setup_logging

    st = state(ctx)
    cfg = st.config
    level = "debug" if st.debug else cfg.get("logging.level")
    fmt = st.log_format
    log_file = cfg.get("logging.file")
    setup_logging(
        level,
        fmt or os.environ.get("EMPIRE_OPS_LOG_FORMAT") or cfg.get("logging.format"),
        str(cfg.resolve_path(log_file)) if log_file else None,
    )


def echo_json(payload: Any, *, exit_code: int | None = None) -> None:
    """Print one ``--json`` envelope (docs/json.md), redacted inside the structure.

    ``payload`` is a report with ``envelope()`` (every FindingsReport), envelope
    text from :func:`ops.findings.to_json`, or the ``data`` of a command that
    has no findings, which is wrapped with ``exit_code`` (default 0): pass the
    code the command exits with, so the envelope never disagrees with it.
    """
    from ops import findings as F

    if hasattr(payload, "envelope"):
        payload = payload.envelope()
    elif isinstance(payload, str):
        payload = json.loads(payload)
    if not F.is_envelope(payload):
        payload = F.envelope([], payload, exit_code=exit_code or 0)
    typer.echo(F.dumps(payload))


def render_report(report: Any, as_json: bool) -> None:
    """Print a FindingsReport (its ``--json`` envelope, or its findings as a table) and exit
    with its exit code. Commands print their own lines above the table first."""
    from ops.findings import render_table

    if as_json:
        echo_json(report)
    else:
        echo(render_table(report.findings, colour=is_tty()))
    raise typer.Exit(report.exit_code)


def echo(text: str, *, err: bool = False) -> None:
    from ops.logs import redact

    typer.echo(redact(text), err=err)


def is_tty() -> bool:
    return sys.stdout.isatty()
