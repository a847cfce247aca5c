"""Deterministic demo data for the Empire schema (`empire-ops db seed-demo`, `up --demo`)."""

from __future__ import annotations

from ops.seed.demo import (
    UP_DEMO_SCALE,
    SchemaNotReady,
    SeedRefused,
    SeedReport,
    TableReport,
    guard_target,
    render_report,
    seed_demo,
    seed_demo_if_empty,
    step_demo,
)

__all__ = [
    "UP_DEMO_SCALE",
    "SchemaNotReady",
    "SeedRefused",
    "SeedReport",
    "TableReport",
    "guard_target",
    "render_report",
    "seed_demo",
    "seed_demo_if_empty",
    "step_demo",
]
