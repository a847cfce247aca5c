"""`empire-ops export` on a real, migrated PostgreSQL: files, manifest, PII policy, presets."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import ops.data.export as export_module
from ops.data.export import (
    NEVER_EXPORTED,
    PiiPolicy,
    _ExportFile,
    _fill,
    _Hashes,
    choose_out,
    hmac_sha256,
    parse_since,
)
from ops.data.model import load_tables
from ops.errors import UsageError
from tests.helpers import encoded_forms

KEY = "canary-export-key-" + "k7Qz9" * 6  # 48 characters
EMAIL = "export-canary-7f3a9c@example.test"
PASSWORD_HASH = "$argon2id$v=19$canary-hash-4b1d9e2f7a"
SESSION_TOKEN = "canary-session-token-0c8e5d1a"
PUBLIC_TABLES = sorted(n for n in load_tables() if not n.startswith("empire_private."))


def _sql(dsn: str, statement: str, params: Any = None) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def _seed(cli: Any, dsn: str) -> None:
    seeded = cli("db", "seed-demo", "--yes", env={"DATABASE_URL": dsn})
    assert seeded.exit_code == 0, seeded.output


def _canary_user(dsn: str) -> str:
    (user_id,) = _sql(
        dsn, "insert into public.users (email, geo) values (%s, '{\"city\": \"X\"}') returning id",
        (EMAIL,),
    )[0]  # fmt: skip
    _sql(
        dsn,
        "insert into empire_private.user_credentials (user_id, password_hash, session_tokens) "
        "values (%s, %s, %s)",
        (user_id, PASSWORD_HASH, json.dumps([SESSION_TOKEN])),
    )
    return str(user_id)


def _export(cli: Any, dsn: str, *args: str, key: str | None = None) -> tuple[int, dict[str, Any]]:
    env = {"DATABASE_URL": dsn, **({"EXPORT_PII_KEY": key} if key else {})}
    result = cli("export", *args, "--json", env=env)
    return result.exit_code, json.loads(result.stdout)


def _check_files(out: Path) -> dict[str, Any]:
    """The manifest, after checking every file's size and sha256 and that no temp file is left."""
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["tables"].values():
        data = (out / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    listed = {e["file"] for e in manifest["tables"].values()} | {"manifest.json"}
    assert {p.name for p in out.iterdir()} == listed  # no .tmp left
    return manifest


# -- pure policy -----------------------------------------------------------------------------------
def test_the_policy_drops_hashes_and_never_exports_credentials() -> None:
    policy = PiiPolicy(frozenset({"ip", "public.t.geo"}), frozenset({"email", "password_hash"}),
                       keyed=True)  # fmt: skip
    plan = policy.plan("public.t", ["id", "email", "ip", "geo", "password_hash", "session_tokens"])
    assert plan.kept == ("id",)
    assert plan.hashed == ("email",)
    assert set(plan.dropped) == {"ip", "geo", "password_hash", "session_tokens"}
    assert policy.plan("public.u", ["geo"]).kept == ("geo",)  # a qualified entry is one table's
    unkeyed = PiiPolicy(policy.drop, policy.hash, keyed=False).plan("public.t", ["email"])
    assert unkeyed.hashed == () and unkeyed.dropped == ("email",)
    assert {"password_hash", "session_tokens", "api_key_ref"} <= NEVER_EXPORTED


def test_since_is_an_iso_time() -> None:
    assert parse_since("2026-01-31").isoformat() == "2026-01-31T00:00:00+00:00"  # type: ignore[union-attr]
    with pytest.raises(UsageError):
        parse_since("yesterday")


# -- every table, both formats ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_every_table_exports_with_its_row_count(
    cli: Any, migrated_db: str, tmp_path: Path, fmt: str
) -> None:
    _seed(cli, migrated_db)
    out = tmp_path / "out"
    code, payload = _export(cli, migrated_db, "--all", "--format", fmt, "--out", str(out), key=KEY)
    assert code == 0, payload
    manifest = _check_files(out)
    assert sorted(manifest["tables"]) == PUBLIC_TABLES
    assert manifest["format"] == fmt and manifest["schema_version"]
    assert manifest["pii"] == {"key_secret": "EXPORT_PII_KEY", "keyed": True,
                               "hash": "hmac-sha256"}  # fmt: skip
    for name, entry in manifest["tables"].items():
        (count,) = _sql(migrated_db, f"select count(*) from {name}")[0]
        assert entry["rows"] == count, name
        text = (out / entry["file"]).read_text()
        if fmt == "jsonl":
            lines = text.splitlines()
            assert len(lines) == count
            if lines:
                assert set(json.loads(lines[0])) == set(entry["columns"])
        else:
            rows = list(csv.reader(io.StringIO(text, newline="")))
            assert rows[0] == entry["columns"] and len(rows) == count + 1
    users = manifest["tables"]["public.users"]
    assert "email" in users["hashed"] and {"geo", "device_list"} <= set(users["dropped"])
    assert payload["data"]["tables"]["public.users"]["rows"] == users["rows"]


