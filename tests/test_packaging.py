"""The wheel as an installed user gets it: runbooks inside, no deprecation warnings,
`migrate new` never writing into the installed package.

Builds the project with pip (a real build, setuptools from the build
requirements) and installs it into a scratch virtualenv without
dependencies; the scratch venv borrows the test venv's libraries through a
``.pth`` line, so the empire-ops it runs is the installed copy, not the tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _pip(*args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_NO_INDEX")}
    return subprocess.run(
        [python, "-m", "pip", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = _pip("wheel", str(REPO), "--no-deps", "-w", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    [built] = out.glob("empire_ops-*.whl")
    return built


def test_the_wheel_ships_every_runbook_the_migrations_and_the_license(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    runbooks = sorted(
        str(p.relative_to(REPO / "runbooks")) for p in (REPO / "runbooks").rglob("*.md")
    )
    assert len(runbooks) > 40 and "incidents/restore-from-backup.md" in runbooks
    assert [n for n in runbooks if f"ops/runbooks/{n}" not in names] == []
    # The dashboard's template and the JSON Schema of db-health.json travel with the code.
    assert "dashboards/templates/dashboard.html.j2" in names
    assert "ops/alerts/templates/message.html.j2" in names
    assert "ops/migrate/expected_schema.json" in names
    shipped = sorted(p.name for p in (REPO / "ops/migrate/migrations").glob("*.sql"))
    assert all(f"ops/migrate/migrations/{n}" in names for n in shipped)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A scratch venv with `pip install . --no-deps` done in it: (its python, pip's output)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # -v: pip shows the build backend's own warnings only when verbose.
    done = _pip("install", str(REPO), "--no-deps", "-v", python=python)
    assert done.returncode == 0, done.stdout + done.stderr
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # The dependencies, from the test venv (appended after the scratch venv's own
    # site-packages, and not a site dir: its editable-install hook stays off).
    (Path(site) / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return Path(python), done.stdout + done.stderr


def _run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(python), "-m", "ops", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
    )  # fmt: skip


def test_pip_install_prints_no_packaging_deprecation(installed: tuple[Path, str]) -> None:
    _python, output = installed
    assert "deprecat" not in output.lower(), output


def test_an_installed_runbook_path_leads_to_the_file(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    python, _ = installed
    where = _run(python, "runbook", "DB_UNREACHABLE", "--path", cwd=tmp_path)
    assert where.returncode == 0, where.stdout + where.stderr
    path = Path(where.stdout.strip())
    assert path.is_file() and "site-packages" in path.parts and path.parent.name == "runbooks"
    text = _run(python, "runbook", "runbooks/DB_UNREACHABLE.md", cwd=tmp_path)
    assert text.returncode == 0 and text.stdout.startswith("# DB_UNREACHABLE")
    unknown = _run(python, "runbook", "DB_UNREACHABL", cwd=tmp_path)
    assert unknown.returncode == 2 and "DB_UNREACHABLE" in unknown.stderr


def test_migrate_new_never_writes_into_the_installed_package(
    installed: tuple[Path, str], tmp_path: Path
) -> None:
    python, _ = installed
    shipped = (
        Path(
            _run(python, "runbook", "DB_UNREACHABLE", "--path", cwd=tmp_path).stdout.strip()
        ).parent.parent
        / "migrate"
        / "migrations"
    )
    before = sorted(p.name for p in shipped.iterdir())
    default = _run(python, "migrate", "new", "add_orders", cwd=tmp_path)
    assert default.returncode == 2 and "[migrate] dirs" in default.stderr, default.stderr
    inside = _run(python, "migrate", "new", "add_orders", "--dir", str(shipped), cwd=tmp_path)
    assert inside.returncode == 2 and "installed package" in inside.stderr, inside.stderr
    assert sorted(p.name for p in shipped.iterdir()) == before
