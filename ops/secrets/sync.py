"""Moving secrets between stores: a names-only plan, then its application.

:func:`plan_sync` is a pure policy: given the values at a source and at a
destination it decides, per name, *create*, *update*, *unchanged* or (only
with ``prune``) *delete*. Values are compared exactly; reports show names and
8-character fingerprints only. :func:`apply_sync` writes the plan to a
writable :class:`~ops.secrets.sources.base.SecretSource`.

:func:`sync_sources` and :func:`diff_sources` are what the CLI calls: they
build the sources from URLs (``dotenv:PATH``, ``vault:MOUNT/PATH``,
``awssm:SECRET_ID``, a configured source name…), fetch, plan and apply.

Nothing is lost by accident: a source that does not exist is SourceNotFound
(exit 3), one that resolves no secret is SecretMissing (exit 3), and a
``prune`` that would delete every name at the destination is refused (exit 2),
unless ``allow_empty_source`` says it is meant.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ops.errors import UsageError
from ops.secrets.errors import SecretMissing, SourceNotFound
from ops.secrets.model import fingerprint

if TYPE_CHECKING:
    from ops.config import Config
    from ops.secrets.sources.base import SecretSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncPlan:
    """What a sync would do, per name. ``repr``/``to_dict`` never hold a value.

    ``kept`` are names only at the destination that stay because ``prune`` was off.
    """

    create: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    fingerprints: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)
    values: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def has_changes(self) -> bool:
        return bool(self.create or self.update or self.delete)

    def to_write(self) -> dict[str, str]:
        """The values to create or update at the destination."""
        return {n: self.values[n] for n in (*self.create, *self.update)}

    def to_dict(self) -> dict[str, Any]:
        """Names and fingerprints (``from``/``to``) per action; the stable JSON shape."""
        return {
            action: [
                {"name": n, "from": self.fingerprints[n][0], "to": self.fingerprints[n][1]}
                for n in getattr(self, action)
            ]
            for action in ("create", "update", "unchanged", "delete", "kept")
        }

    def render(self) -> str:
        """One line per name: ``+`` create, ``~`` update, ``-`` delete, ``=`` unchanged."""
        lines = [f"+ {n}  create ({self.fingerprints[n][0]})" for n in self.create]
        lines += [
            f"~ {n}  update ({self.fingerprints[n][1]} -> {self.fingerprints[n][0]})"
            for n in self.update
        ]
        lines += [f"- {n}  delete ({self.fingerprints[n][1]})" for n in self.delete]
        lines += [f"= {n}  unchanged ({self.fingerprints[n][0]})" for n in self.unchanged]
        lines += [f"  {n}  kept: only at the destination (--prune deletes it)" for n in self.kept]
        counts = (
            f"{len(self.create)} to create, {len(self.update)} to update, "
            f"{len(self.delete)} to delete, {len(self.unchanged)} unchanged"
        )
        return "\n".join([*lines, counts])


def plan_sync(src: Mapping[str, str], dst: Mapping[str, str], *, prune: bool = False) -> SyncPlan:
    """Plan making ``dst`` hold every ``src`` name with ``src``'s value.

    Names only in ``dst`` are deleted when ``prune`` is true and kept otherwise.
    Pure: no I/O, never raises.
    """
    create, update, unchanged = [], [], []
    for name in sorted(src):
        if name not in dst:
            create.append(name)
        elif dst[name] != src[name]:
            update.append(name)
        else:
            unchanged.append(name)
    only_dst = sorted(set(dst) - set(src))
    fps = {
        n: (
            fingerprint(src[n]) if n in src else None,
            fingerprint(dst[n]) if n in dst else None,
        )
        for n in set(src) | set(dst)
    }
    return SyncPlan(
        create=tuple(create),
        update=tuple(update),
        unchanged=tuple(unchanged),
        delete=tuple(only_dst) if prune else (),
        kept=() if prune else tuple(only_dst),
        fingerprints=fps,
        values={n: src[n] for n in (*create, *update)},
    )


def apply_sync(plan: SyncPlan, dst: SecretSource) -> None:
    """Write the plan's creates and updates to ``dst``, then its deletes.

    Raises the source's errors (SourceUnavailable, SourceAccessDenied…) and
    UsageError when ``dst`` is read-only.
    """
    require_writable(dst)
    writes = plan.to_write()
    if writes:
        dst.write(writes)
    if plan.delete:
        dst.delete(list(plan.delete))
    log.info(
        "secrets sync to %s: %d created, %d updated, %d deleted",
        dst.name,
        len(plan.create),
        len(plan.update),
        len(plan.delete),
    )


def require_writable(dst: SecretSource) -> None:
    """UsageError (exit 2) unless ``dst`` can be written (dotenv, vault, awssm)."""
    if not dst.writable:
        raise UsageError(
            f"secrets source {dst.name} ({dst.type}) is read-only",
            hint="write to dotenv:PATH, vault:MOUNT/PATH or awssm:SECRET_ID",
        )


def current_values(source: SecretSource, *, missing_ok: bool) -> dict[str, str]:
    """``name -> value`` at ``source``; an absent file/path/secret is empty when ``missing_ok``."""
    try:
        return {n: v.value for n, v in source.fetch().items()}
    except SourceNotFound:
        if not missing_ok:
            raise
        return {}


def open_source(url: str, config: Config) -> SecretSource:
    """The source at ``url`` (or a configured name), able to find its own credentials.

    A source used on its own (outside the chain) still needs its token, AppRole
    ids or bearer token: they are looked up in the environment first and then,
    once and only when needed, in the whole configured chain (e.g. a Vault
    token kept in ``.env``).
    """
    from ops.secrets.sources import source_from_url

    source = source_from_url(url, config)
    loaded: dict[str, str] | None = None

    def lookup(name: str) -> str | None:
        nonlocal loaded
        if os.environ.get(name):
            return os.environ[name]
        if loaded is None:
            from ops.secrets import load_secrets

            loaded = dict(load_secrets(config).secrets)
        return loaded.get(name) or None

    source.lookup = lookup
    return source


@dataclass(frozen=True)
class SyncResult:
    """A plan, where it ran from and to (labels, no values), and whether it was applied."""

    plan: SyncPlan
    source: str
    destination: str
    applied: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.destination,
            "applied": self.applied,
            "changes": self.plan.has_changes,
            "plan": self.plan.to_dict(),
        }


def refuse_losses(
    values: Mapping[str, str],
    current: Mapping[str, str],
    plan: SyncPlan,
    source_label: str,
    dst_label: str,
    *,
    allow_empty_source: bool = False,
) -> None:
    """Refuse a sync that would most likely lose secrets, unless ``allow_empty_source``.

    Raises SecretMissing (exit 3) when the source resolved no secret (a wrong
    path, a run from the wrong folder), and UsageError (exit 2) when the plan
    deletes every name the destination holds. Pure: no I/O.
    """
    if allow_empty_source:
        return
    flag = "pass --allow-empty-source if that is what you mean"
    if not values:
        pruning = " and --prune would delete every secret there" if plan.delete else ""
        raise SecretMissing(
            f"{source_label} resolves no secrets: nothing to copy to {dst_label}{pruning}",
            hint="check the source's path or location (relative paths are read from the "
            f"project root, the folder of empire-ops.toml); {flag}",
        )
    if plan.delete and set(plan.delete) == set(current):
        raise UsageError(
            f"--prune would delete all {len(current)} secrets at {dst_label}, keeping none "
            f"of its names: {source_label} shares no name with it",
            hint=f"check --from and --to (`empire-ops secrets diff` compares them); {flag}",
        )


def sync_values(
    values: Mapping[str, str],
    source_label: str,
    dst: SecretSource,
    *,
    prune: bool = False,
    dry_run: bool = False,
    allow_empty_source: bool = False,
) -> SyncResult:
    """Plan ``values`` against ``dst`` (which may not exist yet) and apply unless ``dry_run``.

    Refuses (see :func:`refuse_losses`) an empty ``values`` or a prune of every
    name at ``dst`` unless ``allow_empty_source``; a dry run refuses the same.
    """
    require_writable(dst)
    current = current_values(dst, missing_ok=True)
    plan = plan_sync(values, current, prune=prune)
    refuse_losses(
        values, current, plan, source_label, dst.label, allow_empty_source=allow_empty_source
    )
    applied = not dry_run and plan.has_changes
    if applied:
        apply_sync(plan, dst)
    return SyncResult(plan, source_label, dst.label, applied)


def sync_sources(
    config: Config,
    src_url: str,
    dst_url: str,
    *,
    prune: bool = False,
    dry_run: bool = False,
    allow_empty_source: bool = False,
) -> SyncResult:
    """Copy every secret at ``src_url`` to ``dst_url``; delete extras only with ``prune``.

    Raises UsageError for a read-only destination, ConfigError for an unknown
    URL, SourceNotFound (exit 3) when the source does not exist (a dotenv file
    included), the refusals of :func:`refuse_losses`, and the sources' errors.
    """
    src = open_source(src_url, config)
    src.must_exist = True
    dst = open_source(dst_url, config)
    require_writable(dst)
    values = current_values(src, missing_ok=False)
    return sync_values(
        values,
        src.label,
        dst,
        prune=prune,
        dry_run=dry_run,
        allow_empty_source=allow_empty_source,
    )


@dataclass(frozen=True)
class SecretDiff:
    """Names only in A, only in B, in both with different values, and equal."""

    a: str
    b: str
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    differ: tuple[str, ...]
    same: tuple[str, ...]
    fingerprints: Mapping[str, tuple[str | None, str | None]]

    @property
    def differs(self) -> bool:
        return bool(self.only_a or self.only_b or self.differ)

    def to_dict(self) -> dict[str, Any]:
        def rows(names: tuple[str, ...]) -> list[dict[str, Any]]:
            return [
                {"name": n, "a": self.fingerprints[n][0], "b": self.fingerprints[n][1]}
                for n in names
            ]

        return {
            "a": self.a,
            "b": self.b,
            "differs": self.differs,
            "only_a": rows(self.only_a),
            "only_b": rows(self.only_b),
            "differ": rows(self.differ),
            "same": len(self.same),
        }

    def render(self) -> str:
        fp = self.fingerprints
        lines = [f"A = {self.a}", f"B = {self.b}"]
        lines += [f"< {n}  only in A ({fp[n][0]})" for n in self.only_a]
        lines += [f"> {n}  only in B ({fp[n][1]})" for n in self.only_b]
        lines += [f"~ {n}  differs (A {fp[n][0]}, B {fp[n][1]})" for n in self.differ]
        lines.append(
            f"{len(self.only_a)} only in A, {len(self.only_b)} only in B, "
            f"{len(self.differ)} differ, {len(self.same)} equal"
        )
        return "\n".join(lines)


def diff_values(
    a: Mapping[str, str], b: Mapping[str, str], a_label: str, b_label: str
) -> SecretDiff:
    """Compare two ``name -> value`` maps (pure; the plan of syncing A onto B with prune)."""
    plan = plan_sync(a, b, prune=True)
    return SecretDiff(
        a_label, b_label, plan.create, plan.delete, plan.update, plan.unchanged, plan.fingerprints
    )


def diff_sources(config: Config, a_url: str, b_url: str) -> SecretDiff:
    """Compare the secrets at two sources by name and fingerprint.

    Raises the sources' errors; SourceNotFound when either does not exist.
    """
    a = open_source(a_url, config)
    b = open_source(b_url, config)
    a.must_exist = b.must_exist = True
    return diff_values(
        current_values(a, missing_ok=False), current_values(b, missing_ok=False), a.label, b.label
    )
