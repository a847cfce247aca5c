"""The S3 repository's faults and options against real servers (moto's, rclone's).

The endpoint dying mid-upload is moto's server really stopped (its socket
closed: connections refused) and started again on the same port; moto keeps
its state in the process, so the restarted server holds the same open
multipart uploads, like an S3 endpoint that was down and came back.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ops.backup.errors import RepositoryError
from ops.backup.manifest import new_backup_id
from ops.errors import ConfigError, OpsError
from tests.backup.conftest import RcloneS3, s3_repository
from tests.backup.test_repo_contract import manifest_for
from tests.motoserver import AWS_SECRET, MotoServer

MIB = 1 << 20


def no_secret(exc: OpsError, *secrets: str) -> None:
    for secret in (AWS_SECRET, *secrets):
        assert secret not in str(exc)
        assert secret not in (exc.hint or "")


def bucket(moto: MotoServer, name: str = "backups", **kwargs: Any) -> Any:
    client = moto.client()
    client.create_bucket(Bucket=name, **kwargs)
    return client


def count_sends(repo: Any, operation: str) -> list[int]:
    """A list that grows by one each time botocore sends ``operation`` (retries included)."""
    sent: list[int] = []
    repo.client.meta.events.register(
        f"before-send.s3.{operation}", lambda **_: sent.append(1) and None
    )
    return sent


def test_endpoint_dies_mid_upload_retried_then_fails_and_the_upload_is_aborted(
    moto_s3: MotoServer,
) -> None:
    client = bucket(moto_s3)
    repo = s3_repository(moto_s3.endpoint, "backups", part_size_mb=5, max_attempts=3)
    backup_id = new_backup_id()
    writer = repo.artifact_writer(backup_id, "dump.pgc")
    writer.write(os.urandom(6 * MIB))  # part 1 uploaded: a multipart upload is open
    assert len(client.list_multipart_uploads(Bucket="backups").get("Uploads", [])) == 1

    part_sends = count_sends(repo, "UploadPart")
    moto_s3.stop()
    # The endpoint comes back when the writer sends its abort (after UploadPart gave up),
    # so the abort is a real request to the server holding the upload.
    repo.client.meta.events.register(
        "before-send.s3.AbortMultipartUpload",
        lambda **_: None if moto_s3.running else moto_s3.start() and None,
    )
    with pytest.raises(RepositoryError) as info:
        writer.write(os.urandom(5 * MIB))

    assert len(part_sends) == 3  # max_attempts: botocore retried the refused connection
    assert "'offsite'" in str(info.value) and "s3://backups/backups/" in str(info.value)
    assert "3 attempts" in (info.value.hint or "") and "endpoint_url" in (info.value.hint or "")
    no_secret(info.value)
    assert client.list_multipart_uploads(Bucket="backups").get("Uploads", []) == []
    assert client.list_objects_v2(Bucket="backups").get("KeyCount") == 0
    assert repo.list_manifests().incomplete == []


def test_an_upload_the_dead_endpoint_kept_open_is_aborted_by_the_next_sweep(
    moto_s3: MotoServer,
) -> None:
    client = bucket(moto_s3)
    repo = s3_repository(moto_s3.endpoint, "backups", part_size_mb=5, max_attempts=1)
    writer = repo.artifact_writer(new_backup_id(), "dump.pgc")
    writer.write(os.urandom(5 * MIB))
    moto_s3.stop()
    with pytest.raises(RepositoryError):
        writer.write(os.urandom(5 * MIB))  # UploadPart and its abort both refused
    moto_s3.start()  # the endpoint is back, with the upload still open
    assert len(client.list_multipart_uploads(Bucket="backups")["Uploads"]) == 1

    # The next run's first writer sweeps uploads started over a day ago (moto dates
    # every upload in 2010, so this one counts as stale).
    nxt = s3_repository(moto_s3.endpoint, "backups")
    nxt.artifact_writer(new_backup_id(), "dump.pgc").abort()
    assert client.list_multipart_uploads(Bucket="backups").get("Uploads", []) == []


def test_the_sweep_leaves_an_upload_in_progress(rclone_s3: RcloneS3) -> None:
    # rclone dates uploads truly: one started now may be another run's, so it stays.
    client = rclone_s3.client()
    client.create_bucket(Bucket="sweep")
    key = "backups/20260101T000000Z-aaaaaa/dump.pgc"
    upload = client.create_multipart_upload(Bucket="sweep", Key=key)["UploadId"]
    repo = s3_repository(rclone_s3.endpoint, "sweep", addressing_style="path")
    repo.artifact_writer(new_backup_id(), "dump.pgc").abort()
    assert [u["UploadId"] for u in repo.open_uploads()] == [upload]
    assert repo.abort_stale_uploads(timedelta(0)) == [key]
    assert repo.open_uploads() == []


@pytest.mark.parametrize("size", [1000, 11 * MIB], ids=["put", "multipart"])
def test_sse_s3_and_sse_kms_reach_the_server(moto_s3: MotoServer, size: int) -> None:
    client = bucket(moto_s3)
    key_id = moto_s3.client("kms").create_key(Description="backups")["KeyMetadata"]["KeyId"]
    for prefix, options, expect in [
        ("aes", {"sse": "AES256"}, "AES256"),
        ("kms", {"sse": "aws:kms", "kms_key_id": key_id}, "aws:kms"),
    ]:
        repo = s3_repository(moto_s3.endpoint, "backups", prefix, part_size_mb=5, **options)
        backup_id = new_backup_id()
        writer = repo.artifact_writer(backup_id, "dump.pgc")
        writer.write(os.urandom(size))
        writer.commit()
        repo.write_manifest(manifest_for(backup_id, []))
        for name in ("dump.pgc", "manifest.json"):
            head = client.head_object(Bucket="backups", Key=f"{prefix}/{backup_id}/{name}")
            assert head["ServerSideEncryption"] == expect
            if expect == "aws:kms":
                assert key_id in head["SSEKMSKeyId"]


def test_object_lock_retains_every_object_and_refuses_the_delete(moto_s3: MotoServer) -> None:
    client = bucket(moto_s3, "locked", ObjectLockEnabledForBucket=True)
    repo = s3_repository(
        moto_s3.endpoint, "locked", part_size_mb=5,
        object_lock_mode="COMPLIANCE", object_lock_days=30,
    )  # fmt: skip
    backup_id = new_backup_id()
    writer = repo.artifact_writer(backup_id, "dump.pgc")
    writer.write(os.urandom(6 * MIB))  # multipart: the lock is set on the upload
    writer.commit()
    repo.write_manifest(manifest_for(backup_id, []))

    soon = datetime.now(UTC) + timedelta(days=30)
    for name in ("dump.pgc", "manifest.json"):
        # HeadObject shows the retention (moto 5.2 has no GetObjectRetention).
        head = client.head_object(Bucket="locked", Key=f"backups/{backup_id}/{name}")
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert abs(head["ObjectLockRetainUntilDate"] - soon) < timedelta(minutes=5)
    until = repo.locked_until(backup_id)
    assert until is not None and abs(until - soon) < timedelta(minutes=5)

    with pytest.raises(RepositoryError) as info:
        repo.delete_backup(backup_id)
    assert "Object Lock" in (info.value.hint or "")
    no_secret(info.value)
    # Still there, and not hidden behind a delete marker.
    assert [m.backup_id for m in repo.list_manifests().manifests] == [backup_id]


def test_no_lock_means_locked_until_none(moto_s3: MotoServer) -> None:
    bucket(moto_s3)
    repo = s3_repository(moto_s3.endpoint, "backups")
    backup_id = new_backup_id()
    repo.write_manifest(manifest_for(backup_id, []))
    assert repo.locked_until(backup_id) is None
    assert repo.locked_until(new_backup_id()) is None  # no such object: no lock either


def test_wrong_credentials_fail_clearly_without_the_secret(
    rclone_s3: RcloneS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    rclone_s3.client().create_bucket(Bucket="creds")
    wrong = "wrong-secret-key-that-must-never-be-shown-0003"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    repo = s3_repository(rclone_s3.endpoint, "creds", addressing_style="path")
    with pytest.raises(RepositoryError) as info:
        repo.list_manifests()
    assert "S3 answered" in str(info.value)
    assert "credentials" in (info.value.hint or "")
    no_secret(info.value, wrong)


def test_missing_bucket_says_create_it(moto_s3: MotoServer) -> None:
    repo = s3_repository(moto_s3.endpoint, "nowhere")
    with pytest.raises(RepositoryError) as info:
        repo.list_manifests()
    assert "NoSuchBucket" in str(info.value)
    assert "create the bucket 'nowhere'" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"part_size_mb": 4}, "part_size_mb = 4"),
        ({"object_lock_mode": "COMPLIANCE"}, "object_lock_days"),
        ({"sse": "aws:kms2"}, "sse = 'aws:kms2'"),
        ({"kms_key_id": "k"}, "kms_key_id"),
    ],
)
def test_bad_options_are_config_errors(options: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        s3_repository("http://127.0.0.1:9", "b", **options)
    assert says in str(info.value) and "[backup.repos.offsite]" in (info.value.hint or "")


def test_a_url_without_a_bucket_is_refused() -> None:
    from ops.backup.repo import open_repository

    with pytest.raises(ConfigError, match="names no bucket"):
        open_repository("offsite", "s3://", {})


def test_importing_ops_backup_does_not_import_boto3() -> None:
    import subprocess
    import sys

    code = "import sys, ops.backup.repo, ops.backup.repo.s3, ops.cli; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
