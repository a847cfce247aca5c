"""Adopting the Empire schema into the migration folder shared with Supabase CLI.

In a project with a ``supabase/migrations`` folder, that folder is the one
migration folder both tools use: `empire-ops migrate init` (and the ``up``
step) writes the shipped Empire migrations there, so that every version in
``supabase_migrations.schema_migrations`` has its file and ``supabase db push``
agrees with ``empire-ops migrate status``. Each shipped file is written

- at the version the history already records for it (a teammate adopted it
  first, or an earlier empire-ops applied it under its shipped version), or
- when it is new, as ``<version>_empire_<name>.sql`` with a version newer than
  every applied and every local one, so the CLI's in-order rule holds;

with its down section commented out (the CLI runs every line of a file; see
:mod:`ops.migrate.files`), which keeps its checksum. Files are created
exclusively, never overwritten. Planning is pure; writing happens under the
``migrate`` advisory lock so two runs cannot pick two versions for one file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops import db
from ops.migrate import history
from ops.migrate.errors import MigrationFileError
from ops.migrate.files import (
    SHIPPED_DIR,
    Migration,
    comment_out_down,
    load_migrations,
    parse_migration,
    version_key,
)

if TYPE_CHECKING:
    from ops.migrate.common import RunnerSettings

EMPIRE_PREFIX = "empire_"


@dataclass(frozen=True)
class AdoptedFile:
    """One shipped migration and the file it becomes in the shared folder."""

    shipped: str  # the shipped file's name
    path: Path
    version: str
    reason: str  # "recorded": the history has it at this version; "new": a fresh version

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass
class AdoptionPlan:
    """What adoption writes into ``folder`` (``files``) and what is there already."""

    folder: Path
    files: list[AdoptedFile] = field(default_factory=list)
    present: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "written": [
                {"file": f.filename, "shipped": f.shipped, "version": f.version,
                 "reason": f.reason}
                for f in self.files
            ],
            "present": self.present,
        }  # fmt: skip


def _is_copy_of(shipped: Migration, version: str, name: str | None) -> bool:
    """True when (version, name) is ``shipped`` as adopted, or as applied under its own version."""
    return name == EMPIRE_PREFIX + shipped.name or (
        version == shipped.version and name == shipped.name
    )


def next_version(after: str | None, now: datetime | None = None) -> str:
    """A ``YYYYMMDDHHMMSS`` version later than ``after`` and not earlier than ``now`` (UTC)."""
    stamp = int((now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S"))
    floor = int(after) + 1 if after and after.isdigit() else 0
    return str(max(stamp, floor))


def plan_adoption(
    folder: Path,
    shipped: Sequence[Migration],
    local: Sequence[Migration],
    applied: dict[str, history.AppliedRow],
    *,
    now: datetime | None = None,
) -> AdoptionPlan:
    """Which shipped migrations adoption writes into ``folder``, at which versions. Pure.

    Raises MigrationFileError when a shipped migration is missing from the
    folder and the history while a later one is there (restore it from version
    control: a fresh version would run it out of its order), or when the
    version the history records for it is taken by another local file.
    """
    plan = AdoptionPlan(folder)
    local_by_version = {m.version: m for m in local}
    versions = [*applied, *local_by_version]
    newest = max(versions, key=version_key) if versions else None
    fresh: list[str] = []
    for mig in shipped:
        here = next((m for m in local if _is_copy_of(mig, m.version, m.name)), None)
        if here is not None:
            plan.present.append(here.filename)
        else:
            row = next((r for v, r in sorted(applied.items()) if _is_copy_of(mig, v, r.name)), None)
            if row is not None:
                taken = local_by_version.get(row.version)
                if taken is not None:
                    raise MigrationFileError(
                        f"the history records {mig.filename} as version {row.version}, but "
                        f"{taken.path} has that version",
                        hint=f"give {taken.filename} a new version (rename it), then rerun",
                    )
                plan.files.append(
                    AdoptedFile(
                        mig.filename,
                        folder / f"{row.version}_{row.name}.sql",
                        row.version,
                        "recorded",
                    )
                )
            else:
                newest = next_version(newest, now)
                plan.files.append(
                    AdoptedFile(
                        mig.filename,
                        folder / f"{newest}_{EMPIRE_PREFIX}{mig.name}.sql",
                        newest,
                        "new",
                    )
                )
                fresh.append(mig.filename)
                continue
        if fresh:  # an earlier one is neither here nor recorded, but this one is
            raise MigrationFileError(
                f"{', '.join(fresh)} of the Empire schema: not in {folder} and not in the "
                f"history, while the later {mig.filename} is",
                hint=f"restore the missing file(s) from version control (git checkout -- "
                f"{folder}); a fresh version would run them after the migrations that need them",
            )
    return plan


def shipped_migrations() -> list[Migration]:
    """The Empire schema's migrations as shipped in the package."""
    return load_migrations([SHIPPED_DIR])


