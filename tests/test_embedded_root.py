"""As root, the embedded server runs as another OS user: a folder it cannot pass is named.

The quickstart's classic trap is a checkout under a 0700 home (``/root``): the
``postgres`` user cannot reach the state folder, and initdb would fail deep
inside with "permission denied". empire-ops refuses first, naming the folder
and the fix, and changes no permission itself.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root runs the server as another user"
)


def _has_postgres_user() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


@pytest.mark.skipif(not _has_postgres_user(), reason="needs the postgres OS user")
def test_a_folder_the_server_user_cannot_pass_is_named_with_the_fix(
    tmp_path: Path, cli: Any
) -> None:
    locked = tmp_path / "home"
    locked.mkdir(mode=0o700)
    locked.chmod(0o700)  # like /root: only its owner passes
    (tmp_path / "empire-ops.toml").write_text('[project]\nstate_dir = "home/state"\n')
    result = cli("db", "start")
    assert result.exit_code == 2, result.output
    assert f"cannot pass through {locked}" in result.stderr
    assert f"chmod o+x {locked}" in result.stderr
    assert locked.stat().st_mode & 0o777 == 0o700  # nothing was changed for the user
    assert not (locked / "state" / "pgdata").exists()
