"""Build step the declarative config cannot express: ship runbooks/ inside the wheel.

The repository keeps its runbooks at the top level (the layout is fixed), but
an installed empire-ops has no repository around it. So the build copies
``runbooks/**/*.md`` (the per-finding runbooks and ``incidents/``) to
``ops/runbooks/`` in the build tree (a plain copy, no
symlink), where ``ops.runbook`` finds them. Everything else is in
pyproject.toml. An editable install reads the repository's folder directly.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RUNBOOKS = Path(__file__).resolve().parent / "runbooks"


class BuildPyWithRunbooks(build_py):
    """``build_py``, then a copy of every runbook into the ``ops`` package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the package is the source tree: ops.runbook reads runbooks/ there
        target = Path(self.build_lib) / "ops" / "runbooks"
        self.mkpath(str(target))
        for page in sorted(RUNBOOKS.rglob("*.md")):
            relative = page.relative_to(RUNBOOKS)
            self.mkpath(str((target / relative).parent))
            self.copy_file(str(page), str(target / relative))


setup(cmdclass={"build_py": BuildPyWithRunbooks})