def write_adopted(plan: AdoptionPlan) -> list[Path]:
    """Write the plan's files (down sections commented out); never overwrite one.

    Raises MigrationFileError when a file of that name appeared meanwhile (run
    again: the plan is made afresh), PathNotUsable/DiskFull from the write.
    """
    from ops.fsutil import create_exclusive

    written = []
    for item in plan.files:
        text = (SHIPPED_DIR / item.shipped).read_text(encoding="utf-8")
        try:
            create_exclusive(item.path, comment_out_down(text).encode(), mode=0o644)
        except FileExistsError:
            raise MigrationFileError(
                f"{item.path} appeared while adopting the Empire schema",
                hint="another run may be adopting it: rerun `empire-ops migrate init`",
            ) from None
        written.append(item.path)
    return written


def adopted_migrations(plan: AdoptionPlan) -> list[Migration]:
    """The plan's files as migrations, as they will read once written (for dry runs)."""
    out = []
    for item in plan.files:
        data = comment_out_down((SHIPPED_DIR / item.shipped).read_text("utf-8")).encode()
        out.append(parse_migration(item.path, data))
    return out


def plan_for(conn: db.Connection[Any], settings: RunnerSettings) -> AdoptionPlan | None:
    """The adoption plan for ``settings.shared_dir`` (None when no folder is shared). Read-only."""
    if settings.shared_dir is None:
        return None
    applied = history.read_applied(conn, settings.history_schema)
    local = load_migrations(list(settings.dirs))
    return plan_adoption(settings.shared_dir, shipped_migrations(), local, applied)


def adopt_schema(
    target: Any, config: Any, *, folder: Path | None = None, dry_run: bool = False
) -> AdoptionPlan:
    """`migrate init`: write the Empire schema's migrations into the folder shared with the CLI.

    ``folder`` defaults to ``[migrate] supabase_dir`` (``supabase/migrations``).
    Reads the history to pick versions newer than the newest applied; writes
    files only (never the database), under the ``migrate`` lock so a
    concurrent ``up`` cannot adopt the same file twice. With ``dry_run`` it
    only plans. Raises UsageError (exit 2) when the folder does not exist,
    MigrationFileError (see :func:`plan_adoption`), LockBusy (exit 5),
    DatabaseUnreachable (exit 4).
    """
    from dataclasses import replace

    from ops.errors import UsageError
    from ops.migrate.common import LOCK_NAME, RunnerSettings

    settings = RunnerSettings.from_config(config)
    if folder is not None:
        if not folder.is_dir():
            raise UsageError(
                f"{folder} is not a folder",
                hint="create it (`supabase init` makes supabase/migrations), or pass another --dir",
            )
        shared = folder.resolve()
        settings = replace(
            settings,
            shared_dir=folder,
            dirs=(folder, *(d for d in settings.project_dirs if d.resolve() != shared)),
        )
    if settings.shared_dir is None:
        name = config.get("migrate.supabase_dir") if config is not None else ""
        raise UsageError(
            f"no folder shared with Supabase CLI: {name or '[migrate] supabase_dir'} does not "
            "exist in this project",
            hint="run `supabase init` in the project root (it creates supabase/migrations), "
            "or pass --dir; a project without Supabase CLI needs no init",
        )
    with db.connect(target.dsn, target.options, autocommit=True) as conn:
        if dry_run:
            plan = plan_for(conn, settings)
        else:
            with db.advisory_lock(conn, LOCK_NAME, settings.lock_timeout):
                plan = plan_for(conn, settings)
                if plan is not None:
                    write_adopted(plan)
    assert plan is not None  # shared_dir is set
    return plan
