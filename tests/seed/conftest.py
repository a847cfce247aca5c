"""Fixtures for the demo-data tests (on top of the shared ``migrated_template``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import PgServer, _cloned_db


@pytest.fixture
def migrated_db_factory(pg: PgServer, migrated_template: str) -> Iterator[Callable[[], str]]:
    """Call it for as many migrated, empty databases as a test needs; all dropped after."""
    clones: list[Iterator[str]] = []

    def make() -> str:
        clones.append(_cloned_db(pg, migrated_template, "s"))
        return next(clones[-1])

    yield make
    for clone in clones:
        next(clone, None)
