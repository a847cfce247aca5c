"""Where a finding's runbook is, wherever empire-ops runs from.

A finding names its runbook as ``runbooks/<CODE>.md`` (``ops.findings.runbook_for``).
In a source checkout that path is the repository's ``runbooks/`` folder; an
installed wheel carries a copy at ``ops/runbooks/`` (setup.py copies it at
build time), so ``empire-ops runbook CODE`` leads somewhere either way.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from ops.errors import UsageError

_PACKAGE = Path(__file__).resolve().parent
_CODE = re.compile(r"[A-Z][A-Z0-9_]*")


def runbooks_dir() -> Path:
    """The folder holding the runbooks: the installed copy, else the source checkout's.

    Raises UsageError when neither exists (a broken install).
    """
    for folder in (_PACKAGE / "runbooks", _PACKAGE.parent / "runbooks"):
        if folder.is_dir():
            return folder
    raise UsageError(
        "no runbooks found: neither the installed copy nor a source checkout's runbooks/",
        hint="reinstall empire-ops (`pip install --force-reinstall empire-ops`)",
    )


def runbook_path(code_or_path: str) -> Path:
    """The runbook file of a finding code (``DB_UNREACHABLE``) or path (``runbooks/<CODE>.md``).

    Raises UsageError for a malformed code or one without a runbook, naming
    the closest known codes.
    """
    code = Path(code_or_path).name.removesuffix(".md").upper()
    if not _CODE.fullmatch(code):
        raise UsageError(f"{code_or_path!r} is not a finding code", hint="e.g. DB_UNREACHABLE")
    folder = runbooks_dir()
    path = folder / f"{code}.md"
    if path.is_file():
        return path
    known = sorted(p.stem for p in folder.glob("*.md"))
    close = difflib.get_close_matches(code, known, n=3)
    raise UsageError(
        f"no runbook for {code}",
        hint=f"did you mean {', '.join(close)}?"
        if close
        else f"known: {len(known)} codes in {folder}",
    )
