"""Supabase-linter-style lints: pure rules over a catalog, and on a real database."""

from __future__ import annotations

from typing import Any

from ops import db
from ops.findings import Severity
from ops.migrate.catalog import Catalog
from ops.migrate.drift import run_check
from ops.migrate.lints import lint


def _table(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "table",
        "rls_enabled": True,
        "rls_forced": False,
        "columns": {},
        "indexes": {},
        "constraints": {},
        "triggers": {},
        "policies": {"p": {"using": "true", "with_check": None}},
        "grants": {},
    }
    base.update(kw)
    return base


def _codes(cat: Catalog, manifest: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    return [(f.code, f.subject) for f in lint(cat, manifest)]


def test_rls_disabled_is_an_error_only_for_tables_the_manifest_does_not_cover() -> None:
    cat = Catalog(tables={"public.a": _table(rls_enabled=False)})
    [finding] = lint(cat)
    assert (finding.code, finding.severity) == ("LINT_RLS_DISABLED_IN_PUBLIC", Severity.ERROR)
    assert _codes(cat, {"tables": {"public.a": {}}}) == []  # drift reports RLS_DISABLED


def test_rls_without_policy_warns_except_on_partitions() -> None:
    cat = Catalog(
        tables={
            "public.a": _table(policies={}),
            "public.a_default": _table(policies={}, partition_of="public.a"),
        }
    )
    assert _codes(cat) == [("LINT_RLS_ENABLED_NO_POLICY", "public.a")]


def test_foreign_key_needs_an_index_starting_with_its_columns() -> None:
    constraints = {"fk": {"type": "foreign key", "definition": "", "validated": True}}
    cat = Catalog(
        tables={"public.a": _table(constraints=constraints)},
        fk_columns={("public.a", "fk"): ["user_id", "org_id"]},
        index_keys={("public.a", "i1"): ["org_id"], ("public.a", "i2"): ["x", "user_id"]},
    )
    assert _codes(cat) == [("LINT_UNINDEXED_FOREIGN_KEY", "public.a.fk")]
    cat.index_keys[("public.a", "i3")] = ["org_id", "user_id", "created_at"]
    assert _codes(cat) == []


def test_duplicate_indexes_ignore_the_names() -> None:
    idx = {
        "a_x": {"definition": "CREATE INDEX a_x ON public.a USING btree (x)", "valid": True},
        "a_x2": {"definition": "CREATE INDEX a_x2 ON public.a USING btree (x)", "valid": True},
        "a_xu": {"definition": "CREATE UNIQUE INDEX a_xu ON public.a USING btree (x)"},
    }
    assert _codes(Catalog(tables={"public.a": _table(indexes=idx)})) == [
        ("LINT_DUPLICATE_INDEX", "public.a.a_x")
    ]


def test_auth_uid_must_be_wrapped_in_select() -> None:
    pols = {
        "ok": {"using": "(( SELECT auth.uid() AS uid) = user_id)", "with_check": None},
        "slow": {"using": "(auth.uid() = user_id)", "with_check": None},
        "mixed": {"using": "true", "with_check": "((auth.jwt() ->> 'role') = 'x')"},
    }
    assert _codes(Catalog(tables={"public.a": _table(policies=pols)})) == [
        ("LINT_AUTH_RLS_INITPLAN", "public.a.mixed"),
        ("LINT_AUTH_RLS_INITPLAN", "public.a.slow"),
    ]


def test_lints_on_a_real_database(migrated_db: str) -> None:
    with db.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            """
            create table public.pets (id uuid primary key, owner_id uuid references public.users);
            alter table public.pets enable row level security;
            create table public.toys (id uuid primary key);
            alter table public.toys enable row level security;
            create policy mine on public.toys for select using (auth.uid() = id);
            create index idx_offers_status_again on public.offers (status);
            """
        )
        found = {(f.code, f.subject): f.severity for f in run_check(conn).findings}
    assert found[("LINT_UNINDEXED_FOREIGN_KEY", "public.pets.pets_owner_id_fkey")] == (
        Severity.WARNING
    )
    assert found[("LINT_RLS_ENABLED_NO_POLICY", "public.pets")] == Severity.WARNING
    assert found[("LINT_AUTH_RLS_INITPLAN", "public.toys.mine")] == Severity.WARNING
    assert found[("LINT_DUPLICATE_INDEX", "public.offers.idx_offers_status")] == Severity.WARNING
    # The shipped schema itself passes every lint.
    lint_codes = {code for code, _ in found if code.startswith("LINT_")}
    assert lint_codes == {
        "LINT_UNINDEXED_FOREIGN_KEY",
        "LINT_RLS_ENABLED_NO_POLICY",
        "LINT_AUTH_RLS_INITPLAN",
        "LINT_DUPLICATE_INDEX",
    }
    assert not [s for c, s in found if c.startswith("LINT_") and "pets" not in s
                and "toys" not in s and "offers" not in s]  # fmt: skip