# -- PII ----------------------------------------------------------------------------------------
def test_no_email_credential_or_key_leaves(run_cli: Any, migrated_db: str, tmp_path: Path) -> None:
    user_id = _canary_user(migrated_db)
    _sql(migrated_db, "insert into public.notifications (user_id, title, body) "
         "values (%s, 'hi', 'there')", (user_id,))  # fmt: skip
    out = tmp_path / "out"
    env = {"DATABASE_URL": migrated_db, "EXPORT_PII_KEY": KEY}
    result = run_cli("export", "--all", "--out", str(out), "--json", env=env)
    assert result.exit_code == 0, result.stderr
    manifest = _check_files(out)
    assert "empire_private.user_credentials" not in manifest["tables"]
    texts = {p.name: p.read_text() for p in out.iterdir()}
    texts["stdout"], texts["stderr"] = result.stdout, result.stderr
    for where, text in texts.items():
        for secret in (EMAIL, PASSWORD_HASH, SESSION_TOKEN, *encoded_forms(KEY)):
            assert secret not in text, where
        assert "password_hash" not in text or where == "manifest.json", where
    digest = hmac.new(KEY.encode(), EMAIL.encode(), "sha256").hexdigest()
    users = [json.loads(line) for line in texts["public.users.jsonl"].splitlines()]
    (mine,) = [u for u in users if u["email"] == digest]
    assert "geo" not in mine and "device_list" not in mine
    assert mine["id"] == hmac.new(KEY.encode(), user_id.encode(), "sha256").hexdigest()
    # hashed ids still join: the notification's user_id is the user's hashed id
    notes = [json.loads(line) for line in texts["public.notifications.jsonl"].splitlines()]
    assert [n["user_id"] for n in notes] == [mine["id"]]


def test_the_key_never_reaches_the_server(
    cli: Any, migrated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything the export's connections sent and received (libpq's protocol trace): the
    statements, so pg_stat_activity and the server's logs, never hold the key."""
    from tests.pgtrace import traced

    _canary_user(migrated_db)
    with traced(monkeypatch) as trace:
        code, _ = _export(cli, migrated_db, "users", "--out", str(tmp_path / "o"), key=KEY)
    assert code == 0
    # the trace holds the export's statements: the check below is not vacuous
    assert any("copy (" in s.lower() and '"email"' in s for s in trace.statements())
    sent = "".join(p.read_text(errors="replace") for p in trace.files)
    assert not [form for form in encoded_forms(KEY) if form in sent]


def test_without_the_key_hashed_columns_are_dropped_with_a_warning(
    cli: Any, migrated_db: str, tmp_path: Path
) -> None:
    _canary_user(migrated_db)
    out = tmp_path / "out"
    code, payload = _export(cli, migrated_db, "users", "--format", "csv", "--out", str(out))
    assert code == 0
    codes = [(f["code"], f["severity"]) for f in payload["findings"]]
    assert ("EXPORT_PII_KEY_MISSING", "warning") in codes
    manifest = _check_files(out)
    entry = manifest["tables"]["public.users"]
    assert entry["hashed"] == [] and "email" in entry["dropped"] and "id" in entry["dropped"]
    assert EMAIL not in (out / "public.users.csv").read_text()
    assert manifest["pii"]["keyed"] is False


def test_a_short_key_is_refused(cli: Any, migrated_db: str, tmp_path: Path) -> None:
    result = cli("export", "users", "--out", str(tmp_path / "o"),
                 env={"DATABASE_URL": migrated_db, "EXPORT_PII_KEY": "short-key-123"})  # fmt: skip
    assert result.exit_code == 3
    assert "short-key-123" not in result.output


# -- hashes filled in: every path, hostile data ----------------------------------------------------
def _mac(value: bytes) -> bytes:
    return hmac.new(KEY.encode(), value, "sha256").hexdigest().encode()


