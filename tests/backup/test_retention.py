"""The retention policy, pure: table tests for each rule, then invariants over many catalogs.

No hypothesis in this project: the generated catalogs come from a seeded
``random.Random``, so a failure names its seed and reproduces.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from ops.backup.manifest import STATUS_COMPLETE, STATUS_FAILED, BackupManifest
from ops.backup.retention import (
    INCOMPLETE_GRACE,
    RETENTION_FIELDS,
    RetentionDecision,
    RetentionPolicy,
    backup_id_time,
    plan_retention,
)

NOW = datetime(2026, 12, 2, 23, 30, tzinfo=UTC)
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def _id(t: datetime, suffix: str = "aaaaaa") -> str:
    return f"{t.strftime('%Y%m%dT%H%M%SZ')}-{suffix}"


def manifest(
    started: datetime,
    *,
    status: str = STATUS_COMPLETE,
    verified: bool = False,
    backup_id: str | None = None,
) -> BackupManifest:
    """A manifest as `backup run` writes it, with only what retention reads varied."""
    return BackupManifest(
        backup_id=backup_id or _id(started),
        status=status,
        database={"name": "postgres"},
        pg_dump_version="18.1",
        format="custom",
        compression="zstd",
        zstd_level=3,
        recipients=[],
        started_at=started.isoformat(timespec="microseconds"),
        finished_at=(started + timedelta(minutes=1)).isoformat(timespec="microseconds"),
        seconds=60.0,
        schemas=["public"],
        excluded_schemas=[],
        tables={"public.offers": 3},
        migration_version=None,
        empire_ops_version="0",
        verified_at=(started + timedelta(hours=1)).isoformat() if verified else None,
        error="pg_dump exited 1" if status == STATUS_FAILED else None,
    )


def plan(
    manifests: Sequence[BackupManifest],
    policy: RetentionPolicy,
    *,
    incomplete: Sequence[tuple[str, datetime]] = (),
    unreadable: Sequence[tuple[str, datetime]] = (),
    now: datetime = NOW,
) -> dict[str, RetentionDecision]:
    decisions = plan_retention(manifests, incomplete, policy, now, unreadable=unreadable)
    return {d.backup_id: d for d in decisions}


def kept(decisions: dict[str, RetentionDecision]) -> set[str]:
    return {i for i, d in decisions.items() if d.keep}


def daily_at(days_ago: int, hour: int = 2) -> datetime:
    return (NOW - timedelta(days=days_ago)).replace(hour=hour, minute=0, second=0, microsecond=0)


ONLY_LAST_2 = RetentionPolicy(keep_last=2, keep_daily=0, keep_weekly=0, keep_monthly=0)


# -- the policy object and the settings ---------------------------------------------------


def test_the_settings_fields_have_the_documented_defaults() -> None:
    assert {k: v[1] for k, v in RETENTION_FIELDS.items()} == {
        "keep_last": 7, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6, "max_age": "",
    }  # fmt: skip
    assert all(doc for _, _, doc in RETENTION_FIELDS.values())
    default = RetentionPolicy.from_settings({})
    assert default == RetentionPolicy(7, 7, 4, 6, None)
    policy = RetentionPolicy.from_settings({"keep_last": 3, "max_age": "90d"})
    assert policy.keep_last == 3 and policy.max_age == timedelta(days=90)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"keep_last": -1}, "keep_last must be"),
        ({"keep_daily": True}, "keep_daily must be"),
        ({"keep_last": 0, "keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}, "keeps nothing"),
        ({"max_age": timedelta(0)}, "positive duration"),
    ],
)
def test_a_policy_that_makes_no_sense_is_refused(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        RetentionPolicy(**kwargs)


def test_a_bad_max_age_setting_is_refused_with_the_accepted_units() -> None:
    with pytest.raises(ValueError, match="not a duration"):
        RetentionPolicy.from_settings({"max_age": "ninety days"})


def test_backup_id_time_reads_the_id_and_refuses_anything_else() -> None:
    assert backup_id_time("20261202T231500Z-k3x9q2") == datetime(2026, 12, 2, 23, 15, tzinfo=UTC)
    with pytest.raises(ValueError):
        backup_id_time("latest")


# -- one rule at a time --------------------------------------------------------------------


def test_an_empty_catalog_gives_an_empty_plan() -> None:
    assert plan_retention([], [], RetentionPolicy(), NOW) == []


def test_keep_last_keeps_the_newest_n_complete_and_deletes_the_rest() -> None:
    ms = [manifest(daily_at(d)) for d in range(5)]
    decisions = plan(ms, ONLY_LAST_2)
    assert kept(decisions) == {ms[0].backup_id, ms[1].backup_id}
    assert "keep_last" in decisions[ms[1].backup_id].rules
    assert decisions[ms[4].backup_id].rules == ("no_rule",)
    assert decisions[ms[4].backup_id].action == "delete"


def test_every_backup_gets_a_decision_with_a_reason_in_start_time_order() -> None:
    ms = [manifest(daily_at(d)) for d in (3, 0, 5, 1)]
    decisions = plan_retention(ms, [(_id(daily_at(9), "zzzzzz"), daily_at(9))], ONLY_LAST_2, NOW)
    starts = [d.started_at for d in decisions]
    assert starts == sorted(starts) and len(decisions) == 5
    assert all(d.reason for d in decisions)


def test_daily_keeps_the_newest_backup_of_each_of_the_last_n_days_with_one() -> None:
    # Three backups a day for five days, then a gap of ten days, then three more days.
    starts = [daily_at(d, h) for d in (0, 1, 2, 3, 4, 15, 16, 17) for h in (1, 9, 17)]
    ms = [manifest(t) for t in starts]
    policy = RetentionPolicy(keep_last=1, keep_daily=7, keep_weekly=0, keep_monthly=0)
    decisions = plan(ms, policy)
    # the 17:00 backup of the newest 7 days *that have backups* (the gap does not count)
    expected = {_id(daily_at(d, 17)) for d in (0, 1, 2, 3, 4, 15, 16)}
    assert kept(decisions) == expected
    assert decisions[_id(daily_at(16, 17))].rules == ("daily",)
    assert "day 2026-11-16" in decisions[_id(daily_at(16, 17))].reason


def test_weekly_uses_iso_weeks_in_utc_including_the_iso_year() -> None:
    # 2026-12-31 is a Thursday of ISO week 2026-W53; 2027-01-01 is in the same week.
    a = manifest(datetime(2026, 12, 31, 10, tzinfo=UTC))
    b = manifest(datetime(2027, 1, 1, 10, tzinfo=UTC))
    c = manifest(datetime(2027, 1, 4, 10, tzinfo=UTC))  # Monday: 2027-W01
    policy = RetentionPolicy(keep_last=0, keep_daily=0, keep_weekly=2, keep_monthly=0)
    decisions = plan([a, b, c], policy, now=datetime(2027, 1, 5, tzinfo=UTC))
    assert kept(decisions) == {b.backup_id, c.backup_id}
    assert "ISO week 2026-W53" in decisions[b.backup_id].reason


def test_a_time_with_an_offset_is_bucketed_by_its_utc_day() -> None:
    from datetime import timezone

    plus2 = timezone(timedelta(hours=2))
    late = manifest(datetime(2026, 12, 1, 23, 30, tzinfo=UTC))
    # 01:00 at +02:00 on the 2nd is 23:00 UTC on the 1st: the same UTC day, and older.
    early = manifest(datetime(2026, 12, 2, 1, 0, tzinfo=plus2), backup_id=_id(daily_at(5)))
    policy = RetentionPolicy(keep_last=0, keep_daily=3, keep_weekly=0, keep_monthly=0)
    assert kept(plan([late, early], policy)) == {late.backup_id}


def test_monthly_keeps_the_newest_of_each_month() -> None:
    ms = [manifest(datetime(2026, m, d, tzinfo=UTC)) for m in (8, 9, 10, 11) for d in (3, 20)]
    policy = RetentionPolicy(keep_last=0, keep_daily=0, keep_weekly=0, keep_monthly=3)
    decisions = plan(ms, policy)
    assert kept(decisions) == {_id(datetime(2026, m, 20, tzinfo=UTC)) for m in (9, 10, 11)}


def test_the_wal_g_bug_ids_that_sort_against_their_times_do_not_decide() -> None:
    # Ids whose names sort the other way from their start times (a clock set wrong when the
    # id was made, or ids from another tool): order by name and the newest would be deleted.
    times = [daily_at(d) for d in (4, 3, 2, 1, 0)]  # oldest to newest
    names = sorted((_id(daily_at(30 - i), "aaaaaa") for i in range(5)), reverse=True)
    ms = [manifest(t, backup_id=n) for t, n in zip(times, names, strict=True)]
    assert sorted(m.backup_id for m in ms)[-1] == ms[0].backup_id  # by name, the oldest is last
    decisions = plan_retention(ms, [], ONLY_LAST_2, NOW)
    assert [d.backup_id for d in decisions] == [m.backup_id for m in ms]  # by time, not name
    assert kept({d.backup_id: d for d in decisions}) == {ms[3].backup_id, ms[4].backup_id}


def test_max_age_deletes_old_backups_even_those_keep_last_would_keep() -> None:
    ms = [manifest(daily_at(d)) for d in (0, 10, 40, 50)]
    policy = RetentionPolicy(keep_last=4, keep_daily=0, keep_weekly=0, keep_monthly=0,
                             max_age=timedelta(days=30))  # fmt: skip
    decisions = plan(ms, policy)
    assert kept(decisions) == {ms[0].backup_id, ms[1].backup_id}
    old = decisions[ms[3].backup_id]
    assert old.rules == ("max_age",) and "max_age overrides" in old.reason


def test_a_tier_keeps_a_backup_over_max_age() -> None:
    ms = [manifest(datetime(2026, m, 15, tzinfo=UTC)) for m in (7, 9, 11)] + [manifest(daily_at(0))]
    policy = RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=3,
                             max_age=timedelta(days=30))  # fmt: skip
    decisions = plan(ms, policy)
    # December (today), November and September are the 3 newest months with a backup
    assert kept(decisions) == {ms[3].backup_id, ms[2].backup_id, ms[1].backup_id}
    assert "kept over max_age" in decisions[ms[1].backup_id].reason
    assert decisions[ms[0].backup_id].rules == ("max_age",)


def test_max_age_never_removes_the_newest_complete_backup() -> None:
    # Backups stopped 100 days ago: age alone must not empty the repository.
    ms = [manifest(daily_at(d)) for d in (100, 101)]
    policy = RetentionPolicy(keep_last=5, keep_daily=0, keep_weekly=0, keep_monthly=0,
                             max_age=timedelta(days=30))  # fmt: skip
    decisions = plan(ms, policy)
    assert kept(decisions) == {ms[0].backup_id}
    assert decisions[ms[0].backup_id].rules[0] == "newest_complete"


def test_the_newest_verified_backup_is_never_deleted() -> None:
    verified = manifest(daily_at(60), verified=True)
    newer = [manifest(daily_at(d)) for d in (0, 1, 2)]
    decisions = plan([verified, *newer], ONLY_LAST_2)
    assert decisions[verified.backup_id].keep
    assert decisions[verified.backup_id].rules[0] == "newest_verified"
    assert not decisions[newer[2].backup_id].keep
    with_age = RetentionPolicy(keep_last=2, keep_daily=0, keep_weekly=0, keep_monthly=0,
                               max_age=timedelta(days=30))  # fmt: skip
    assert plan([verified, *newer], with_age)[verified.backup_id].keep


def test_only_the_newest_verified_one_is_protected() -> None:
    old = manifest(daily_at(60), verified=True)
    mid = manifest(daily_at(30), verified=True)
    newer = [manifest(daily_at(d)) for d in (0, 1)]
    decisions = plan([old, mid, *newer], ONLY_LAST_2)
    assert decisions[mid.backup_id].keep and not decisions[old.backup_id].keep


@pytest.mark.parametrize("newest", ["failed", "incomplete", "unreadable"])
def test_nothing_is_deleted_while_the_newest_backup_is_not_complete(newest: str) -> None:
    ms = [manifest(daily_at(d)) for d in range(1, 20)]
    stale = [(_id(daily_at(30), "zzzzzz"), daily_at(30))]
    top = NOW - timedelta(hours=1)
    kwargs: dict = {"incomplete": stale}
    if newest == "failed":
        ms.append(manifest(top, status=STATUS_FAILED))
    elif newest == "incomplete":
        kwargs["incomplete"] = [*stale, (_id(top), top)]
    else:
        kwargs["unreadable"] = [(_id(top), top)]
    decisions = plan(ms, ONLY_LAST_2, **kwargs)
    assert all(d.keep and d.held for d in decisions.values())
    assert all(f"is {newest}, so nothing is deleted" in d.reason for d in decisions.values())
    # and the reason still tells what would happen once the hold is lifted
    assert "otherwise: delete" in decisions[ms[-2 if newest == "failed" else -1].backup_id].reason


def test_incomplete_backups_older_than_a_day_are_deleted_younger_kept() -> None:
    ms = [manifest(daily_at(0))]
    old_t, young_t = NOW - INCOMPLETE_GRACE - timedelta(minutes=1), daily_at(0) - timedelta(hours=2)
    old, young = _id(old_t, "oooooo"), _id(young_t, "yyyyyy")
    decisions = plan(ms, ONLY_LAST_2, incomplete=[(old, old_t), (young, young_t)])
    assert not decisions[old].keep and "incomplete" in decisions[old].reason
    assert decisions[old].rules == ("incomplete_stale",)
    assert decisions[young].keep and "may still be writing" in decisions[young].reason


def test_unreadable_backups_are_kept() -> None:
    ms = [manifest(daily_at(0))]
    bad_t = daily_at(90)
    decisions = plan(ms, ONLY_LAST_2, unreadable=[(_id(bad_t), bad_t)])
    assert decisions[_id(bad_t)].keep and decisions[_id(bad_t)].rules == ("unreadable",)


def test_a_failed_backup_never_satisfies_a_tier() -> None:
    # Each day: a complete backup at 02:00 and a failed retry at 14:00 (newer).
    complete = [manifest(daily_at(d, 2)) for d in range(1, 6)]
    failed = [manifest(daily_at(d, 14), status=STATUS_FAILED) for d in range(1, 6)]
    newest = manifest(daily_at(0, 2))
    policy = RetentionPolicy(keep_last=0, keep_daily=3, keep_weekly=0, keep_monthly=0)
    decisions = plan([*complete, *failed, newest], policy)
    # the three newest days each keep their complete backup, though a failure is newer
    assert {newest.backup_id, complete[0].backup_id, complete[1].backup_id} <= kept(decisions)
    assert not decisions[complete[2].backup_id].keep
    # the failed runs of days the tier reaches are kept for diagnosis, older ones are not
    assert decisions[failed[0].backup_id].keep and decisions[failed[1].backup_id].keep
    assert "never counts for the tier" in decisions[failed[0].backup_id].reason
    assert not decisions[failed[3].backup_id].keep


def test_a_day_with_only_a_failure_does_not_use_up_a_daily_slot() -> None:
    ms = [manifest(daily_at(0)), manifest(daily_at(1), status=STATUS_FAILED), manifest(daily_at(2))]
    policy = RetentionPolicy(keep_last=0, keep_daily=2, keep_weekly=0, keep_monthly=0)
    assert kept(plan(ms, policy)) == {m.backup_id for m in ms}


def test_keep_last_counts_and_keeps_complete_backups_only() -> None:
    ms = [manifest(daily_at(d), status=STATUS_FAILED) for d in (1, 2)]
    ms += [manifest(daily_at(d)) for d in (0, 3, 4)]
    decisions = plan(ms, ONLY_LAST_2)
    assert kept(decisions) == {_id(daily_at(0)), _id(daily_at(3))}


def test_max_age_removes_a_failed_backup_a_tier_would_keep() -> None:
    ms = [manifest(daily_at(0)), manifest(daily_at(40), status=STATUS_FAILED)]
    policy = RetentionPolicy(keep_last=0, keep_daily=5, keep_weekly=0, keep_monthly=0,
                             max_age=timedelta(days=30))  # fmt: skip
    decisions = plan(ms, policy)
    assert decisions[ms[1].backup_id].rules == ("max_age",)


# -- invariants over generated catalogs ----------------------------------------------------


def _random_catalog(
    rng: random.Random,
) -> tuple[list[BackupManifest], list[tuple[str, datetime]], list[tuple[str, datetime]]]:
    """Up to ~80 backups over up to a year, statuses mixed, ids unrelated to their times."""
    n = rng.randint(0, 80)
    span = rng.choice([2, 10, 40, 400])
    manifests, incomplete, unreadable = [], [], []
    used: set[str] = set()
    for _ in range(n):
        t = NOW - timedelta(seconds=rng.randint(0, span * 86400))
        # Ids deliberately drawn from another time, so name order is not time order.
        while True:
            suffix = "".join(rng.choice(_ALPHABET) for _ in range(6))
            fake = NOW - timedelta(seconds=rng.randint(0, 400 * 86400))
            backup_id = _id(fake, suffix)
            if backup_id not in used:
                used.add(backup_id)
                break
        kind = rng.choices(["complete", "failed", "incomplete", "unreadable"], [80, 10, 7, 3])[0]
        if kind == "incomplete":
            incomplete.append((backup_id, t))
        elif kind == "unreadable":
            unreadable.append((backup_id, t))
        else:
            status = STATUS_COMPLETE if kind == "complete" else STATUS_FAILED
            verified = kind == "complete" and rng.random() < 0.2
            manifests.append(manifest(t, status=status, verified=verified, backup_id=backup_id))
    return manifests, incomplete, unreadable


def _random_policy(rng: random.Random) -> RetentionPolicy:
    while True:
        counts = [rng.choice([0, 0, 1, 2, 3, 7, 30]) for _ in range(4)]
        if any(counts):
            break
    max_age = rng.choice([None, None, timedelta(days=rng.choice([1, 7, 30, 90]))])
    return RetentionPolicy(*counts, max_age=max_age)


SEEDS = range(400)


@pytest.mark.parametrize("seed", SEEDS)
def test_invariants_hold_on_generated_catalogs(seed: int) -> None:
    rng = random.Random(seed)
    manifests, incomplete, unreadable = _random_catalog(rng)
    policy = _random_policy(rng)
    decisions = plan_retention(manifests, incomplete, policy, NOW, unreadable=unreadable)
    by_id = {d.backup_id: d for d in decisions}
    every = (
        [(m.backup_id, m.started) for m in manifests] + list(incomplete) + list(unreadable)
    )  # fmt: skip

    # one decision per backup, each with a reason, ordered by start time
    assert sorted(by_id) == sorted(i for i, _ in every) and len(decisions) == len(every)
    assert all(d.reason and d.rules for d in decisions)
    assert [d.started_at for d in decisions] == sorted(t for _, t in every)
    if not every:
        return

    newest_id, _ = max(every, key=lambda x: (x[1], x[0]))
    complete = sorted((m for m in manifests if m.complete), key=lambda m: m.started)
    if by_id[newest_id].status != "complete":
        assert all(d.keep and d.held for d in decisions)  # held: nothing deleted
        return
    assert not any(d.held for d in decisions)

    # the newest complete and the newest verified backups are kept
    assert by_id[complete[-1].backup_id].keep
    verified = [m for m in complete if m.verified_at]
    if verified:
        assert by_id[verified[-1].backup_id].keep
    # unreadable ones are kept; incomplete ones are deleted exactly when older than a day
    assert all(by_id[i].keep for i, _ in unreadable)
    for i, t in incomplete:
        assert by_id[i].keep == (NOW - t <= INCOMPLETE_GRACE), (seed, i)
    # keep_last keeps the newest N complete ones, unless older than max_age
    for m in complete[-policy.keep_last :] if policy.keep_last else []:
        if policy.max_age is None or NOW - m.started <= policy.max_age:
            assert by_id[m.backup_id].keep, (seed, m.backup_id)
    # a failed backup is never kept by keep_last
    assert not any("keep_last" in by_id[m.backup_id].rules for m in manifests if not m.complete)
    # each of the last N daily periods with a complete backup keeps its newest complete one
    if policy.keep_daily:
        newest_per_day: dict[str, BackupManifest] = {}
        for m in complete:
            newest_per_day[m.started.strftime("%Y-%m-%d")] = m  # oldest first: the last wins
        for day in sorted(newest_per_day)[-policy.keep_daily :]:
            assert by_id[newest_per_day[day].backup_id].keep, (seed, day)
    # nothing younger than max_age is deleted for age; what max_age deletes is older
    for d in decisions:
        if "max_age" in d.rules:
            assert policy.max_age is not None and NOW - d.started_at > policy.max_age
    # deleting what the plan deletes and planning again deletes nothing more
    gone = {d.backup_id for d in decisions if not d.keep}
    again = plan_retention(
        [m for m in manifests if m.backup_id not in gone],
        [x for x in incomplete if x[0] not in gone],
        policy, NOW, unreadable=unreadable,
    )  # fmt: skip
    assert all(d.keep for d in again), (seed, [d for d in again if not d.keep])


@pytest.mark.parametrize("seed", range(50))
def test_the_plan_depends_on_times_not_on_input_order_or_names(seed: int) -> None:
    rng = random.Random(1000 + seed)
    manifests, incomplete, unreadable = _random_catalog(rng)
    policy = _random_policy(rng)
    first = plan_retention(manifests, incomplete, policy, NOW, unreadable=unreadable)
    shuffled = manifests[:]
    rng.shuffle(shuffled)
    second = plan_retention(shuffled, incomplete[::-1], policy, NOW, unreadable=unreadable)
    assert first == second
    # renaming every backup (ids from unrelated times) keeps every decision at its place
    renamed = {
        m.backup_id: _id(NOW - timedelta(days=rng.randint(0, 999)), f"r{i:05d}")
        for i, m in enumerate(manifests)
    }
    moved = [
        manifest(m.started, status=m.status, verified=bool(m.verified_at),
                 backup_id=renamed[m.backup_id])
        for m in manifests
    ]  # fmt: skip
    third = plan_retention(moved, incomplete, policy, NOW, unreadable=unreadable)
    # equal start times are ordered by id, so compare where start times are unique
    assert [(d.started_at, d.keep) for d in first if _unique(first, d)] == [
        (d.started_at, d.keep) for d in third if _unique(third, d)
    ]


def _unique(decisions: list[RetentionDecision], d: RetentionDecision) -> bool:
    return sum(x.started_at == d.started_at for x in decisions) == 1
