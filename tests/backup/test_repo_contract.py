"""The repository contract, the same on every kind: a local folder, moto's S3, rclone's S3.

A backup is its artifacts plus ``manifest.json`` written last; an artifact is
invisible until committed and leaves nothing on abort; listing ignores what is
not a backup; delete removes everything; bad ids never reach the store.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from ops.backup.errors import BackupIdInvalid, BackupNotFound
from ops.backup.manifest import Artifact, BackupManifest, new_backup_id, utc_now
from ops.backup.repo.base import iter_chunks
from tests.backup.conftest import RepoCase


def manifest_for(backup_id: str, artifacts: list[Artifact]) -> BackupManifest:
    now = utc_now()
    return BackupManifest(
        backup_id=backup_id, status="complete",
        database={"name": "app", "server_version": "18.0"}, pg_dump_version="18.0",
        format="custom", compression="none", zstd_level=None, recipients=[],
        started_at=now, finished_at=now, seconds=0.1, schemas=["public"],
        excluded_schemas=[], tables={"public.t": 3}, migration_version=None,
        empire_ops_version="test", artifacts=artifacts,
    )  # fmt: skip


def write_backup(case: RepoCase, data: bytes, *, chunk: int = 1 << 20) -> BackupManifest:
    """Stream ``data`` as ``dump.pgc`` in chunks, commit it, then write the manifest."""
    backup_id = new_backup_id()
    writer = case.repo.artifact_writer(backup_id, "dump.pgc")
    for start in range(0, len(data), chunk):
        writer.write(data[start : start + chunk])
    writer.commit()
    artifact = Artifact(
        "dump.pgc", "dump", len(data), hashlib.sha256(data).hexdigest(), "none", False
    )
    manifest = manifest_for(backup_id, [artifact])
    case.repo.write_manifest(manifest)
    return manifest


def read_all(case: RepoCase, backup_id: str, name: str = "dump.pgc") -> bytes:
    stream = case.repo.open_artifact(backup_id, name)
    try:
        return b"".join(iter_chunks(stream))
    finally:
        stream.close()


def test_a_backup_lists_and_reads_back_byte_exact_across_parts(repository: RepoCase) -> None:
    # 20 MiB of random bytes: with 5 MiB parts, 4 parts plus nothing (exact), then a tail
    # written in odd-sized chunks so part boundaries never line up with writes.
    if repository.kind != "local":
        repository.repo = type(repository.repo)(
            repository.repo.name,
            repository.repo.url,
            {**repository.repo.options, "part_size_mb": 5},
        )
    data = os.urandom(20 * (1 << 20) + 12345)
    manifest = write_backup(repository, data, chunk=777_777)

    listing = repository.repo.list_manifests()
    assert [m.backup_id for m in listing.manifests] == [manifest.backup_id]
    assert listing.incomplete == [] and listing.unreadable == []
    back = read_all(repository, manifest.backup_id)
    assert len(back) == len(data) and hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
    assert repository.repo.read_manifest(manifest.backup_id) == manifest
    assert repository.open_uploads() == []  # completed: no upload left open
    assert repository.raw_keys() == [
        f"{manifest.backup_id}/dump.pgc",
        f"{manifest.backup_id}/manifest.json",
    ]


def test_complete_incomplete_and_foreign_keys_are_told_apart(repository: RepoCase) -> None:
    small = write_backup(repository, b"small dump")  # one PUT, under a part
    incomplete = new_backup_id()
    writer = repository.repo.artifact_writer(incomplete, "dump.pgc")
    writer.write(b"no manifest follows")
    writer.commit()
    # Things a repository must never list nor prune: stray files, foreign folders,
    # deeper keys, and a folder named like an id with a trick in it.
    repository.put_raw("README.txt", b"not a backup")
    repository.put_raw("other-tool/state.json", b"{}")
    repository.put_raw(f"{small.backup_id}x/manifest.json", small.to_json())
    repository.put_raw(f"{small.backup_id}/deeper/manifest.json", b"{}")

    listing = repository.repo.list_manifests()
    assert [m.backup_id for m in listing.manifests] == [small.backup_id]
    assert listing.incomplete == [incomplete]
    assert listing.unreadable == []
    assert read_all(repository, small.backup_id) == b"small dump"


def test_an_unreadable_manifest_is_listed_as_such(repository: RepoCase) -> None:
    backup_id = new_backup_id()
    repository.put_raw(f"{backup_id}/manifest.json", b"{not json")
    assert repository.repo.list_manifests().unreadable == [backup_id]


def test_abort_leaves_nothing_listed_nor_open(repository: RepoCase) -> None:
    if repository.kind != "local":
        repository.repo = type(repository.repo)(
            repository.repo.name,
            repository.repo.url,
            {**repository.repo.options, "part_size_mb": 5},
        )
    backup_id = new_backup_id()
    writer = repository.repo.artifact_writer(backup_id, "dump.pgc")
    writer.write(os.urandom(11 << 20))  # two parts uploaded, a part buffered
    if repository.kind != "local":
        assert len(repository.open_uploads()) == 1  # the upload really started
    # Nothing under the final name before commit (local: only its temporary file).
    assert f"{backup_id}/dump.pgc" not in repository.raw_keys()
    assert repository.repo.list_manifests().incomplete == []
    writer.abort()
    writer.abort()  # twice is harmless (the pipeline may abort on its way out)

    listing = repository.repo.list_manifests()
    assert listing.manifests == [] and listing.incomplete == []
    assert repository.raw_keys() == []
    assert repository.open_uploads() == []


def test_delete_removes_every_file_of_the_backup_only(repository: RepoCase) -> None:
    gone = write_backup(repository, b"first")
    repository.repo.write_file(gone.backup_id, "drill-20260101T000000Z.json", b"{}")
    kept = write_backup(repository, b"second")

    repository.repo.delete_backup(gone.backup_id)

    assert [m.backup_id for m in repository.repo.list_manifests().manifests] == [kept.backup_id]
    assert all(not k.startswith(gone.backup_id) for k in repository.raw_keys())
    with pytest.raises(BackupNotFound):
        repository.repo.read_manifest(gone.backup_id)
    assert read_all(repository, kept.backup_id) == b"second"


@pytest.mark.parametrize(
    "bad",
    ["../../etc", "20260101T000000Z-abc/../x", "", "latest", "20260101T000000Z-ABCDEF", "a\0b"],
)
def test_bad_ids_are_refused_before_any_io(repository: RepoCase, bad: str) -> None:
    repo = repository.repo
    if repository.kind != "local":
        # Any request would fail loudly: a client pointed at a closed port.
        repo = type(repo)(
            repo.name, repo.url, {**repo.options, "endpoint_url": "http://127.0.0.1:9"}
        )
    for call in (
        lambda: repo.artifact_writer(bad, "dump.pgc"),
        lambda: repo.read_manifest(bad),
        lambda: repo.open_artifact(bad, "dump.pgc"),
        lambda: repo.delete_backup(bad),
        lambda: repo.write_file(bad, "drill-x.json", b"{}"),
        lambda: repo.locked_until(bad) if repository.kind != "local" else check(bad),
    ):
        with pytest.raises(BackupIdInvalid):
            call()
    assert repository.raw_keys() == []


def check(value: str) -> None:
    from ops.backup.manifest import check_backup_id

    check_backup_id(value)


def test_backups_of_one_second_list_by_their_start_time_not_their_random_suffix(
    repository: RepoCase,
) -> None:
    early = manifest_for("20261203T101010Z-zzzzzz", [])
    late = manifest_for("20261203T101010Z-aaaaaa", [])
    early.started_at, late.started_at = (
        "2026-12-03T10:10:10.100000+00:00",
        ("2026-12-03T10:10:10.900000+00:00"),
    )
    repository.repo.write_manifest(late)
    repository.repo.write_manifest(early)
    listed = [m.backup_id for m in repository.repo.list_manifests().manifests]
    assert listed == [early.backup_id, late.backup_id]
