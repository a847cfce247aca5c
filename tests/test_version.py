"""`empire-ops --version`: the installed distribution's version, read only when asked."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

from tests.conftest import REPO


def test_version_prints_the_installed_version(cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"empire-ops {version('empire-ops')}"


def test_version_needs_no_config_and_no_command(tmp_path, cli) -> None:
    (tmp_path / "empire-ops.toml").write_text("this is [not toml\n")
    result = cli("--version", "preflight")  # eager: exits before anything loads
    assert result.exit_code == 0 and result.stdout.startswith("empire-ops ")


def test_the_version_lookup_is_lazy() -> None:
    code = "import sys, ops.cli; print('importlib.metadata' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "False"
