"""Backup repositories: one base class, one module per kind, a registry by URL scheme."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ops.backup.repo.base import Repository
from ops.errors import ConfigError

# scheme -> "module:Class"; SDKs (boto3) are imported only by the module that needs them.
REGISTRY: dict[str, str] = {
    "file": "ops.backup.repo.local:LocalRepository",
    "s3": "ops.backup.repo.s3:S3Repository",
}


def scheme_of(url: str) -> str:
    """The scheme of a repository URL (``file:backups`` -> ``file``, ``s3://b/p`` -> ``s3``)."""
    return url.split(":", 1)[0].lower() if ":" in url else ""


def open_repository(name: str, url: str, options: Mapping[str, Any] | None = None) -> Repository:
    """The repository ``name`` at ``url``. Raises ConfigError listing the known schemes."""
    scheme = scheme_of(url)
    target = REGISTRY.get(scheme)
    if target is None:
        raise ConfigError(
            f"backup repository {name!r}: unknown kind {scheme or url!r}",
            hint=f"use one of: {', '.join(f'{s}:' for s in REGISTRY)} "
            "(e.g. file:backups or s3://bucket/prefix)",
        )
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    repo: Repository = cls(name, url, dict(options or {}))
    return repo
