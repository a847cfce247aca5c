"""The one base class of every secret source (template method).

The public methods (:meth:`SecretSource.fetch`, :meth:`write`, :meth:`delete`)
do the shared work once: timing, logging by source name only, redaction
registration, the remote time budget, at most one retry, and translating
unexpected failures. Subclasses implement only the I/O in ``_fetch_raw``
(and ``_write_raw`` / ``_delete_raw`` for writable sources).
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ops.config import parse_duration
from ops.errors import OpsError
from ops.findings import Finding
from ops.logs import register_secret_values
from ops.secrets.errors import (
    SourceAccessDenied,
    SourceError,
    SourceInvalid,
    SourceNotFound,
    SourceUnavailable,
)
from ops.secrets.model import SecretValue

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger("ops.secrets.sources")

RawSecrets = dict[str, tuple[str, str]]
Lookup = Callable[[str], "str | None"]

DEFAULT_TIMEOUT = 3.0


class SecretSource(ABC):
    """A place secrets come from. ``name`` is its config name, ``type`` its kind.

    Class attributes: ``remote`` (network source: time-budgeted and cached),
    ``writable`` (implements ``_write_raw``/``_delete_raw``).
    """

    type: ClassVar[str] = ""
    remote: ClassVar[bool] = False
    writable: ClassVar[bool] = False

    def __init__(self, name: str, options: Mapping[str, Any], config: Config | None) -> None:
        self.name = name
        self.options = {k: v for k, v in options.items() if v is not None}
        self.config = config
        # The loader points this at the chain so far; standalone (sync, diff) it reads
        # the environment, then the local sources (env, .env) of the config's chain.
        self.lookup: Lookup = self._default_lookup
        self._local: dict[str, str] | None = None
        self.deadline: float | None = None
        # Warnings a fetch produced (dotenv file mode, duplicate keys); the loader reports them.
        self.notes: list[Finding] = []
        # In the chain a missing .env simply holds nothing; a source named on its own
        # (`sync --from`, `diff`) must exist, or a typo would read as "no secrets".
        self.must_exist = False
        timeout = self.options.get("timeout")
        self.timeout = parse_duration(timeout) if timeout else DEFAULT_TIMEOUT

    # ------------------------------------------------------------------ description
    @property
    def configured(self) -> bool:
        """False when the source lacks the settings it needs (the chain skips it quietly)."""
        return True

    def describe(self) -> str:
        """Where this source reads, for reports: e.g. ``vault secret/empire``. No values."""
        return self.name

    @property
    def label(self) -> str:
        where = self.describe()
        return self.name if where == self.name else f"{self.name} ({where})"

    # ------------------------------------------------------------------ helpers for I/O
    def call_timeout(self) -> float:
        """The timeout for the next network call: the per-call timeout cut to the budget.

        Raises SourceUnavailable when the remote budget is already spent.
        """
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0.05:
            raise SourceUnavailable(
                f"{self.name}: the remote time budget is spent", source=self.name
            )
        return min(self.timeout, left)

    def _default_lookup(self, name: str) -> str | None:
        value = os.environ.get(name)
        if value or self.config is None or not self.remote:
            return value or None
        if self._local is None:
            from ops.secrets.merge import local_secrets

            self._local = local_secrets(self.config)
        return self._local.get(name) or None

    def secret(self, name: str) -> str | None:
        """Another secret this source needs (a token): earlier sources, then the environment."""
        return self.lookup(name)

    # ------------------------------------------------------------------ template methods
    def fetch(self) -> dict[str, SecretValue]:
        """Read every secret this source holds: ``name -> SecretValue``.

        Registers each value for redaction before returning. Raises
        SourceUnavailable (after at most one retry), SourceAccessDenied,
        SourceNotFound or SourceInvalid; any other exception from the I/O is
        reported as SourceUnavailable, by source name and exception type only.
        """
        started = time.monotonic()
        self.notes = []
        attempts = 2 if self.remote else 1
        for attempt in range(1, attempts + 1):
            try:
                raw = self._guarded(self._fetch_raw)
                break
            except SourceUnavailable as exc:
                log.warning(
                    "secrets source %s unavailable (attempt %d): %s", self.name, attempt, exc
                )
                if attempt == attempts or self._budget_left() <= 0.05:
                    raise
        values = {n: SecretValue(n, v, self.name, d) for n, (v, d) in raw.items()}
        register_secret_values(v.value for v in values.values())
        log.debug(
            "secrets source %s: %d names in %.3fs",
            self.name,
            len(values),
            time.monotonic() - started,
        )
        return values

    def write(self, values: dict[str, str]) -> None:
        """Create or update ``values`` at this source; other names there are kept.

        Raises the same errors as :meth:`fetch`; NotImplementedError if not writable.
        """
        self._require_writable()
        register_secret_values(values.values())
        self._guarded(lambda: self._write_raw(dict(values)))
        log.info("secrets source %s: wrote %d names", self.name, len(values))

    def delete(self, names: list[str]) -> None:
        """Remove ``names`` from this source (absent names are ignored)."""
        self._require_writable()
        self._guarded(lambda: self._delete_raw(list(names)))
        log.info("secrets source %s: deleted %d names", self.name, len(names))

    def _require_writable(self) -> None:
        if not self.writable:
            raise NotImplementedError(f"secrets source {self.name} ({self.type}) is read-only")

    def _budget_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def _guarded(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except SourceError as exc:
            exc.source = exc.source or self.name
            raise
        except (OpsError, NotImplementedError, KeyboardInterrupt):
            raise
        except Exception as exc:  # an SDK error we did not map: never show its text
            raise SourceUnavailable(
                f"{self.name}: {type(exc).__name__}", source=self.name
            ) from None

    # ------------------------------------------------------------------ the I/O
    @abstractmethod
    def _fetch_raw(self) -> RawSecrets:
        """Return ``name -> (value, detail)``; detail is a path, version or file:line.

        An empty dict means the source holds nothing. Raise SourceNotFound when
        the configured location does not exist, SourceAccessDenied on 401/403,
        SourceUnavailable on network errors, timeouts, 5xx and sealed/standby,
        SourceInvalid when the answer cannot be parsed. Messages never hold values.
        """

    def _write_raw(self, values: dict[str, str]) -> None:
        """Create/update ``values`` (merging with what exists). Writable sources only."""
        raise NotImplementedError

    def _delete_raw(self, names: list[str]) -> None:
        """Remove ``names``. Writable sources only."""
        raise NotImplementedError


__all__ = [
    "RawSecrets",
    "SecretSource",
    "SourceAccessDenied",
    "SourceInvalid",
    "SourceNotFound",
    "SourceUnavailable",
]
