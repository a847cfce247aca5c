"""Progress of a long byte stream (a backup, a restore, a drill): a bar on a terminal,
plain lines under cron.

On a terminal (stderr a TTY, ``TERM`` not ``dumb``) a ``rich`` bar shows the
bytes, the rate and the time left. Elsewhere (cron, a pipe, a log file) a
plain line is written to stderr every :data:`PLAIN_EVERY` seconds, and a
last one when it ends, so a short run prints nothing and a long one says it
is alive. ``EMPIRE_OPS_PROGRESS`` overrides the choice: ``bar``, ``plain``
or ``off``; ``EMPIRE_OPS_PROGRESS_EVERY`` sets the seconds between plain
lines. Progress goes to stderr only: ``--json`` on stdout stays clean.
rich is imported only when a bar is drawn (preflight never pays for it).
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

PLAIN_EVERY = 10.0  # seconds between plain lines
MODES = ("auto", "bar", "plain", "off")


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _every() -> float:
    try:
        return max(0.0, float(os.environ.get("EMPIRE_OPS_PROGRESS_EVERY", PLAIN_EVERY)))
    except ValueError:
        return PLAIN_EVERY


def _mode(stream: IO[str]) -> str:
    mode = os.environ.get("EMPIRE_OPS_PROGRESS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        mode = "auto"
    if mode == "auto":
        tty = getattr(stream, "isatty", lambda: False)()
        mode = "bar" if tty and os.environ.get("TERM") != "dumb" else "plain"
    return mode


class ByteProgress:
    """Context manager: ``advance(n)`` as bytes pass; ``total`` may be None (unknown) or an
    estimate (``estimated``: shown with a ``~``, and never a percentage over 100).

    ``mode`` is ``bar``, ``plain`` or ``off`` (default: chosen as the module says);
    ``every`` the seconds between plain lines.
    """

    def __init__(
        self,
        description: str,
        total: int | None = None,
        *,
        estimated: bool = False,
        stream: IO[str] | None = None,
        mode: str | None = None,
        every: float | None = None,
    ) -> None:
        self.description = description
        self.total = total if total and total > 0 else None
        self.estimated = estimated
        self.stream = stream or sys.stderr
        self.mode = mode or _mode(self.stream)
        self.every = _every() if every is None else every
        self.done = 0
        self.lines = 0
        self._started = 0.0
        self._last = 0.0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> ByteProgress:
        self._started = self._last = time.monotonic()
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(),
                console=Console(file=self.stream), transient=False,
            )  # fmt: skip
            self._bar.start()
            label = f"{self.description} (~)" if self.estimated else self.description
            self._task = self._bar.add_task(label, total=self.total)
        return self

    def advance(self, n: int) -> None:
        """Count ``n`` more bytes."""
        self.done += n
        if self._bar is not None:
            if self.total is not None and self.done > self.total:
                self.total = self.done  # an estimate fell short: never over 100%
                self._bar.update(self._task, total=self.total)
            self._bar.advance(self._task, n)
        elif self.mode == "plain":
            now = time.monotonic()
            if now - self._last >= self.every:
                self._last = now
                self._line(now)

    def _line(self, now: float, *, end: str = "") -> None:
        seconds = max(now - self._started, 1e-6)
        rate = self.done / seconds
        text = f"{self.description}: {_mib(self.done)}"
        if end:
            text += f" in {seconds:.1f} s ({_mib(rate)}/s), {end}"
        else:
            if self.total is not None:
                text += f" of {'~' if self.estimated else ''}{_mib(self.total)}"
            text += f", {_mib(rate)}/s"
            if self.total is not None and rate > 0 and self.done < self.total:
                text += f", about {(self.total - self.done) / rate:.0f} s left"
        print(text, file=self.stream, flush=True)
        self.lines += 1

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            if exc[0] is None:
                self._bar.update(self._task, total=self.done, completed=self.done)
            self._bar.stop()
        elif self.mode == "plain" and self.lines:
            self._line(time.monotonic(), end="done" if exc[0] is None else "stopped")
