"""When a command may write to the database without asking.

The default environment is ``dev``, and dev's policy is generous
(``[migrate] auto_apply_in`` and ``allow_down_in`` list it). So a DSN pointed
at a production database with no ``--env`` (the README's ``DATABASE_URL=…
make up``) would be migrated under dev's rules. The rule: on a database that
is not the embedded server, nothing applies or reverts migrations, and
nothing heals on its own, unless the environment was chosen explicitly
(``--env`` or ``$EMPIRE_ENV``) or the command was given ``--yes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ops.migrate.errors import NotConfirmed

if TYPE_CHECKING:
    from ops.config import Config
    from ops.target import DatabaseTarget

FIX = "rerun with --env ENV (the environment this database belongs to, e.g. --env prod) or --yes"


def writes_confirmed(config: Config | None, target: DatabaseTarget | None, *, yes: bool) -> bool:
    """True when writing to ``target`` needs no further confirmation.

    It does not when the target is not the embedded server (or unknown:
    ``None``) and the environment was not chosen explicitly, unless ``yes``.
    Without a config (fixtures, scratch databases) it is always True.
    """
    if yes or config is None or config.env_explicit:
        return True
    return target is not None and target.embedded


def unconfirmed_reason(config: Config, target: DatabaseTarget | None) -> str:
    """Why a write was not done, in words (no DSN: the target may hold a password)."""
    where = f"from {target.source}" if target is not None else "a connection"
    return (
        f"the environment was not chosen (no --env, no $EMPIRE_ENV: defaulted to "
        f"{config.env!r}) and the database ({where}) is not the embedded server"
    )


def require_confirmed(
    config: Config | None, target: DatabaseTarget, *, yes: bool, action: str
) -> None:
    """Raise NotConfirmed (exit 2) unless :func:`writes_confirmed`; ``action`` names the write."""
    if config is None or writes_confirmed(config, target, yes=yes):
        return
    raise NotConfirmed(
        f"{action}: nothing was written: {unconfirmed_reason(config, target)}",
        hint=f"review with --dry-run, then {FIX}",
    )
