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


def test_runbooks_named_by_findings_exist() -> None:
    for path in re.findall(r'runbook="(runbooks/[A-Z_]+\.md)"', _sources()):
        assert (REPO / path).is_file(), f"{path} is referenced but missing"


def _sources() -> str:
    return "\n".join(p.read_text() for p in (REPO / "ops").rglob("*.py"))
