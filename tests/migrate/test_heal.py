"""`migrate heal`: safe repairs from the manifest, recorded; columns and constraints never."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ops import db
from ops import findings as F
from ops.config import load_config
from ops.findings import Severity
from ops.migrate.drift import check_schema
from ops.migrate.heal import check_and_heal, heal, plan_heal
from ops.migrate.manifest import load_manifest
from ops.target import DatabaseTarget


@pytest.fixture
def conn(migrated_conn: Any) -> Any:
    return migrated_conn


def errors(found: list[Any]) -> list[tuple[str, str]]:
    return sorted((f.code, f.subject) for f in found if f.severity >= Severity.ERROR)


FOUR_DRIFTS = """
drop index public.idx_offers_status;
drop trigger set_updated_at on public.users;
drop policy own_rows_select on public.user_sessions;
alter table public.blogs disable row level security;
"""
FOUR_FINDINGS = [
    ("POLICY_MISSING", "public.user_sessions.own_rows_select"),
    ("RLS_DISABLED", "public.blogs"),
    ("SCHEMA_MISSING_INDEX", "public.offers.idx_offers_status"),
    ("SCHEMA_MISSING_TRIGGER", "public.users.set_updated_at"),
]


def test_dry_run_shows_the_sql_and_changes_nothing(conn: Any) -> None:
    conn.execute(FOUR_DRIFTS)
    report = heal(conn, None, apply=False)
    assert not report.applied and report.exit_code == 1
    assert {a.action: a.sql for a in report.actions} == {
        "heal.create_index": [
            "CREATE INDEX CONCURRENTLY idx_offers_status ON public.offers USING btree (status)"
        ],
        "heal.create_trigger": [
            "CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.users FOR EACH ROW "
            "EXECUTE FUNCTION public.set_updated_at()"
        ],
        "heal.create_policy": [
            'CREATE POLICY "own_rows_select" ON "public"."user_sessions" AS PERMISSIVE FOR SELECT '
            'TO "authenticated" USING ((( SELECT auth.uid() AS uid) = user_id))'
        ],
        "heal.enable_rls": ['ALTER TABLE "public"."blogs" ENABLE ROW LEVEL SECURITY'],
    }
    assert all(a.status == "planned" for a in report.actions)
    assert errors(check_schema(conn)) == FOUR_FINDINGS


def test_apply_restores_and_records_every_action(conn: Any) -> None:
    conn.execute(FOUR_DRIFTS)
    report = heal(conn, None, apply=True)
    assert report.exit_code == 0, report.findings
    healed = sorted((f.details["fixed"], f.subject) for f in report.findings)
    assert healed == FOUR_FINDINGS
    assert {f.code for f in report.findings} == {"SCHEMA_HEALED"}
    assert [f.code for f in check_schema(conn)] == ["SCHEMA_OK"]
    logs = db.run_query(
        conn, "select action, subject, actor_id, before, after, meta from public.admin_logs"
    )
    assert sorted(r["action"] for r in logs) == [
        "heal.create_index",
        "heal.create_policy",
        "heal.create_trigger",
        "heal.enable_rls",
    ]
    assert {r["actor_id"] for r in logs} == {"empire-ops"}
    rls = next(r for r in logs if r["action"] == "heal.enable_rls")
    assert rls["before"] == {"rls_enabled": False} and rls["after"]["rls_enabled"] is True
    assert rls["meta"]["sql"] == ['ALTER TABLE "public"."blogs" ENABLE ROW LEVEL SECURITY']


def test_a_dropped_column_is_reported_not_healed(conn: Any) -> None:
    conn.execute("alter table public.quizzes drop column last_used_at")
    report = heal(conn, None, apply=True)
    assert report.actions == []
    assert [(f.code, f.runbook) for f in report.unhealed] == [
        ("SCHEMA_MISSING_COLUMN", "runbooks/SCHEMA_MISSING_COLUMN.md")
    ]
    assert errors(report.findings) == [("SCHEMA_MISSING_COLUMN", "public.quizzes.last_used_at")]
    assert report.exit_code == 1
    assert db.run_query(conn, "select count(*) as n from public.admin_logs") == [{"n": 0}]


def test_constraints_grants_and_tables_are_never_touched() -> None:
    manifest = load_manifest()
    found = [
        F.error("SCHEMA_MISSING_CONSTRAINT", "c", "", details={"table": "public.users"}),
        F.error("GRANT_MISMATCH", "g", "", details={"table": "public.users", "name": "anon"}),
        F.error("SCHEMA_MISSING_TABLE", "t", "", details={"table": "public.x"}),
        F.error("SCHEMA_COLUMN_MISMATCH", "col", "", details={"table": "public.users"}),
        F.error("SCHEMA_PENDING_MIGRATIONS", "p", "", details={"versions": ["1"]}),
    ]
    actions, unhealed = plan_heal(found, manifest, migrations_allowed=False)
    assert actions == [] and [f.code for f in unhealed] == [f.code for f in found]
    actions, _ = plan_heal(found, manifest, migrations_allowed=True)
    assert [a.action for a in actions] == ["heal.apply_migrations"]


def test_an_invalid_index_is_rebuilt_and_a_failed_rebuild_is_dropped(conn: Any) -> None:
    # A real failed CREATE UNIQUE INDEX CONCURRENTLY leaves an INVALID index.
    conn.execute("drop index public.users_email_key")
    conn.execute("insert into public.users (email) values ('Ann@example.com'), ('ann@example.com')")
    with pytest.raises(db.PsycopgError):
        conn.execute(
            "create unique index concurrently users_email_key on public.users (lower(email))"
        )
    assert errors(check_schema(conn)) == [("SCHEMA_INVALID_INDEX", "public.users.users_email_key")]

    report = heal(conn, None, apply=True)
    assert [f.code for f in report.findings if f.is_problem] == [
        "SCHEMA_HEAL_FAILED",
        "SCHEMA_MISSING_INDEX",  # the failed build was dropped, not left INVALID
    ]

    conn.execute("delete from public.users where email = 'Ann@example.com'")
    report = heal(conn, None, apply=True)
    assert [f.code for f in report.findings] == ["SCHEMA_HEALED"]
    assert [f.code for f in check_schema(conn)] == ["SCHEMA_OK"]


def test_partitioned_table_index_is_created_with_its_partitions(conn: Any) -> None:
    conn.execute("drop index public.idx_error_logs_source_occurred_at")
    report = heal(conn, None, apply=True)
    [action] = report.actions
    assert action.sql == [
        "CREATE INDEX idx_error_logs_source_occurred_at ON public.error_logs "
        "USING btree (source, occurred_at)"
    ]
    assert [f.code for f in check_schema(conn)] == ["SCHEMA_OK"]


def test_realtime_membership_is_restored(conn: Any) -> None:
    conn.execute("alter publication supabase_realtime drop table public.quiz_results")
    report = heal(conn, None, apply=True)
    assert [a.sql for a in report.actions] == [
        ['ALTER PUBLICATION "supabase_realtime" ADD TABLE "public"."quiz_results"']
    ]
    assert [f.code for f in check_schema(conn)] == ["SCHEMA_OK"]


def test_pending_migrations_are_applied_where_auto_apply_allows(
    migrated_db: str, tmp_path: Any
) -> None:
    from ops.migrate.revert import migrate_down

    target = DatabaseTarget(migrated_db, False, db.ConnectOptions(), "test")
    config = load_config(None, "dev")
    migrate_down(target, config, to="20260101001200")
    (tmp_path / "prod.toml").write_text('[migrate]\nauto_apply_in = ["dev"]\n')
    prod = load_config(tmp_path / "prod.toml", "prod")
    refused = heal(target, prod, apply=True)
    assert refused.actions == [] and refused.exit_code == 1
    # Nothing else is repaired while migrations are pending: it would collide with them.
    assert {f.code for f in refused.unhealed} == {"SCHEMA_PENDING_MIGRATIONS", "REALTIME_MISSING"}

    report = heal(target, config, apply=True)
    assert report.actions[0].action == "heal.apply_migrations"
    assert report.actions[0].status == "applied"
    assert report.exit_code == 0, report.findings
    with db.connect(migrated_db, autocommit=True) as conn:
        assert [f.code for f in check_schema(conn)] == ["SCHEMA_OK"]


def test_auto_heal_policy_per_environment(conn: Any, tmp_path: Any) -> None:
    (tmp_path / "cfg.toml").write_text('[migrate]\nauto_heal_in = ["staging"]\n')
    conn.execute("alter table public.blogs disable row level security")
    prod = load_config(tmp_path / "cfg.toml", "prod")
    assert errors(check_and_heal(conn, prod)) == [("RLS_DISABLED", "public.blogs")]
    staging = load_config(tmp_path / "cfg.toml", "staging")
    assert [f.code for f in check_and_heal(conn, staging)] == ["SCHEMA_HEALED"]
    assert [f.code for f in check_schema(conn)] == ["SCHEMA_OK"]


def test_must_show_check_heal_check_from_the_command_line(migrated_db: str, cli: Any) -> None:
    env = {"DATABASE_URL": migrated_db}
    with db.connect(migrated_db, autocommit=True) as conn:
        conn.execute(FOUR_DRIFTS)

    checked = cli("migrate", "check", "--json", env=env)
    assert checked.exit_code == 1
    data = json.loads(checked.stdout)
    assert errors_of(data) == FOUR_FINDINGS
    assert data["data"]["catalog_queries"] <= 10
    assert "target: database" in checked.stderr  # said before acting; never the DSN itself

    dry = cli("migrate", "heal", env=env)
    assert dry.exit_code == 1
    assert "would run heal.create_index for public.offers.idx_offers_status" in dry.stdout
    assert "CREATE INDEX CONCURRENTLY idx_offers_status ON public.offers" in dry.stdout
    assert "dry run: nothing was changed" in dry.stdout
    assert cli("migrate", "check", env=env).exit_code == 1

    healed = cli("migrate", "heal", "--apply", "--json", env=env)
    assert healed.exit_code == 0, healed.output
    codes = [f["code"] for f in json.loads(healed.stdout)["findings"]]
    assert codes == ["SCHEMA_HEALED"] * 4

    clean = cli("migrate", "check", env=env)
    assert clean.exit_code == 0, clean.output
    assert "SCHEMA_OK" in clean.stdout

    with db.connect(migrated_db, autocommit=True) as conn:
        conn.execute("alter table public.offers drop column cta_text")
    column = cli("migrate", "heal", "--apply", env=env)
    assert column.exit_code == 1
    assert "SCHEMA_MISSING_COLUMN public.offers.cta_text: runbooks/SCHEMA_MISSING_COLUMN.md" in (
        column.stdout
    )
    still = json.loads(cli("migrate", "check", "--json", env=env).stdout)
    assert errors_of(still) == [("SCHEMA_MISSING_COLUMN", "public.offers.cta_text")]


def errors_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (f["code"], f["subject"])
        for f in data["findings"]
        if f["severity"] in ("error", "critical")
    )


def test_heal_gives_up_on_a_lock_instead_of_queueing_behind_it(
    conn: Any, migrated_db: str, tmp_path: Any
) -> None:
    (tmp_path / "cfg.toml").write_text('[database]\nlock_timeout = "1s"\n')
    config = load_config(tmp_path / "cfg.toml", "dev")
    conn.execute("alter table public.blogs disable row level security")
    conn.execute("set statement_timeout = '42s'")
    reader = db.connect(migrated_db)  # a long transaction that has read blogs
    try:
        reader.execute("select count(*) from public.blogs")
        started = time.monotonic()
        report = heal(conn, config, apply=True)
        assert time.monotonic() - started < 10
    finally:
        reader.close()
    [failed] = [f for f in report.findings if f.code == "SCHEMA_HEAL_FAILED"]
    assert "lock timeout" in failed.message
    # The caller's own session settings are back.
    assert conn.execute("show statement_timeout").fetchone() == {"statement_timeout": "42s"}
    assert [f.code for f in heal(conn, config, apply=True).findings] == ["SCHEMA_HEALED"]


def test_two_heals_at_once_repair_each_thing_once(migrated_db: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    target = DatabaseTarget(migrated_db, False, db.ConnectOptions(), "test")
    with db.connect(migrated_db, autocommit=True) as c:
        c.execute(FOUR_DRIFTS)
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: heal(target, None, apply=True), range(2)))
    assert sorted(len(r.actions) for r in reports) == [0, 4]
    assert all(r.exit_code == 0 for r in reports)
    with db.connect(migrated_db, autocommit=True) as c:
        assert db.run_query(c, "select count(*) as n from public.admin_logs") == [{"n": 4}]


def test_preflight_check_heals_where_allowed_and_never_raises(
    migrated_db: str, tmp_path: Any
) -> None:
    from ops.migrate.heal import preflight_check
    from ops.preflight import PreflightContext

    target = DatabaseTarget(migrated_db, False, db.ConnectOptions(), "test")
    (tmp_path / "cfg.toml").write_text('[migrate]\nauto_heal_in = ["staging"]\n')
    with db.connect(migrated_db, autocommit=True) as conn:
        conn.execute("drop policy own_rows_select on public.user_sessions")

        def run(env: str) -> list[tuple[str, Severity]]:
            ctx = PreflightContext(load_config(tmp_path / "cfg.toml", env), target, conn)
            return [(f.code, f.severity) for f in preflight_check(ctx)]

        assert run("prod") == [("POLICY_MISSING", Severity.ERROR)]
        assert run("staging") == [("SCHEMA_HEALED", Severity.WARNING)]
        assert run("prod") == [("SCHEMA_OK", Severity.OK)]
        conn.close()  # a dead connection becomes a finding, not an exception
        [(code, severity)] = run("prod")
        assert (code, severity) == ("SCHEMA_CHECK_FAILED", Severity.ERROR)


def test_reserved_words_are_quoted_a_policy_on_a_table_named_user_heals(fresh_db: str) -> None:
    from ops.migrate.manifest import manifest_of

    with db.connect(fresh_db, autocommit=True) as conn:
        conn.execute(
            """
            create table public."user" (id int primary key, "select" text);
            alter table public."user" enable row level security;
            alter table public."user" force row level security;
            create policy "order" on public."user" for select to public
                using ("select" = current_user);
            create publication supabase_realtime for table public."user";
            """
        )
        manifest = manifest_of(conn)
        assert "order" in manifest["tables"]["public.user"]["policies"]
        conn.execute(
            """
            drop policy "order" on public."user";
            alter table public."user" disable row level security;
            alter publication supabase_realtime drop table public."user";
            """
        )
        assert errors(check_schema(conn, None, manifest)) == [
            ("POLICY_MISSING", "public.user.order"),
            ("REALTIME_MISSING", "public.user"),
            ("RLS_DISABLED", "public.user"),
        ]

        report = heal(conn, None, apply=True, manifest=manifest)

        assert report.exit_code == 0, report.findings
        assert sorted(a.action for a in report.actions) == [
            "heal.add_to_publication",
            "heal.create_policy",
            "heal.enable_rls",
        ]
        policy = next(a for a in report.actions if a.action == "heal.create_policy")
        assert policy.sql == [
            'CREATE POLICY "order" ON "public"."user" AS PERMISSIVE FOR SELECT TO PUBLIC '
            'USING (("select" = CURRENT_USER))'
        ]
        assert [f.code for f in check_schema(conn, None, manifest)] == ["SCHEMA_OK"]
        forced = db.run_query(
            conn,
            "select relforcerowsecurity as f from pg_class where oid = 'public.user'::regclass",
        )
        assert forced == [{"f": True}]
