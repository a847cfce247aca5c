"""Docs that cannot drift: every command has help and is in the README's reference."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import typer.main

from ops.cli import app

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def _commands() -> Iterator[tuple[str, object]]:
    root = typer.main.get_command(app)

    def walk(cmd: object, path: list[str]) -> Iterator[tuple[str, object]]:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), cmd

    yield from walk(root, [])


def test_there_are_commands() -> None:
    names = [name for name, _ in _commands()]
    assert {"up", "preflight", "config validate", "db start"} <= set(names)


def test_every_command_has_help_text() -> None:
    for name, cmd in _commands():
        assert (getattr(cmd, "help", None) or "").strip(), f"`{name}` has no help text"


def test_every_command_is_in_the_readme_reference() -> None:
    reference = README.split("## Command reference", 1)[1]
    for name, _ in _commands():
        assert re.search(rf"`empire-ops {re.escape(name)}[` \[]", reference), (
            f"`empire-ops {name}` is missing from the README's command reference"
        )


def test_every_group_has_help_text() -> None:
    root = typer.main.get_command(app)
    for name, group in getattr(root, "commands", {}).items():
        assert (getattr(group, "help", None) or "").strip(), f"group {name} has no help"


def test_quickstart_is_exactly_two_commands() -> None:
    quick = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    block = quick.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == ["make up", "make test"]


# Every way the code names a runbook: a literal path, or a finding code passed
# to the helpers that derive the path from it.
_RUNBOOK_REFERENCES = (
    r"runbooks/([A-Z0-9_]+)\.md",
    r'_rb\(\s*"([A-Z0-9_]+)"',
    r'_err\(\s*"([A-Z0-9_]+)"',
)


def test_runbooks_named_by_findings_exist() -> None:
    source = _sources()
    codes = {code for pattern in _RUNBOOK_REFERENCES for code in re.findall(pattern, source)}
    assert len(codes) > 30  # the patterns still match how the code names runbooks
    missing = sorted(c for c in codes if not (REPO / "runbooks" / f"{c}.md").is_file())
    assert missing == [], f"runbooks referenced but missing: {missing}"


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


def test_runbook_commands_exist() -> None:
    """Every `empire-ops ...` command a runbook tells the reader to run exists."""
    known = {name for name, _ in _commands()}
    groups = {name.split()[0] for name in known if " " in name}
    checked = 0
    for page in (REPO / "runbooks").glob("*.md"):
        text = page.read_text()
        # only code: fenced blocks and inline `...` spans, not prose
        code = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL)
        code += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
        for snippet in re.findall(r"empire-ops (.*)", "\n".join(code)):
            words = _command_words(snippet)
            if not words:
                continue
            name = " ".join(words[:2]) if words[0] in groups else words[0]
            assert name in known, f"{page.name}: `empire-ops {snippet.strip()}` is not a command"
            checked += 1
    assert checked > 20


def _sources() -> str:
    return "\n".join(p.read_text() for p in (REPO / "ops").rglob("*.py"))
