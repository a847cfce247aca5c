"""The scheduler as real processes: two hosts on one database, lost connections, SIGTERM, faults."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from pathlib import Path

from tests.mailservers import SmtpServer
from tests.scheduler.conftest import ALL_OFF, query

FAST = '[scheduler]\nheartbeat_every = "1s"\nshutdown_grace = "2s"\n' + ALL_OFF


def test_two_schedulers_run_every_tick_exactly_once_between_them(hosts, migrated_db: str) -> None:
    config = FAST.replace(
        "[scheduler.jobs.partitions]\nenabled = false\n",
        '[scheduler.jobs.partitions]\nevery = "1s"\n',
    )
    a, b = hosts("a"), hosts("b")
    for host in (a, b):
        host.configure(config)
        host.start()
    a.wait_for_log("scheduler "), b.wait_for_log("scheduler ")
    time.sleep(25)
    assert a.stop() == 0 and b.stop() == 0

    ticks = [
        row[0]
        for row in query(
            migrated_db,
            "select extract(epoch from scheduled_for)::bigint from ops.scheduler_runs "
            "where job = 'partitions' and outcome = 'ok' order by 1",
        )
    ]
    assert len(ticks) >= 20
    # Every second between the first and the last tick ran, and only once.
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))
    # The job history of both hosts: one run per tick in all, the other host skipped it.
    ran = [r for h in (a, b) for r in h.history() if r["outcome"] == "ok"]
    skipped = [r for h in (a, b) for r in h.history() if r["outcome"] == "skipped"]
    assert len(ran) == len(ticks)
    assert len(skipped) >= len(ticks) - 2  # each tick fired on both hosts
    # admin_logs holds one row per run, naming its tick.
    logged = Counter(
        json.loads(r[0])["scheduled_for"]
        for r in query(
            migrated_db,
            "select after::text from public.admin_logs where action = 'scheduler.job' "
            "and subject = 'partitions'",
        )
    )
    assert len(logged) == len(ticks) and set(logged.values()) == {1}
    # Both stopped cleanly: their heartbeats say so, and no SCHEDULER_DOWN follows.
    states = query(migrated_db, "select state from ops.scheduler_heartbeats")
    assert sorted(s for (s,) in states) == ["stopped", "stopped"]


def _overlaps(runs: list[dict[str, object]]) -> list[tuple[object, object]]:
    spans = sorted((float(r["started_at"]), float(r["ended_at"] or 0)) for r in runs)  # type: ignore[arg-type]
    return [(x, y) for x, y in itertools.pairwise(spans) if y[0] < x[1]]


def test_a_scheduler_that_loses_its_connection_mid_job_hands_the_next_tick_over(
    hosts, migrated_db: str
) -> None:
    config = FAST + '[scheduler.jobs.slow]\nevery = "3s"\nsql = "select pg_sleep(2.5)"\n'
    a, b = hosts("a"), hosts("b")
    for host in (a, b):
        host.configure(config)
        host.start()
    # Wait for a run in progress, then cut the connection that holds its lock.
    deadline = time.monotonic() + 30
    holder = []
    while time.monotonic() < deadline and not holder:
        holder = query(
            migrated_db,
            "select l.pid from pg_locks l join pg_stat_activity s on s.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted and s.datname = current_database() "
            "and exists (select 1 from pg_stat_activity q where q.query like 'select pg_sleep%%' "
            "and q.state = 'active' and q.datname = current_database())",
        )
        time.sleep(0.05)
    assert holder, "no run of the slow job was seen"
    query(migrated_db, "select pg_terminate_backend(%s)", holder[0])
    time.sleep(10)
    assert a.stop() == 0 and b.stop() == 0

    runs = [r for h in (a, b) for r in h.history() if r["job"] == "slow"]
    worked = [r for r in runs if r["outcome"] in ("ok", "lock_lost", "failed")]
    lost = [r for r in runs if r["outcome"] == "lock_lost"]
    assert len(lost) == 1
    assert "JOB_LOCK_LOST" in str(lost[0]["findings"])
    # The run that lost its lock was stopped at once, not left to sleep on.
    assert float(lost[0]["ended_at"]) - float(lost[0]["started_at"]) < 2.5  # type: ignore[arg-type]
    # Later ticks ran (on one host or the other) and no two runs ever overlapped.
    later = [r for r in worked if float(r["started_at"]) > float(lost[0]["ended_at"])]  # type: ignore[arg-type]
    assert later and all(r["outcome"] == "ok" for r in later)
    assert _overlaps(worked) == []
    # The host that lost its lock stopped that job only: its scheduler kept ticking.
    loser = next(h for h in (a, b) if any(r["outcome"] == "lock_lost" for r in h.history()))
    after = [r for r in loser.history() if float(r["started_at"]) > float(lost[0]["ended_at"])]  # type: ignore[arg-type]
    assert after, "the scheduler that lost a lock ran nothing afterwards"


def test_a_job_that_fails_alerts_once_and_the_scheduler_carries_on(
    hosts, migrated_db: str, smtp: SmtpServer
) -> None:
    host = hosts("a")
    host.env |= smtp.env()
    host.configure(
        FAST + '[scheduler.jobs.broken]\nevery = "1s"\nsql = "select 1/0"\n'
        '[alerts.email]\ntls = "none"\n'
    )
    host.start()
    host.wait_for_log("job broken failed")
    time.sleep(4)
    assert host.proc is not None and host.proc.poll() is None  # still running
    assert host.stop() == 0
    failed = [r for r in host.history() if r["job"] == "broken"]
    assert len(failed) >= 4 and all(r["outcome"] == "failed" for r in failed)
    (mail,) = smtp.received  # one alert, however many failed runs
    assert "JOB_FAILED: broken" in str(mail.message["Subject"])
    assert "division by zero" in mail.part("plain")
    errors = query(
        migrated_db,
        "select count(*) from public.error_logs where source = 'empire-ops:scheduler'",
    )
    assert errors[0][0] == len(failed)


def test_sigterm_during_a_backup_leaves_no_partial_backup_and_exits_0(
    hosts, migrated_db: str, tmp_path: Path
) -> None:
    from ops.backup.tools import find_tool

    real = find_tool("pg_dump", server_major=18).path
    marker = tmp_path / "pg_dump-started"
    slow = tmp_path / "slow_pg_dump"
    # A pg_dump that takes its time, as a large database's does.
    slow.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = "--version" ] && exec {real} --version\n'
        f"touch {marker}\n"
        "exec python3 -c 'import os, sys, time; time.sleep(60); "
        f'os.execv(sys.argv[1], sys.argv[1:])\' {real} "$@"\n'
    )
    slow.chmod(0o755)
    host = hosts("a")
    host.configure(
        FAST.replace(
            "[scheduler.jobs.backup]\nenabled = false\n", '[scheduler.jobs.backup]\nevery = "2s"\n'
        )
        + f'[backup]\npg_dump = "{slow}"\n'
    )
    host.start()
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), host.log.read_text()
    started = time.monotonic()
    assert host.stop() == 0
    assert time.monotonic() - started < 20  # grace 2 s, then the backup is stopped
    # The stopped backup is on record as failed (its manifest says so); nothing of it
    # is listed as a backup to restore from.
    listed = json.loads(host.run("backup", "list", "--json").stdout)["data"]["repositories"]
    assert [b["status"] for b in listed["local"]["backups"]] == ["failed"]
    assert listed["local"]["incomplete"] == []
    refused = host.run("restore", "latest", "--target-db", "nowhere", "--create")
    assert refused.returncode == 2 and "no complete backup" in refused.stderr, refused.stderr
    (run,) = [r for r in host.history() if r["job"] == "backup"]
    assert run["outcome"] in ("aborted", "failed")
    assert "still running after the grace period" in host.log.read_text()


def test_the_state_folder_read_only_is_a_clear_error(hosts, tmp_path: Path) -> None:
    from tests.helpers import tmpfs

    host = hosts("a")
    with tmpfs("ro,size=1m") as mount:
        host.configure(f'[project]\nstate_dir = "{mount / "state"}"\n' + ALL_OFF)
        for args in (("jobs", "run", "secrets"), ("scheduler", "run"), ("alerts", "status")):
            done = host.run(*args)
            assert done.returncode == 2, (args, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr and "internal error" not in done.stderr
            assert "read-only" in done.stderr and "hint:" in done.stderr


def test_jobs_run_from_cron_has_the_same_lock_and_skips_a_tick_that_ran(
    hosts, migrated_db: str
) -> None:
    a, b = hosts("a"), hosts("b")
    for host in (a, b):
        host.configure(ALL_OFF)
    first = a.run("jobs", "run", "partitions", "--json")
    second = b.run("jobs", "run", "partitions", "--json")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    outcomes = {json.loads(p.stdout)["data"]["outcome"] for p in (first, second)}
    # Unless the minute turned between the two, the second host skips the tick.
    assert outcomes in ({"ok", "skipped"}, {"ok"})
    unknown = a.run("jobs", "run", "nosuchjob")
    assert unknown.returncode == 2 and "built-in jobs: secrets" in unknown.stderr
    assert os.path.exists(a.root / ".empire" / "state.sqlite3")


def test_a_stale_heartbeat_is_scheduler_down_alerted_then_resolved(
    hosts, migrated_db: str, smtp: SmtpServer
) -> None:
    host = hosts("a")
    host.env |= smtp.env()
    host.configure(ALL_OFF + '[alerts.email]\ntls = "none"\n')
    assert host.run("jobs", "run", "partitions").returncode == 0  # creates the ops tables
    query(
        migrated_db,
        "insert into ops.scheduler_heartbeats values ('db-2:4242:x', 'db-2', 4242, "
        "now() - interval '1 hour', now() - interval '20 minutes', 'running', '{}')",
    )
    down = host.run("jobs", "run", "alerts", "--json")
    assert down.returncode == 1, down.stdout
    assert [f["code"] for f in json.loads(down.stdout)["findings"]] == ["SCHEDULER_DOWN"]
    status = host.run("scheduler", "status", "--json")
    assert status.returncode == 1 and "db-2" in status.stdout
    (mail,) = smtp.received
    assert "SCHEDULER_DOWN: db-2 pid 4242" in str(mail.message["Subject"])
    # It comes back and stops cleanly: resolved, once.
    query(migrated_db, "update ops.scheduler_heartbeats set state = 'stopped', last_seen = now()")
    assert host.run("jobs", "run", "alerts").returncode == 0
    assert host.run("jobs", "run", "alerts").returncode == 0
    assert [str(m.message["Subject"]).split()[2] for m in smtp.received] == ["ERROR", "RESOLVED"]


def test_old_history_is_pruned_but_open_findings_and_the_spool_stay(tmp_path: Path) -> None:
    from ops.alerts.store import StateStore

    with StateStore(tmp_path / "state.sqlite3") as store:
        old = store.job_started("backup", "h", 1, 1000.0)
        store.job_ended(old, ended_at=1001.0, outcome="ok", exit_code=0, findings=[])
        new = store.job_started("backup", "h", 1, 5000.0)
        store.job_ended(new, ended_at=5001.0, outcome="ok", exit_code=0, findings=[])
        for mid, state_ in (("<a>", "sent"), ("<b>", "pending")):
            store.enqueue({"message_id": mid, "channel": "email", "kind": "alert",
                           "severity": "error", "title": "t", "body_text": "", "body_html": "",
                           "payload": "{}", "state": state_, "created_at": 1000.0,
                           "next_attempt_at": 1000.0})  # fmt: skip
        counts = store.prune(before=2000.0)
        assert counts == {"job_history": 1, "messages": 1, "heartbeats": 0}
        assert [r["id"] for r in store.job_runs()] == [new]
        assert [m["message_id"] for m in store.messages()] == ["<b>"]


def test_a_scheduler_killed_then_restarted_is_not_down_and_a_retired_host_is_forgotten(
    hosts, migrated_db: str
) -> None:
    host = hosts("a")
    host.configure(FAST)
    host.start()
    host.wait_for_log("scheduler ")
    time.sleep(1.5)
    assert host.proc is not None
    host.proc.kill()  # no clean stop: its heartbeat says running
    host.proc.wait(10)
    query(migrated_db, "update ops.scheduler_heartbeats set last_seen = now() - interval '1 hour'")
    assert host.run("jobs", "run", "alerts").returncode == 1  # SCHEDULER_DOWN
    host.start()  # restarted on the same host: the dead one is marked gone
    host.wait_for_log("earlier schedulers on this host are dead")
    assert host.stop() == 0
    assert host.run("jobs", "run", "alerts").returncode == 0
    states = sorted(s for (s,) in query(migrated_db, "select state from ops.scheduler_heartbeats"))
    assert states == ["gone", "stopped"]
    # A host taken out of service, its last heartbeat stale: forget it.
    query(
        migrated_db,
        "insert into ops.scheduler_heartbeats values ('old:1:x', 'old-host', 1, now(), "
        "now() - interval '1 hour', 'running', '{}')",
    )
    assert host.run("jobs", "run", "alerts").returncode == 1
    forgot = host.run("scheduler", "forget", "old-host")
    assert forgot.returncode == 0 and "forgot 1 scheduler(s) of old-host" in forgot.stdout
    assert host.run("jobs", "run", "alerts").returncode == 0


def test_sigterm_to_jobs_run_stops_its_query_and_records_it_aborted(
    hosts, migrated_db: str
) -> None:
    import signal
    import subprocess
    import sys

    host = hosts("a")
    host.configure(
        ALL_OFF + '[scheduler.jobs.slow]\ncron = "0 3 * * *"\nsql = "select pg_sleep(60)"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops", "jobs", "run", "slow"],
        cwd=host.root, env=host.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    sleeping = "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' " \
               "and state = 'active'"  # fmt: skip
    deadline = time.monotonic() + 30
    while query(migrated_db, sleeping)[0][0] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1, err
    assert "slow: aborted" in out
    assert query(migrated_db, sleeping)[0][0] == 0  # its statement was cancelled in the server
    (run,) = host.history()
    assert run["outcome"] == "aborted" and run["ended_at"] is not None


def test_a_job_that_cannot_reach_its_database_or_lock_is_not_run(hosts) -> None:
    from ops.embedded import free_port

    host = hosts("a")
    host.configure(ALL_OFF)
    host.env["DATABASE_URL"] = f"postgresql://app@127.0.0.1:{free_port()}/empire?connect_timeout=1"
    down = host.run("jobs", "run", "partitions", "--json")
    assert down.returncode == 4, down.stderr
    assert [f["code"] for f in json.loads(down.stdout)["findings"]] == ["JOB_NO_DATABASE"]
    # The secrets job needs no database: it runs, without the lock.
    assert (
        json.loads(host.run("jobs", "run", "secrets", "--json").stdout)["data"]["outcome"] == "ok"
    )
    # Supabase's transaction pooler cannot hold a session lock: refused before connecting.
    host.env["DATABASE_URL"] = (
        "postgresql://postgres.abcdefghijklmnopqrst:pw-0123456789@"
        "aws-0-eu-west-1.pooler.supabase.com:6543/postgres?sslmode=require"
    )
    pooled = host.run("jobs", "run", "partitions", "--json")
    assert pooled.returncode == 2, pooled.stderr
    found = json.loads(pooled.stdout)["findings"]
    assert [f["code"] for f in found if f["severity"] == "error"] == ["JOB_NO_DATABASE"]
    assert "transaction" in found[-1]["message"]


def test_a_second_sigterm_does_not_cut_the_stop_short(hosts, migrated_db: str) -> None:
    import signal

    host = hosts("a")
    host.configure(FAST + '[scheduler.jobs.slow]\nevery = "1s"\nsql = "select pg_sleep(1.5)"\n')
    host.start()
    host.wait_for_log("scheduler ")
    time.sleep(1.5)
    assert host.proc is not None
    host.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    host.proc.send_signal(signal.SIGTERM)
    assert host.proc.wait(30) == 0
    assert "received again; still stopping" in host.log.read_text()
    assert "Traceback" not in host.log.read_text()
    (state,) = query(migrated_db, "select state from ops.scheduler_heartbeats")
    assert state == ("stopped",)


def test_a_full_disk_under_the_state_store_is_exit_1_not_a_traceback(hosts) -> None:
    from tests.helpers import tmpfs

    host = hosts("a")
    with tmpfs("size=256k") as mount:
        state = mount / "state"
        host.configure(f'[project]\nstate_dir = "{state}"\n' + ALL_OFF)
        assert host.run("jobs", "run", "secrets").returncode == 0  # the store exists
        with open(mount / "filler", "wb", buffering=0) as filler:  # fill the disk, to the byte
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError:
                pass
        done = host.run("jobs", "run", "secrets")
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
        assert "disk is full" in done.stderr and "hint:" in done.stderr
