"""`migrate down`: revert applied migrations newest first, each with its history rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ops import db
from ops.migrate import history
from ops.migrate.common import (
    MigrateResult,
    RunnerSettings,
    StepOutcome,
    default_actor,
    locked,
    ms_since,
    read_applied,
    resolve_migrations,
    run_statements,
)
from ops.migrate.confirm import require_confirmed
from ops.migrate.errors import DownRefused
from ops.migrate.files import Migration
from ops.migrate.plan import DownStep, plan_down
from ops.target import DatabaseTarget

if TYPE_CHECKING:
    from ops.config import Config

log = logging.getLogger(__name__)


def migrate_down(
    target: DatabaseTarget,
    config: Config | None,
    *,
    to: str,
    confirmed: bool = False,
    dry_run: bool = False,
    migrations: Sequence[Migration] | None = None,
    actor: str | None = None,
) -> MigrateResult:
    """Revert applied migrations newer than ``to`` (``"0"``: all), newest first.

    Outside the environments in ``[migrate] allow_down_in`` it needs
    ``confirmed`` (``--yes``), and so it does on a non-embedded target whose
    environment was not chosen explicitly (NotConfirmed, exit 2; see
    :mod:`ops.migrate.confirm`). Raises DownRefused (no confirmation, or an
    up-only file in range — checked before anything runs), LockBusy (exit 5),
    MigrationFailed (the failed transactional file is rolled back).
    """
    from ops.migrate.settings import down_allowed_without_yes

    if not dry_run:
        require_confirmed(config, target, yes=confirmed, action="`migrate down`")
    if (
        config is not None
        and not confirmed
        and not dry_run
        and not down_allowed_without_yes(config)
    ):
        raise DownRefused(
            f"`migrate down` in environment {config.env!r} needs --yes",
            hint=f"review with --dry-run, then rerun with --yes (or add {config.env!r} to "
            "[migrate] allow_down_in)",
        )
    settings, local = resolve_migrations(config, migrations)
    actor = actor or default_actor()
    result = MigrateResult(target=target.masked, direction="down", dry_run=dry_run)
    if dry_run:
        applied = read_applied(target, settings)
        for step in plan_down(local, applied, to):
            result.steps.append(
                StepOutcome(step.version, step.name, "down", len(step.statements),
                            step.no_transaction)
            )  # fmt: skip
        return result
    with locked(target, settings) as conn:
        applied = history.read_applied(conn, settings.history_schema)
        for step in plan_down(local, applied, to):
            result.steps.append(_revert(conn, step, settings, actor))
    return result


def _revert(
    conn: db.Connection[Any], step: DownStep, settings: RunnerSettings, actor: str
) -> StepOutcome:
    started = time.monotonic()
    label = f"{step.version}_{step.name}.sql (down)"
    log.info("reverting %s", label)
    if step.no_transaction:
        run_statements(conn, label, step.statements, rolled_back=False)
        with db.transaction(conn):
            history.record_down(
                conn, settings.history_schema, step.version, step.name, step.checksum,
                actor=actor, duration_ms=ms_since(started),
            )  # fmt: skip
    else:
        with db.transaction(conn):
            run_statements(conn, label, step.statements, rolled_back=True)
            history.record_down(
                conn, settings.history_schema, step.version, step.name, step.checksum,
                actor=actor, duration_ms=ms_since(started),
            )  # fmt: skip
    return StepOutcome(
        step.version, step.name, "down", len(step.statements), step.no_transaction,
        ms_since(started),
    )  # fmt: skip
