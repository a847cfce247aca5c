"""Value types of the secrets package: a resolved value, its provenance, and the set.

The rule these types enforce: a value never appears in a ``repr``, a log line
or a report. Code shows the name, the source and at most :func:`fingerprint`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ops.logs import is_weak_secret

# Shown instead of the fingerprint of a weak value (docs/decisions/0004).
WEAK_FINGERPRINT = "(weak)"


def fingerprint(value: str) -> str:
    """The first 8 hex characters of sha256(value): enough to compare, useless to guess.

    A weak value (too short or too common to redact, or a DSN with such a
    password) has none, :data:`WEAK_FINGERPRINT`: its hash would be looked up.
    """
    if is_weak_secret(value):
        return WEAK_FINGERPRINT
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:8]


@dataclass(frozen=True)
class SecretValue:
    """One resolved secret: ``source`` is the source name, ``detail`` the path/version/file:line.

    ``repr`` shows the fingerprint, never the value.
    """

    name: str
    value: str = field(repr=False)
    source: str
    detail: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)

    def __repr__(self) -> str:
        return (
            f"SecretValue(name={self.name!r}, source={self.source!r}, detail={self.detail!r}, "
            f"fingerprint={self.fingerprint!r})"
        )

    def meta(self) -> dict[str, str]:
        """Everything that may be shown: name, source, detail, fingerprint."""
        return {
            "name": self.name,
            "source": self.source,
            "detail": self.detail,
            "fingerprint": self.fingerprint,
        }


class SecretSet(Mapping[str, str]):
    """The merged secrets: a read-only ``name -> value`` mapping that remembers provenance.

    ``repr`` and ``str`` list names only.
    """

    def __init__(self, values: Mapping[str, SecretValue] | None = None) -> None:
        self._values: dict[str, SecretValue] = dict(values or {})

    def __getitem__(self, name: str) -> str:
        return self._values[name].value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SecretSet(names={sorted(self._values)!r})"

    __str__ = __repr__

    def provenance(self, name: str) -> SecretValue:
        """Where ``name`` came from (KeyError when it is not in the set)."""
        return self._values[name]

    def items_meta(self) -> list[dict[str, str]]:
        """Name, source, detail and fingerprint of every secret, sorted by name."""
        return [self._values[n].meta() for n in sorted(self._values)]
