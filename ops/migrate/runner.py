"""The migration runner: status, up, down and verify, under one session-level lock.

The runner is split by job: :mod:`~ops.migrate.common` (settings, results,
the lock, running statements), :mod:`~ops.migrate.plan` (pure planning),
:mod:`~ops.migrate.apply` (``up``), :mod:`~ops.migrate.revert` (``down``),
:mod:`~ops.migrate.status`, :mod:`~ops.migrate.verify` and
:mod:`~ops.migrate.indexes` (INVALID indexes). This module re-exports their
public names, so ``from ops.migrate.runner import migrate_up`` keeps working.

Invariants:

- Every run that writes holds the session-level advisory lock ``migrate``
  (tried for ``database.lock_timeout``; LockBusy, exit 5, when busy). A
  session lock survives the per-file transactions and never blocks inside
  the server, so ``CREATE INDEX CONCURRENTLY`` cannot deadlock on it.
- A transactional file runs in ONE transaction together with its two
  history rows: it is applied with its history, or not at all.
- A ``-- migrate:no-transaction`` file runs statement by statement in
  autocommit; its history rows are written last. Before each
  ``CREATE INDEX CONCURRENTLY`` an INVALID index of the same name (left by a
  failed build) is dropped, so the rebuild is real and not skipped by
  ``IF NOT EXISTS``; every ``up`` also rebuilds invalid indexes of applied files.
- Local files older than the newest applied one, not yet applied, are
  refused unless ``include_all``; down refuses up-only files.
- SQL from files is sent without parameters (files use ``%`` in ``format()``).
"""

from __future__ import annotations

from ops.migrate.apply import apply_all_to, ensure_migrated, migrate_up
from ops.migrate.common import (
    DEFAULT_HISTORY_SCHEMA,
    DEFAULT_LOCK_TIMEOUT,
    LOCK_NAME,
    MigrateResult,
    RunnerSettings,
    StepOutcome,
    default_actor,
    migrations_for,
    resolve_migrations,
)
from ops.migrate.plan import DownStep, plan_down, plan_up
from ops.migrate.revert import migrate_down
from ops.migrate.status import StatusEntry, StatusReport, build_status, migration_status
from ops.migrate.verify import VerifyReport, lint_migrations, verify_migrations

__all__ = [
    "DEFAULT_HISTORY_SCHEMA",
    "DEFAULT_LOCK_TIMEOUT",
    "LOCK_NAME",
    "DownStep",
    "MigrateResult",
    "RunnerSettings",
    "StatusEntry",
    "StatusReport",
    "StepOutcome",
    "VerifyReport",
    "apply_all_to",
    "build_status",
    "default_actor",
    "ensure_migrated",
    "lint_migrations",
    "migrate_down",
    "migrate_up",
    "migration_status",
    "migrations_for",
    "plan_down",
    "plan_up",
    "resolve_migrations",
    "verify_migrations",
]
