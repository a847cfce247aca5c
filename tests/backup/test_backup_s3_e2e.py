"""`backup run`, `list`, `prune`, `verify` and `drill run` end to end with S3 repositories.

Everything is real: the embedded PostgreSQL and pg_dump, moto's S3 server and
`rclone serve s3`, boto3 over HTTP. The faults come from a small HTTP proxy in
this file that sits between empire-ops and moto: it forwards every request as
it came, and can answer a chosen operation itself (a real ``503 SlowDown`` with
S3's XML error body), or stop moto's server for real in the middle of a
multipart upload. Once moto is down the proxy cannot reach it and drops the
client's connection without an answer: what a dead endpoint looks like to
botocore (retried, then an error).
"""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from tests.backup.conftest import RcloneS3
from tests.backup.test_backup_run import _seed
from tests.motoserver import AWS_SECRET, MotoServer

MIB = 1 << 20
BUCKET = "backups"
PREFIX = "team/backups"
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message>"
    b"<RequestId>EMPIREPROXY0001</RequestId></Error>"
)
# Headers of one hop only: never forwarded (http.client sets its own framing).
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "expect", "te"}


def s3_operation(method: str, target: str) -> str:
    """The S3 operation a request is, by method and query (enough for the tests here)."""
    query = parse_qs(urlsplit(target).query, keep_blank_values=True)
    if method == "PUT" and "partNumber" in query and "uploadId" in query:
        return "UploadPart"
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    if method == "DELETE" and "uploadId" in query:
        return "AbortMultipartUpload"
    if method == "PUT" and not query:
        return "PutObject"
    return f"{method} {'&'.join(sorted(query))}".strip()


