"""The ``env`` source: the process environment (only the names the spec declares).

The whole environment is not a secret set: taking only declared names (and
their aliases, and client-side ``NEXT_PUBLIC_*``/``VITE_*`` names, which the
leak check inspects) keeps PATH and friends out of redaction and out of ``run``.
"""

from __future__ import annotations

import os

from ops.secrets.sources.base import RawSecrets, SecretSource

CLIENT_PREFIXES = ("NEXT_PUBLIC_", "VITE_")


class EnvSource(SecretSource):
    """Reads declared secret names from ``os.environ``; never unavailable."""

    type = "env"

    def describe(self) -> str:
        return "process environment"

    def _fetch_raw(self) -> RawSecrets:
        from ops.secrets.spec import load_spec

        names = load_spec(self.config).all_names()
        return {
            name: (value, f"${name}")
            for name, value in os.environ.items()
            if name in names or name.startswith(CLIENT_PREFIXES)
        }