@pytest.mark.parametrize("key_length", [0, 1, 32, 63, 64, 65, 200])
def test_the_keyed_hash_is_hmac_sha256(key_length: int) -> None:
    key = os.urandom(key_length)
    mac = hmac_sha256(key)
    for value in (b"", b"x", "é😀".encode(), os.urandom(1000)):
        assert mac(value) == hmac.new(key, value, "sha256").hexdigest()


# Data that looks like a placeholder, or holds % (the fill's escape) or "%(" (its row path).
HOSTILE = [b"plain", b"100%", b"%%", b"50%(u12)s off", b"%(n)s", b"%%(", b"a%", b'"%(h00)s"']


@pytest.mark.parametrize("data", HOSTILE)
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_placeholders_are_filled_and_data_is_left_as_it_was(data: bytes, fmt: str) -> None:
    hashes = _Hashes(KEY.encode(), b"" if fmt == "csv" else b"\x01")
    values = [b"6f1c", b"", None, 'é,"\n'.encode()]

    def placeholder(v: bytes | None) -> bytes:
        return b"%(n)s" if v is None else b"%(h" + v.hex().encode() + b")s"

    def filled(v: bytes | None) -> bytes:
        if fmt == "csv":
            return b"" if v is None else _mac(v)
        return b"null" if v is None else b'"' + _mac(v) + b'"'

    rows, expected = [], []
    for i, (v, w) in enumerate(zip(values, reversed(values), strict=True)):
        plain = b"%d,x" % i if i % 2 else data  # batches of mixed rows
        if fmt == "csv":
            rows.append(plain + b"," + placeholder(v) + b"," + placeholder(w) + b"\n")
            expected.append(plain + b"," + filled(v) + b"," + filled(w) + b"\n")
        else:
            rows.append(b'{"d":"' + plain + b'","a":"' + placeholder(v) + b'","b":"'
                        + placeholder(w) + b'"}\n')  # fmt: skip
            expected.append(b'{"d":"' + plain + b'","a":' + filled(v) + b',"b":' + filled(w)
                            + b"}\n")  # fmt: skip
    assert _fill([memoryview(r) for r in rows], 2, hashes, fmt) == b"".join(expected)


def test_the_remembered_hashes_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "_HASHES_KEPT", 10)
    hashes = _Hashes(KEY.encode(), b"")
    for start in range(0, 100, 20):
        batch = [b"%(u" + str(n).encode() + b")s\n" for n in range(start, start + 20)]
        out = _fill(batch, 1, hashes, "csv")  # type: ignore[arg-type]
        assert out == b"".join(_mac(str(n).encode()) + b"\n" for n in range(start, start + 20))
        assert len(hashes) == 1  # forgotten after each batch past the bound, NULL's kept
    with pytest.raises(ValueError, match="placeholder"):
        _ = hashes[b"x-made-up"]


def test_an_export_file_is_written_out_as_it_grows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(export_module, "_WRITE_OUT_BYTES", 1000)
    blocks = [bytes([n]) * 700 for n in range(10)]
    with (tmp_path / "f").open("wb") as fh:
        sink = _ExportFile(fh)
        for block in blocks:
            sink.write(block)
        assert sink._asked >= 6300  # a write-out was asked for as the file grew
        sink.finish()
        assert not sink._helper.is_alive()
    assert (tmp_path / "f").read_bytes() == b"".join(blocks)
    assert (
        sink.size == 7000 and sink.sha.hexdigest() == hashlib.sha256(b"".join(blocks)).hexdigest()
    )