class S3Proxy:
    """A threaded HTTP proxy to ``upstream_port``; ``decide(operation)`` picks what to do.

    ``decide`` returns ``"forward"`` or ``"slowdown"`` (answer 503 SlowDown here).
    A request that cannot reach the upstream gets its connection dropped.
    ``log`` records ``(operation, what happened)`` for every request.
    """

    def __init__(self, upstream_port: int, decide: Callable[[str], str]) -> None:
        self.upstream_port = upstream_port
        self.decide = decide
        self.log: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, and 100-continue for botocore's PUTs

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def count(self, operation: str, outcome: str) -> int:
        with self._lock:
            return sum(1 for op, what in self.log if (op, what) == (operation, outcome))

    def _record(self, operation: str, outcome: str) -> None:
        with self._lock:
            self.log.append((operation, outcome))

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        assert "transfer-encoding" not in {k.lower() for k in h.headers}, "chunked upload"
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        operation = s3_operation(h.command, h.path)
        if self.decide(operation) == "slowdown":
            self._record(operation, "503")
            h.send_response_only(503, "Slow Down")
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(SLOW_DOWN)))
            h.end_headers()
            h.wfile.write(SLOW_DOWN)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in _HOP}
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            upstream.request(h.command, h.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        except OSError:
            self._record(operation, "dropped")  # the endpoint is gone: so is the connection
            h.close_connection = True
            return
        finally:
            upstream.close()
        self._record(operation, str(answer.status))
        h.send_response_only(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP and name.lower() != "content-length":
                h.send_header(name, value)
        # A HEAD's Content-Length is the object's size; every other answer carries its body.
        size = answer.getheader("Content-Length", "0") if h.command == "HEAD" else len(data)
        h.send_header("Content-Length", str(size))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def __enter__(self) -> S3Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- helpers -------------------------------------------------------------------------------
def _seed_bulk(dsn: str, mib: int) -> None:
    """About ``mib`` MiB of row data in the dump (compression = "none" keeps it that size)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table public.bulk_payload (id int primary key, body text not null)")
        # 32 hex chars a step, 32,768 steps: 1 MiB a row, different in every row.
        conn.execute(
            "insert into public.bulk_payload "
            "select g, (select string_agg(md5(g::text || ':' || i::text), '') "
            "from generate_series(1, 32768) i) from generate_series(1, %s) g",
            (mib,),
        )


def _s3_repo(name: str, endpoint: str, bucket: str, **options: Any) -> str:
    lines = [f"[backup.repos.{name}]", f'url = "s3://{bucket}/{PREFIX}"',
             f'endpoint_url = "{endpoint}"', 'region = "us-east-1"']  # fmt: skip
    for key, value in options.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _write_config(tmp_path: Path, *sections: str) -> None:
    (tmp_path / "empire-ops.toml").write_text("\n".join(sections))


def _run(cli: Any, *args: str, env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    """(exit code, the --json envelope, stdout + stderr), after checking no secret is shown."""
    result = cli(*args, "--json", env=env)
    output = result.stdout + result.stderr
    assert AWS_SECRET not in output
    return result.exit_code, json.loads(result.stdout), output


def _by_repo(payload: dict[str, Any]) -> dict[str, str]:
    return {f["subject"].split(":")[0]: f["code"] for f in payload["findings"]}


def _listed(cli: Any, env: dict[str, str]) -> dict[str, Any]:
    code, payload, _ = _run(cli, "backup", "list", env=env)
    assert code == 0, payload  # BACKUP_STALE and DRILL_STALE are warnings
    repos: dict[str, Any] = payload["data"]["repositories"]
    return repos


def _uploads(client: Any, bucket: str = BUCKET) -> list[dict[str, Any]]:
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


@pytest.fixture
def moto_bucket(moto_s3: MotoServer) -> Any:
    client = moto_s3.client()
    client.create_bucket(Bucket=BUCKET)
    return client


# -- 1. moto stopped mid-upload: the local copy survives -------------------------------------
def test_moto_stopped_mid_upload_fails_the_s3_repository_alone_and_the_next_run_heals(
    migrated_db: str, moto_s3: MotoServer, moto_bucket: Any, tmp_path: Path, cli: Any
) -> None:
    _seed_bulk(migrated_db, 14)  # three 5 MiB parts

    stopped = threading.Event()

    def decide(operation: str) -> str:
        # The second part: the first is stored at moto, the upload is open. Stop moto, once.
        if operation == "UploadPart" and not stopped.is_set() and proxy.count("UploadPart", "200"):
            stopped.set()
            moto_s3.stop()
        return "forward"

    with S3Proxy(moto_s3.port, decide) as proxy:
        _write_config(
            tmp_path,
            '[backup]\ncompression = "none"\n',
            '[backup.repos.local]\nurl = "file:backups"\n',
            _s3_repo("offsite", proxy.endpoint, BUCKET, part_size_mb=5, max_attempts=2),
        )
        env = {"DATABASE_URL": migrated_db}
        code, payload, _ = _run(cli, "backup", "run", env=env)

        # README: a repository that fails does not stop the others: exit 1, BACKUP_FAILED.
        assert code == 1, payload
        assert not moto_s3.running and proxy.count("UploadPart", "200") == 1
        assert proxy.count("UploadPart", "dropped") == 2  # max_attempts = 2
        assert payload["data"]["repositories"] == {"local": "complete", "offsite": "failed"}
        assert _by_repo(payload) == {"local": "BACKUP_TAKEN", "offsite": "BACKUP_FAILED"}
        failed = next(f for f in payload["findings"] if f["code"] == "BACKUP_FAILED")
        assert "upload a part of" in failed["message"] and "'offsite'" in failed["message"]
        first = payload["data"]["backup_id"]

        # The local repository holds the complete backup, and it verifies.
        manifest = json.loads((tmp_path / "backups" / first / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["compression"] == "none"
        assert manifest["artifacts"][0]["size"] > 2 * 5 * MIB
        assert manifest["tables"]["public.bulk_payload"] == 14
        code, verified, _ = _run(cli, "backup", "verify", first, "--repo", "local", env=env)
        assert code == 0 and [f["code"] for f in verified["findings"]] == ["BACKUP_VERIFIED"]

        # moto back (same state): the abort could not reach it, so the upload is still
        # open, but nothing is an object and `backup list` shows no backup there.
        moto_s3.start()
        assert [u["Key"] for u in _uploads(moto_bucket)] == [f"{PREFIX}/{first}/dump.pgc"]
        assert moto_bucket.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
        listed = _listed(cli, env)
        assert [b["backup_id"] for b in listed["local"]["backups"]] == [first]
        assert listed["local"]["backups"][0]["status"] == "complete"
        assert listed["offsite"]["backups"] == [] and listed["offsite"]["incomplete"] == []

        # The next run succeeds on both; its sweep aborts the stale upload (moto dates
        # uploads in 2010, so it is over a day old), as docs/backups.md promises.
        code, second, _ = _run(cli, "backup", "run", env=env)
        assert code == 0, json.dumps(second["findings"], indent=1)
        assert second["data"]["repositories"] == {"local": "complete", "offsite": "complete"}
        assert _by_repo(second) == {"local": "BACKUP_TAKEN", "offsite": "BACKUP_TAKEN"}
        assert _uploads(moto_bucket) == []
        listed = _listed(cli, env)
        assert [b["backup_id"] for b in listed["offsite"]["backups"]] == [
            second["data"]["backup_id"]
        ]
        code, verified, _ = _run(cli, "backup", "verify", "latest", "--repo", "offsite", env=env)
        assert code == 0 and [f["code"] for f in verified["findings"]] == ["BACKUP_VERIFIED"]


# -- 2. throttling: real 503 SlowDown answers ----------------------------------------------------
def test_503_slowdown_on_upload_part_is_retried_and_the_backup_completes(
    migrated_db: str, moto_s3: MotoServer, moto_bucket: Any, tmp_path: Path, cli: Any
) -> None:
    _seed_bulk(migrated_db, 7)  # two parts: a multipart upload
    throttled = 2

    def decide(operation: str) -> str:
        if operation == "UploadPart" and proxy.count("UploadPart", "503") < throttled:
            return "slowdown"
        return "forward"

    with S3Proxy(moto_s3.port, decide) as proxy:
        _write_config(
            tmp_path,
            '[backup]\ncompression = "none"\n',
            _s3_repo("offsite", proxy.endpoint, BUCKET, part_size_mb=5),  # max_attempts: 5
        )
        env = {"DATABASE_URL": migrated_db}
        code, payload, _ = _run(cli, "backup", "run", env=env)
        assert code == 0, payload
        assert proxy.count("UploadPart", "503") == throttled
        assert proxy.count("UploadPart", "200") == 2
        assert proxy.count("CompleteMultipartUpload", "200") == 1
        assert _by_repo(payload) == {"offsite": "BACKUP_TAKEN"}
        backup_id = payload["data"]["backup_id"]
        [entry] = _listed(cli, env)["offsite"]["backups"]
        assert (entry["backup_id"], entry["status"]) == (backup_id, "complete")
        assert entry["rows"] >= 7 and entry["size"] > 5 * MIB
        head = moto_bucket.head_object(Bucket=BUCKET, Key=f"{PREFIX}/{backup_id}/dump.pgc")
        assert head["ContentLength"] == entry["size"]
        code, verified, _ = _run(cli, "backup", "verify", "latest", env=env)
        assert code == 0 and [f["code"] for f in verified["findings"]] == ["BACKUP_VERIFIED"]
        assert _uploads(moto_bucket) == []


def test_503_slowdown_that_never_ends_fails_the_repository_clearly_and_aborts_the_upload(
    migrated_db: str, moto_s3: MotoServer, moto_bucket: Any, tmp_path: Path, cli: Any
) -> None:
    _seed_bulk(migrated_db, 7)

    def decide(operation: str) -> str:
        return "slowdown" if operation == "UploadPart" else "forward"

    with S3Proxy(moto_s3.port, decide) as proxy:
        _write_config(
            tmp_path,
            '[backup]\ncompression = "none"\n',
            _s3_repo("offsite", proxy.endpoint, BUCKET, part_size_mb=5, max_attempts=3),
        )
        env = {"DATABASE_URL": migrated_db}
        code, payload, output = _run(cli, "backup", "run", env=env)
        assert code == 1, payload  # an operation failed (README's exit codes)
        assert proxy.count("UploadPart", "503") == 3  # max_attempts, then it gave up
        assert proxy.count("AbortMultipartUpload", "204") == 1
        [finding] = payload["findings"]
        assert (finding["code"], finding["subject"].split(":")[0]) == ("BACKUP_FAILED", "offsite")
        assert "S3 answered SlowDown (HTTP 503) to UploadPart" in finding["message"]
        assert "Please reduce your request rate" in finding["message"]
        assert payload["data"]["repositories"] == {"offsite": "failed"}
        assert _uploads(moto_bucket) == []  # aborted: no parts left to bill
        # What the repository keeps is a failed manifest, never a complete backup or a dump.
        keys = [o["Key"] for o in moto_bucket.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        assert keys == [f"{PREFIX}/{payload['data']['backup_id']}/manifest.json"]
        [entry] = _listed(cli, env)["offsite"]["backups"]
        assert entry["status"] == "failed" and "SlowDown" in entry["error"]
        assert "Traceback" not in output


# -- 3. retention, list, drill and a flipped byte, on moto and rclone ------------------------------
@pytest.fixture(params=["moto", "rclone"])
def s3_store(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(endpoint, a raw boto3 client, the repository's extra options) of an unlocked bucket."""
    if request.param == "moto":
        server: MotoServer | RcloneS3 = request.getfixturevalue("moto_s3")
        extra: dict[str, Any] = {}
    else:
        server = request.getfixturevalue("rclone_s3")
        extra = {"addressing_style": "path"}
    yield server.endpoint, server.client(), extra


def _next_second() -> None:
    """Sleep into the next UTC second: backup ids carry whole seconds (see the report)."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def test_keep_last_2_then_list_drill_and_a_flipped_byte_on_each_s3_server(
    migrated_db: str, pg: Any, s3_store: tuple[str, Any, dict[str, Any]], tmp_path: Path,
    cli: Any,
) -> None:  # fmt: skip
    endpoint, client, extra = s3_store
    bucket = f"empire-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)
    _seed(migrated_db)
    _write_config(
        tmp_path,
        "[backup.retention]\nkeep_last = 2\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n",
        '[backup.drill]\ndsn_secret = "DRILL_DATABASE_URL"\n',
        _s3_repo("offsite", endpoint, bucket, max_attempts=2, **extra),
    )
    env = {"DATABASE_URL": migrated_db, "DRILL_DATABASE_URL": pg.dsn()}
    ids = []
    for _ in range(3):
        _next_second()
        code, payload, _ = _run(cli, "backup", "run", env=env)
        assert code == 0, payload
        ids.append(payload["data"]["backup_id"])

    code, pruned, _ = _run(cli, "backup", "prune", "--apply", env=env)
    assert code == 0, pruned
    assert [(f["code"], f["subject"]) for f in pruned["findings"]] == [
        ("BACKUP_PRUNED", f"offsite:{ids[0]}")
    ]
    stored = {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert not [k for k in stored if ids[0] in k] and f"{PREFIX}/{ids[2]}/manifest.json" in stored

    entry = _listed(cli, env)["offsite"]
    backups = entry["backups"]
    assert [b["backup_id"] for b in backups] == ids[1:]  # the two newest
    assert backups == sorted(backups, key=lambda b: b["started_at"])
    assert entry["incomplete"] == [] and entry["unreadable"] == []
    for b in backups:
        assert b["status"] == "complete" and b["size"] > 0 and b["verified_at"] is None
        assert b["tables"] > 30 and b["rows"] >= 300
        assert (b["compression"], b["encrypted"]) == ("zstd", False)

    code, drill, _ = _run(cli, "drill", "run", env=env)
    assert code == 0 and [f["code"] for f in drill["findings"]] == ["DRILL_PASSED"], drill
    assert drill["data"]["backup_id"] == ids[2] and drill["data"]["repository"] == "offsite"
    reports = sorted(
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/{ids[2]}/drill-").get(
            "Contents", []
        )
    )
    assert len(reports) == 1
    body = client.get_object(Bucket=bucket, Key=reports[0])["Body"].read()
    assert json.loads(body)["findings"][0]["code"] == "DRILL_PASSED"
    assert [b["verified_at"] is not None for b in _listed(cli, env)["offsite"]["backups"]] == [
        False, True,
    ]  # fmt: skip

    # One byte flipped in the stored dump (an unlocked bucket takes the overwrite).
    key = f"{PREFIX}/{ids[2]}/dump.pgc.zst"
    blob = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    blob[len(blob) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(blob))

    code, bad, _ = _run(cli, "drill", "run", env=env)
    assert code == 1
    assert [f["code"] for f in bad["findings"]] == ["BACKUP_CORRUPT", "DRILL_FAILED"], bad
    code, verified, _ = _run(cli, "backup", "verify", "latest", env=env)
    assert code == 1 and [f["code"] for f in verified["findings"]] == ["BACKUP_CORRUPT"]
