"""Pure planning: which migrations ``up`` applies and which ``down`` reverts. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ops.errors import UsageError
from ops.migrate import history
from ops.migrate.errors import DownRefused, OutOfOrder
from ops.migrate.files import SHIPPED_DIR, Migration, Statement, split_statements, version_key


def plan_up(
    local: Sequence[Migration],
    applied: set[str],
    *,
    to: str | None = None,
    include_all: bool = False,
) -> list[Migration]:
    """The migrations ``up`` applies, in order. Pure: no I/O.

    Raises UsageError when ``to`` names no local migration, OutOfOrder when a
    pending file is older than the newest applied version and not ``include_all``.
    """
    if to is not None and to not in {m.version for m in local}:
        raise UsageError(
            f"--to {to}: no local migration has that version",
            hint="see the versions with `empire-ops migrate status`",
        )
    pending = [m for m in local if m.version not in applied]
    if to is not None:
        pending = [m for m in pending if version_key(m.version) <= version_key(to)]
    newest = max((version_key(v) for v in applied), default=None)
    older = [m for m in pending if newest is not None and m.sort_key < newest]
    if older and not include_all:
        names = ", ".join(m.filename for m in older)
        hint = "rename them with a newer timestamp, or apply them anyway with --include-all"
        if any(m.path.parent == SHIPPED_DIR for m in older):
            # The shipped files are ours, not the user's to rename: the database has a
            # newer history (Supabase CLI's), so the Empire schema joins that history.
            hint = (
                "the newest applied migration is your project's own (Supabase CLI's history): "
                "adopt the Empire schema into your supabase/migrations folder with "
                "`empire-ops migrate init` (`supabase init` creates the folder), then rerun; "
                "see runbooks/MIGRATE_ADOPT.md"
            )
        raise OutOfOrder(
            f"{len(older)} local migration(s) are older than the newest applied one "
            f"({max(applied, key=version_key)}) and not applied: {names}",
            hint=hint,
        )
    return pending


@dataclass(frozen=True)
class DownStep:
    """One applied version to revert, with the SQL to do it."""

    version: str
    name: str
    statements: list[Statement]
    no_transaction: bool
    checksum: str | None


def plan_down(
    local: Sequence[Migration], applied: dict[str, history.AppliedRow], to: str
) -> list[DownStep]:
    """The applied versions newer than ``to``, newest first, with their down SQL. Pure.

    ``to`` is ``0`` (revert everything) or a version. A file deleted locally is
    reverted with the down SQL recorded when it was applied. Raises UsageError
    for a malformed ``to``, DownRefused when any of them is up-only.
    """
    if not to.isdigit():
        raise UsageError(f"--to {to!r} is not a version", hint="use a version number, or 0")
    by_version = {m.version: m for m in local}
    if to != "0" and to not in by_version and to not in applied:
        raise UsageError(
            f"--to {to}: no migration has that version",
            hint="see the versions with `empire-ops migrate status`, or use --to 0",
        )
    steps: list[DownStep] = []
    refused: list[str] = []
    by_cli: list[str] = []
    for version in sorted(applied, key=version_key, reverse=True):
        if version_key(version) <= version_key(to):
            continue
        row, mig = applied[version], by_version.get(version)
        if mig is not None and not mig.up_only:
            steps.append(
                DownStep(version, mig.name, mig.down_statements, mig.no_transaction, mig.checksum)
            )
        elif mig is None and row.down_sql is not None:
            steps.append(
                DownStep(
                    version,
                    row.name or "",
                    split_statements(row.down_sql),
                    row.no_transaction,
                    row.checksum,
                )
            )
        else:
            refused.append(mig.filename if mig else f"{version}_{row.name or '?'} (not local)")
            if row.by_cli:
                by_cli.append(refused[-1])
    if by_cli:
        keep = max(by_cli, key=lambda name: version_key(name.split("_", 1)[0]))
        raise DownRefused(
            f"cannot revert past your own migration(s) applied by Supabase CLI: "
            f"{', '.join(by_cli)}. empire-ops reverts only what it applied with a down "
            "section, and the CLI's migrations have none",
            hint=f"revert no further than --to {keep.split('_', 1)[0]}; to undo your own "
            "migration write a new one that reverses it (`supabase migration new`), or restore "
            "a backup; see runbooks/MIGRATE_DOWN_PAST_CLI.md",
        )
    if refused:
        raise DownRefused(
            f"cannot revert up-only migration(s): {', '.join(refused)}",
            hint="up-only files (Supabase CLI format, or without '-- migrate:down') cannot be "
            "reverted; pick a --to at or after the newest of them",
        )
    return steps