def test_a_failed_write_out_fails_the_export_and_stops_the_helper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # fdatasync on a pipe fails (EINVAL) as it would on a disk that cannot write.
    monkeypatch.setattr(export_module, "_WRITE_OUT_BYTES", 10)
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "wb") as fh:
            sink = _ExportFile(fh)
            sink.write(b"x" * 20)
            sink._helper.join(timeout=10)  # it stops at the first error
            assert not sink._helper.is_alive()
            with pytest.raises(OSError) as failed:
                sink.finish()
            assert failed.value is sink._error  # the helper's error, kept for finish()
            sink.stop()  # idempotent, as the caller's finally calls it again
        assert os.read(read_end, 100) == b"x" * 20
    finally:
        os.close(read_end)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_hostile_values_export_exactly(
    cli: Any, migrated_db: str, tmp_path: Path, fmt: str
) -> None:
    texts = [
        "", "%", "%(u12)s", "%%(", "é😀,\"q\"\nnew\rline\ttab\\back", "\x01(n)s", "50% off", None,
    ]  # fmt: skip
    for i, text in enumerate(texts):
        _sql(
            migrated_db,
            "insert into public.users (email, anon_id, archetype, meta) values (%s, %s, %s, %s)",
            (f'"{i},%(h0)s"@x.test' if text is not None else None, text, text,
             json.dumps({"note": text, "n": i})),
        )  # fmt: skip
    out = tmp_path / "out"
    code, payload = _export(cli, migrated_db, "users", "--format", fmt, "--out", str(out), key=KEY)
    assert code == 0, payload
    columns = _check_files(out)["tables"]["public.users"]["columns"]
    # the reference: PostgreSQL's own text of every column, read apart from the export
    with psycopg.connect(migrated_db) as conn:
        cur = conn.execute(
            psycopg.sql.SQL("select {} from public.users").format(
                psycopg.sql.SQL(", ").join(
                    psycopg.sql.SQL("{}::text").format(psycopg.sql.Identifier(c)) for c in columns
                )
            )
        )
        reference = {}
        for row in cur.fetchall():
            record = dict(zip(columns, row, strict=True))
            for c in ("id", "email", "anon_id"):
                record[c] = None if record[c] is None else _mac(record[c].encode()).decode()
            reference[record["id"]] = record
    text = (out / f"public.users.{fmt}").read_bytes().decode("utf-8")  # \r stays \r
    if fmt == "csv":  # CSV reads NULL and an empty text alike: both ""
        got = {r["id"]: r for r in csv.DictReader(io.StringIO(text, newline=""))}
        assert got == {
            k: {c: "" if v is None else v for c, v in r.items()} for k, r in reference.items()
        }
        assert '\n"",' in text  # the empty archetype (first) is quoted: PostgreSQL's "not NULL"
    else:
        got = {r["id"]: r for r in map(json.loads, text.splitlines())}
        assert set(got) == set(reference)
        for key, record in reference.items():
            assert got[key]["archetype"] == record["archetype"]
            assert got[key]["meta"] == json.loads(record["meta"])
            for c in ("id", "email", "anon_id"):
                assert got[key][c] == record[c], c
    assert len(got) == len(texts)


