"""Docs that cannot drift: every command has help and is in the README's reference."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import typer.main

from ops.cli import app
from tests.helpers import cli_commands

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_there_arecli_commands() -> None:
    names = [name for name, _ in cli_commands()]
    assert {"up", "preflight", "config validate", "db start"} <= set(names)


def test_every_command_has_help_text() -> None:
    for name, cmd in cli_commands():
        assert (getattr(cmd, "help", None) or "").strip(), f"`{name}` has no help text"


def test_every_command_is_in_the_readme_reference() -> None:
    reference = README.split("## Command reference", 1)[1]
    for name, _ in cli_commands():
        assert re.search(rf"`empire-ops {re.escape(name)}[` \[]", reference), (
            f"`empire-ops {name}` is missing from the README's command reference"
        )


def test_every_group_has_help_text() -> None:
    root = typer.main.get_command(app)
    for name, group in getattr(root, "commands", {}).items():
        assert (getattr(group, "help", None) or "").strip(), f"group {name} has no help"


def test_quickstart_is_exactly_twocli_commands() -> None:
    quick = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    block = quick.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == ["make up", "make test"]


# Every way the code names a runbook explicitly (most findings leave it to
# ``runbook_for`` of their code, checked below): a literal path, or a finding
# code passed to the helpers that derive the path from it.
_RUNBOOK_REFERENCES = (
    r"runbooks/([A-Z0-9_]+)\.md",
    r'_rb\(\s*"([A-Z0-9_]+)"',
    r'_err\(\s*"([A-Z0-9_]+)"',
)


def test_runbooks_named_by_findings_exist() -> None:
    source = _sources()
    codes = {code for pattern in _RUNBOOK_REFERENCES for code in re.findall(pattern, source)}
    assert len(codes) > 3  # the patterns still match how the code names runbooks
    missing = sorted(c for c in codes if not (REPO / "runbooks" / f"{c}.md").is_file())
    assert missing == [], f"runbooks referenced but missing: {missing}"


_CODE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_SEVERITIES = {"ok", "info", "warning", "error", "critical"}


def _call_name(func: ast.expr) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _finding_codes() -> tuple[set[str], set[str]]:
    """(codes that need a runbook, codes only reported as ok or info), from ops/ and dashboards/.

    A code is any string literal of a family (the part before the first ``_``)
    that some finding is created with, wherever it occurs: passed to a
    constructor, through a helper, or in a table of codes. It needs no runbook
    only when every occurrence is the code of an ``ok``/``info`` finding or a
    comparison.
    """
    trees = [
        ast.parse(p.read_text()) for d in ("ops", "dashboards") for p in (REPO / d).rglob("*.py")
    ]
    created = {
        node.args[0].value
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and _call_name(node.func) in _SEVERITIES | {"Finding"}
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and _CODE.fullmatch(node.args[0].value)
    }
    families = {code.split("_")[0] for code in created}
    # Secret names share the shape (BACKUP_AGE_IDENTITY): a name of the spec is not a code.
    from ops.backup.settings import SECTION as BACKUP_SECTION
    from ops.secrets.spec import DEFAULT_SPEC

    secret_names = set(DEFAULT_SPEC) | {BACKUP_SECTION.fields["identity_secret"].default}  # type: ignore[union-attr]
    needs: set[str] = set()
    informational: set[str] = set()
    for tree in trees:
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if not _CODE.fullmatch(node.value) or node.value.split("_")[0] not in families:
                continue
            if node.value in secret_names:
                continue
            parent = parents.get(node)
            if isinstance(parent, ast.JoinedStr):
                continue  # a prefix of codes built at run time, not a code
            quiet = (
                isinstance(parent, ast.Call)
                and bool(parent.args)
                and parent.args[0] is node
                and _call_name(parent.func) in {"ok", "info"}
            )
            (informational if quiet or isinstance(parent, ast.Compare) else needs).add(node.value)
    return needs, informational - needs


def _runbook_exists(code: str) -> bool:
    """The runbook :func:`ops.findings.runbook_for` names, in the repository or the package."""
    import ops
    from ops.findings import runbook_for

    relative = runbook_for(code)
    return any((root / relative).is_file() for root in (REPO, Path(ops.__file__).parent))


def test_every_finding_code_has_a_runbook() -> None:
    """Each code a warning or worse can carry has runbooks/<CODE>.md, derived from the code."""
    needs, informational = _finding_codes()
    assert {"SECRETS_WEAK", "DB_UNREACHABLE", "MIGRATE_FAILED", "LINT_DUPLICATE_INDEX"} <= needs
    assert "SECRETS_SCAN_CLEAN" in informational  # the ok/info rule still sees those
    missing = sorted(code for code in needs if not _runbook_exists(code))
    assert missing == [], f"finding codes without a runbook: {missing}"


def test_a_finding_names_the_runbook_of_its_code() -> None:
    from ops import findings as F

    assert F.error("SECRETS_WEAK", "s", "m").runbook == F.runbook_for("SECRETS_WEAK")
    assert F.warning("SECRETS_WEAK", "s", "m").runbook == "runbooks/SECRETS_WEAK.md"
    assert F.ok("DB_REACHABLE", "s", "m").runbook is None  # nothing to fix
    assert F.error("X", "s", "m", runbook="runbooks/Y.md").runbook == "runbooks/Y.md"


def _command_words(snippet: str) -> list[str]:
    """The command words after `empire-ops` in a snippet, global options skipped."""
    words = snippet.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("--env", "-e", "--config", "-c", "--log-format"):
            i += 2
            continue
        if word.startswith("-") or not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        out.append(word)
        i += 1
    return out[:2]


def _command_name(snippet: str, groups: set[str]) -> str | None:
    """The command a snippet after `empire-ops` names (`backup verify`, `restore`), or None."""
    words = _command_words(snippet)
    if not words:
        return None
    return " ".join(words[:2]) if words[0] in groups else words[0]


def _groups() -> set[str]:
    return {name.split()[0] for name, _ in cli_commands() if " " in name}


def test_runbook_commands_exist() -> None:
    """Every `empire-ops ...` command a runbook tells the reader to run exists."""
    known = {name for name, _ in cli_commands()}
    groups = _groups()
    checked = 0
    for page in (REPO / "runbooks").glob("*.md"):
        text = page.read_text()
        # only code: fenced blocks and inline `...` spans, not prose
        code = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL)
        code += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
        for snippet in re.findall(r"empire-ops (.*)", "\n".join(code)):
            name = _command_name(snippet, groups)
            if name is None:
                continue
            assert name in known, f"{page.name}: `empire-ops {snippet.strip()}` is not a command"
            checked += 1
    assert checked > 20


_INCIDENT_HEADINGS = ["Overview", "When this fires", "Prerequisites", "Steps", "Verify"]


def test_incident_runbooks_have_their_shape_and_their_commands_parse() -> None:
    """Each incident runbook: its sections in order, numbered steps, links to
    runbooks that exist, and every `empire-ops` line of its sh blocks a command
    whose `--help` runs."""
    from typer.testing import CliRunner

    runner = CliRunner()
    groups = _groups()
    folder = REPO / "runbooks" / "incidents"
    pages = sorted(p for p in folder.glob("*.md") if p.name != "README.md")
    assert len(pages) >= 12
    helped: dict[str, int] = {}
    for page in pages:
        text = page.read_text()
        prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
        assert re.match(r"# \S", text), f"{page.name}: no title"
        assert re.findall(r"^## (.+?)\s*$", prose, flags=re.M) == _INCIDENT_HEADINGS, page.name
        steps = prose.split("## Steps", 1)[1].split("## Verify", 1)[0]
        assert re.search(r"^1\. ", steps, flags=re.M), f"{page.name}: no numbered step"
        for code in re.findall(r"\]\(\.\./([^)]+)\.md\)", text):
            assert (REPO / "runbooks" / f"{code}.md").is_file(), f"{page.name}: ../{code}.md"
        for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
            for snippet in re.findall(r"^\s*empire-ops (.*)$", block, flags=re.M):
                name = _command_name(snippet, groups)
                assert name, f"{page.name}: `empire-ops {snippet}` names no command"
                if name not in helped:
                    result = runner.invoke(app, [*name.split(), "--help"])
                    helped[name] = result.exit_code
                assert helped[name] == 0, f"{page.name}: `empire-ops {name} --help` fails"
    assert len(helped) > 15


def test_every_built_in_secret_is_in_the_env_example() -> None:
    """The README says the built-in spec's names are all in .env.example: set or commented."""
    from ops.secrets.spec import DEFAULT_SPEC

    listed = set(
        re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.M)
    )
    assert sorted(set(DEFAULT_SPEC) - listed) == []


def _sources() -> str:
    return "\n".join(p.read_text() for p in (REPO / "ops").rglob("*.py"))
