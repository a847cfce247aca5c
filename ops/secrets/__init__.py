"""Secrets: load the chain of sources, validate against the spec, never show a value.

Public API: :func:`load_secrets` (-> :class:`LoadResult` with ``.secrets``,
``.findings``, ``.consulted``), the value types in :mod:`ops.secrets.model`,
the source registry in :mod:`ops.secrets.sources`, and the blob encryption in
:mod:`ops.secrets.crypto`. Importing this package imports no SDK.
"""

from __future__ import annotations

from ops.secrets.merge import LoadResult, SourceStatus, load_secrets
from ops.secrets.model import SecretSet, SecretValue, fingerprint

__all__ = ["LoadResult", "SecretSet", "SecretValue", "SourceStatus", "fingerprint", "load_secrets"]