# -- since ----------------------------------------------------------------------------------------
def test_since_filters_on_the_time_column(cli: Any, migrated_db: str, tmp_path: Path) -> None:
    _sql(migrated_db, "insert into public.search_queries (query, occurred_at) values "
         "('old', '2020-01-01T00:00Z'), ('new', '2030-01-01T00:00Z')")  # fmt: skip
    out = tmp_path / "out"
    code, _ = _export(cli, migrated_db, "search_queries", "--since", "2025-01-01", "--out",
                      str(out))  # fmt: skip
    assert code == 0
    manifest = _check_files(out)
    entry = manifest["tables"]["public.search_queries"]
    assert entry["rows"] == 1 and entry["filters"]["column"] == "occurred_at"
    assert manifest["filters"]["since"].startswith("2025-01-01T00:00:00")
    assert json.loads((out / entry["file"]).read_text())["query"] == "new"


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("no_such_table",), "no table"),
        (("empire_private.user_credentials",), "never exported"),
        (("users", "--since", "yesterday"), "not a time"),
        (("users", "--format", "xml"), "no format"),
        ((), "--all"),
        (("users", "--all"), "not both"),
        (("users", "--preset", "rlhf"), "--preset"),
        (("--preset", "nope"), "no preset"),
    ],
)
def test_bad_input_exits_2(
    cli: Any, migrated_db: str, tmp_path: Path, args: tuple[str, ...], words: str
) -> None:
    result = cli("export", *args, "--out", str(tmp_path / "o"), env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert not (tmp_path / "o").exists()


def test_an_unwritable_or_full_folder_is_refused(
    cli: Any, migrated_db: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {"DATABASE_URL": migrated_db}
    result = cli("export", "users", "--out", str(blocker / "sub"), env=env)
    assert result.exit_code == 2, result.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    result = cli("export", "users", "--out", str(busy), env={"DATABASE_URL": migrated_db})
    assert result.exit_code == 2 and "not empty" in result.output
    result = cli("export", "users", "--out", str(busy), "--force",
                 env={"DATABASE_URL": migrated_db})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (busy / "keep.txt").exists() and (busy / "public.users.jsonl").exists()


def test_the_default_folder_is_new_and_timestamped(cli: Any, migrated_db: str) -> None:
    code, payload = _export(cli, migrated_db, "offers")
    assert code == 0
    out = Path(payload["data"]["out"])
    assert out.parent.name == "exports" and out.name.endswith("Z")
    _check_files(out)


def test_default_folders_started_in_the_same_second_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first, second = (choose_out(None, force=False, now=now) for _ in range(2))
    assert (first.name, second.name) == ("20260102T030405Z", "20260102T030405Z-2")
    assert first.is_dir() and second.is_dir()


def _export_midway(dsn: str, out: Path) -> subprocess.Popen[str]:
    """``export analytics_events`` (400,000 rows seeded) running in a subprocess into
    ``out``, returned once its temporary file holds 1 MiB: it is mid-stream then."""
    _sql(dsn, "insert into public.analytics_events (event_type, path, referrer) "
         "select 'page_view', '/p/' || g, repeat('r', 300) "
         "from generate_series(1, 400000) g")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops", "export", "analytics_events", "--format", "jsonl",
         "--out", str(out)],
        env={**os.environ, "DATABASE_URL": dsn, "EXPORT_PII_KEY": KEY},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 1 << 20 for p in out.glob(".*.tmp")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the export never got midway (exit {proc.wait()})")
        time.sleep(0.01)
    return proc


def test_a_killed_export_is_refused_then_cleaned_and_two_never_share_a_folder(
    cli: Any, migrated_db: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    env = {"DATABASE_URL": migrated_db, "EXPORT_PII_KEY": KEY}
    proc = _export_midway(migrated_db, out)
    try:
        busy = cli("export", "offers", "--out", str(out), "--force", env=env)
        assert busy.exit_code == 5 and "an export into" in busy.stderr, busy.output
    finally:
        proc.kill()  # SIGKILL: no cleanup runs
        proc.wait()
    names = {p.name for p in out.iterdir()}
    assert "manifest.json" not in names and any(n.endswith(".tmp") for n in names)
    refused = cli("export", "offers", "--out", str(out), env=env)
    assert refused.exit_code == 2 and "interrupted export" in refused.stderr
    forced = cli("export", "offers", "--out", str(out), "--force", env=env)
    assert forced.exit_code == 0, forced.output
    assert set(_check_files(out)["tables"]) == {"public.offers"}  # and no temporary file left


def test_sigterm_stops_an_export_and_leaves_nothing_behind(
    migrated_db: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = _export_midway(migrated_db, out)
    try:
        proc.terminate()  # SIGTERM, as a service manager or `timeout` sends
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert list(out.iterdir()) == []  # the partial file removed, no manifest
    assert "Traceback" not in stderr


# -- presets -----------------------------------------------------------------------------------
def _rlhf_dataset(dsn: str) -> dict[str, str]:
    rows = _sql(dsn, "insert into public.prompts (name, version, body, model) values "
                "('writer', 1, 'Write a title', 'gpt-x'), ('coach', 1, 'Give advice', null) "
                "returning name, id")  # fmt: skip
    ids = {name: str(i) for name, i in rows}
    feedback = [
        # writer: two positives, one negative -> one pair (the first of each)
        ("writer", "thumbs_up", None, "message:a", "Title A", "2026-01-01T00:00Z"),
        ("writer", "rating", 2, "message:b", "Title B", "2026-01-01T00:01Z"),
        ("writer", "rating", 5, "message:c", None, "2026-01-01T00:02Z"),
        ("writer", "click", None, "message:d", "Title D", "2026-01-01T00:03Z"),  # no polarity
        # coach: one negative only -> no pair
        ("coach", "thumbs_down", None, "message:e", "Advice E", "2026-01-01T00:04Z"),
    ]
    for prompt, signal, value, target, response, at in feedback:
        meta = {"prompt_id": ids[prompt], **({"response": response} if response else {})}
        _sql(dsn, "insert into public.rlhf_feedback (user_id, agent_id, signal, value, target, "
             "meta, occurred_at) values (null, 'agent-1', %s, %s, %s, %s, %s)",
             (signal, value, target, json.dumps(meta), at))  # fmt: skip
    return ids


def test_the_rlhf_preset_pairs_chosen_and_rejected(
    cli: Any, migrated_db: str, tmp_path: Path
) -> None:
    ids = _rlhf_dataset(migrated_db)
    out = tmp_path / "out"
    code, _ = _export(cli, migrated_db, "--preset", "rlhf", "--out", str(out))
    assert code == 0
    manifest = _check_files(out)
    assert manifest["preset"] == "rlhf" and manifest["tables"]["rlhf"]["rows"] == 1
    (record,) = [json.loads(x) for x in (out / "rlhf.jsonl").read_text().splitlines()]
    assert (record["prompt"], record["chosen"], record["rejected"]) == (
        "Write a title", "Title A", "Title B",
    )  # fmt: skip
    meta = record["metadata"]
    assert meta["prompt_id"] == ids["writer"] and meta["prompt_name"] == "writer"
    assert meta["chosen"]["signal"] == "thumbs_up" and meta["rejected"]["target"] == "message:b"


def test_the_rlhf_preset_has_pairs_on_the_demo_data(
    cli: Any, migrated_db: str, tmp_path: Path
) -> None:
    _seed(cli, migrated_db)
    out = tmp_path / "out"
    code, _ = _export(cli, migrated_db, "--preset", "rlhf", "--out", str(out))
    assert code == 0
    records = [json.loads(x) for x in (out / "rlhf.jsonl").read_text().splitlines()]
    assert len(records) >= 20
    bodies = dict(_sql(migrated_db, "select id::text, body from public.prompts"))
    for r in records:
        assert r["prompt"] == bodies[r["metadata"]["prompt_id"]]
        assert r["chosen"] and r["rejected"] and r["chosen"] != r["rejected"]


def test_the_conversions_preset_counts_per_variant(
    cli: Any, migrated_db: str, tmp_path: Path
) -> None:
    (test_id,) = _sql(migrated_db, "insert into public.ab_tests (slug, name) values "
                      "('cta', 'CTA') returning id")[0]  # fmt: skip
    variants = dict(_sql(migrated_db, "insert into public.ab_variants (test_id, name) "
                         "values (%s, 'a'), (%s, 'b') returning name, id",
                         (test_id, test_id)))  # fmt: skip
    for session, variant in [("s1", "a"), ("s2", "a"), ("s3", "b")]:
        _sql(migrated_db, "insert into public.ab_assignments (test_id, variant_id, session_id, "
             "assigned_at) values (%s, %s, %s, '2026-01-01T00:00Z')",
             (test_id, variants[variant], session))  # fmt: skip
    for session, value, at in [
        ("s1", 10, "2026-01-02"),
        ("s1", 5, "2026-01-03"),
        ("s3", 7, "2025-12-31"),
    ]:  # s3's came before its assignment
        _sql(migrated_db, "insert into public.conversions (session_id, value, currency, "
             "occurred_at) values (%s, %s, 'EUR', %s)", (session, value, at))  # fmt: skip
    out = tmp_path / "out"
    code, _ = _export(cli, migrated_db, "--preset", "conversions", "--format", "csv",
                      "--out", str(out))  # fmt: skip
    assert code == 0
    _check_files(out)
    rows = list(csv.DictReader((out / "conversions.csv").read_text().splitlines()))
    got = {r["variant"]: (r["assignments"], r["converted"], r["conversions"],
                          r["conversion_value"], r["conversion_rate"]) for r in rows}  # fmt: skip
    assert got == {"a": ("2", "1", "2", "15.00", "0.5000"), "b": ("1", "0", "0", "0", "0.0000")}


# -- constant memory ------------------------------------------------------------------------------
_MEMORY_CHILD = textwrap.dedent(
    """
    import resource, sys
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:  # the limit bites: the export's output could not be held in memory
        bytearray(limit)
    except MemoryError:
        pass
    else:
        sys.exit(99)
    from ops.cli import app
    sys.argv = ["empire-ops", *sys.argv[2:]]
    app()
    """
)


def test_a_table_larger_than_the_memory_limit_exports(migrated_db: str, tmp_path: Path) -> None:
    # ~300 MB of rows in the database (and more as JSON), exported under a 250 MB address space
    _sql(migrated_db, "insert into public.analytics_events (event_type, path, referrer, meta) "
         "select 'page_view', '/p/' || g, repeat('r', 900), '{}'::jsonb "
         "from generate_series(1, 300000) g")  # fmt: skip
    (size,) = _sql(migrated_db, "select sum(pg_total_relation_size(relid)) "
                   "from pg_partition_tree('public.analytics_events')")[0]  # fmt: skip
    limit = 250 * 1024 * 1024
    out = tmp_path / "out"
    env = {**os.environ, "DATABASE_URL": migrated_db, "PYTHONPATH": str(Path.cwd())}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(limit), "export", "analytics_events",
         "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = _check_files(out)
    entry = manifest["tables"]["public.analytics_events"]
    assert entry["rows"] == 300000
    assert entry["bytes"] > limit and size > limit


# -- parquet -----------------------------------------------------------------------------------
def test_parquet_has_the_rows_and_types(cli: Any, migrated_db: str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    from datetime import UTC, datetime
    from decimal import Decimal

    _canary_user(migrated_db)
    embedding = [0.5, -0.25] + [0.0] * 1534
    _sql(migrated_db, "insert into public.memory_nodes (slug, type, usage_score, vector_embedding, "
         "created_at) values ('a', 'fact', 3, %s, '2026-03-01 12:30:00.123456+02'), "
         "('b', 'fact', 0, null, '2026-03-02 00:00:00+00')", (str(embedding),))  # fmt: skip
    _sql(migrated_db, "insert into public.analytics_events (session_id, event_type, "
         "conversion_value) values ('s', 'conversion', 12.5), ('s', 'click', null)")  # fmt: skip
    out = tmp_path / "out"
    code, _ = _export(cli, migrated_db, "memory_nodes", "users", "analytics_events",
                      "--format", "parquet", "--out", str(out), key=KEY)  # fmt: skip
    assert code == 0
    manifest = _check_files(out)
    nodes = pq.read_table(out / "public.memory_nodes.parquet")
    assert nodes.num_rows == 2 == manifest["tables"]["public.memory_nodes"]["rows"]
    types = {f.name: str(f.type) for f in nodes.schema}
    assert types["usage_score"] == "double" and types["version"] == "int32"
    assert types["created_at"] == "timestamp[us, tz=UTC]"
    vector_type = nodes.schema.field("vector_embedding").type
    assert vector_type.list_size == 1536 and str(vector_type.value_type) == "float"
    by_slug = {r["slug"]: r for r in nodes.to_pylist()}
    assert (
        by_slug["a"]["vector_embedding"] == embedding and by_slug["b"]["vector_embedding"] is None
    )
    assert by_slug["a"]["created_at"] == datetime(2026, 3, 1, 10, 30, 0, 123456, tzinfo=UTC)
    events = pq.read_table(out / "public.analytics_events.parquet")
    assert str(events.schema.field("conversion_value").type) == "decimal128(12, 2)"
    assert sorted(events.column("conversion_value").to_pylist(), key=str) == [
        Decimal("12.50"), None,
    ]  # fmt: skip
    users = pq.read_table(out / "public.users.parquet").to_pylist()
    digest = hmac.new(KEY.encode(), EMAIL.encode(), "sha256").hexdigest()
    assert [u["email"] for u in users] == [digest] and "geo" not in users[0]


def test_parquet_refuses_a_value_its_type_cannot_hold(
    cli: Any, migrated_db: str, tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow.parquet")
    _sql(migrated_db, "insert into public.memory_nodes (slug, type, created_at) "
         "values ('forever', 'fact', 'infinity')")  # fmt: skip
    out = tmp_path / "out"
    result = cli("export", "memory_nodes", "--format", "parquet", "--out", str(out),
                 env={"DATABASE_URL": migrated_db, "EXPORT_PII_KEY": KEY})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "public.memory_nodes.created_at" in result.output and "jsonl or csv" in result.output
    assert not any(out.iterdir())  # no file, no temporary left
    csv_result = cli("export", "memory_nodes", "--format", "csv", "--out", str(tmp_path / "c"),
                     env={"DATABASE_URL": migrated_db, "EXPORT_PII_KEY": KEY})  # fmt: skip
    assert (
        csv_result.exit_code == 0
        and "infinity" in (tmp_path / "c" / "public.memory_nodes.csv").read_text()
    )


def test_parquet_without_pyarrow_exits_2_with_the_pip_command(
    cli: Any, migrated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    result = cli("export", "users", "--format", "parquet", "--out", str(tmp_path / "o"),
                 env={"DATABASE_URL": migrated_db})  # fmt: skip
    assert result.exit_code == 2 and "pip install" in result.output
