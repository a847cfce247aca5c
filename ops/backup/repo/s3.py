"""A backup repository in S3 or an S3-compatible store (``s3://bucket/prefix``), via boto3.

boto3 is imported when a repository of this kind is opened, never at ops import
time. An artifact is a multipart upload streamed from the pipeline (no local
copy): buffered to the part size, completed on commit, aborted on abort and on
any failure; an artifact smaller than one part is a single PUT on commit.
Nothing is visible under the key until then, and listing shows only finished
objects (an open multipart upload is not an object).

botocore retries throttling (503 SlowDown) and 5xx with backoff ("standard"
mode, ``max_attempts``); what still fails becomes RepositoryError through the
base's guard, with a message and a fix that never hold a credential.

With ``object_lock_mode``/``object_lock_days`` every object written carries a
retention date, so stolen credentials cannot delete a backup before it; delete
removes object *versions*, so the lock is honoured (a plain delete in a
versioned bucket would only hide the data behind a delete marker).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from ops.backup.manifest import MANIFEST_NAME, check_backup_id
from ops.backup.repo.base import ArtifactWriter, Repository
from ops.errors import ConfigError

log = logging.getLogger(__name__)

MIB = 1 << 20
# S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10,000 of them.
_MIN_PART_MB = 5
_MAX_PART = 5 << 30
_MAX_PARTS = 10_000
_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0

# The [backup.repos.<name>] options of the s3 kind: name -> (type, default, doc).
# ops/backup/settings.py's REPO table declares the same ones for the config schema.
S3_OPTIONS: dict[str, tuple[type, Any, str]] = {
    "endpoint_url": (str, "", "an S3-compatible endpoint (R2, MinIO, rclone); empty: AWS"),
    "region": (str, "", "the bucket's region; empty: boto3's (AWS_REGION, the profile)"),
    "profile": (str, "", "an AWS profile; empty: boto3's chain (env, profile, instance role)"),
    "sse": (str, "", 'server-side encryption: "" (the bucket default), "AES256" or "aws:kms"'),
    "kms_key_id": (str, "", "the KMS key for sse = aws:kms (empty: the AWS-managed key)"),
    "object_lock_mode": (
        str, "", 'S3 Object Lock on every object: "", "GOVERNANCE" or "COMPLIANCE"',
    ),
    "object_lock_days": (int, 0, "days each object stays locked (with object_lock_mode)"),
    "addressing_style": (str, "auto", 'bucket addressing: "auto", "path" or "virtual"'),
    "part_size_mb": (int, 8, "multipart part size in MiB (5 or more)"),
    "max_attempts": (int, 5, "attempts per request, botocore retries with backoff included"),
}  # fmt: skip

_LOCK_MODES = ("", "GOVERNANCE", "COMPLIANCE")
_SSE = ("", "AES256", "aws:kms")
_STYLES = ("auto", "path", "virtual")
_DENIED = {"AccessDenied", "AllAccessDisabled", "Forbidden", "403"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}


class S3DeleteRefused(Exception):
    """DeleteObjects answered per-key errors (a version under Object Lock, a denied key)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        self.codes = sorted({str(e.get("Code", "")) for e in errors})
        shown = ", ".join(str(e.get("Key", "?")) for e in errors[:3])
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        super().__init__(
            f"S3 refused to delete {len(errors)} object version(s) ({'/'.join(self.codes)}): "
            f"{shown}{more}"
        )


class _S3Writer(ArtifactWriter):
    """One multipart upload (or one PUT when it stays under a part) of ``key``."""

    def __init__(self, repo: S3Repository, key: str) -> None:
        self.repo = repo
        self.key = repo.key_of(key)
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.closed = False
        self.args = repo.write_args()  # one retain-until date for the whole artifact

    def _part_size(self) -> int:
        # Double the part size every 1000 parts, so an artifact can grow past
        # 10,000 x part_size (80 GB at 8 MiB) without a larger buffer for small ones.
        return min(self.repo.part_size << (len(self.parts) // 1000), _MAX_PART)

    def write(self, chunk: bytes) -> None:
        assert not self.closed, "write after commit or abort"
        self.buffer += chunk
        while len(self.buffer) >= self._part_size():
            size = self._part_size()
            # The buffer itself is the part (cut at its size, in place), and only the
            # tail past it (under one chunk) is copied: about one part in memory.
            data, self.buffer = self.buffer, bytearray(memoryview(self.buffer)[size:])
            del data[size:]
            self._failsafe("upload a part of", lambda d=data: self._upload_part(d))
            del data

    def commit(self) -> None:
        assert not self.closed, "commit after commit or abort"
        if self.upload_id is None:
            body = bytes(self.buffer)
            self._failsafe("write", lambda: self.repo.put_object(self.key, body, self.args))
        else:
            if self.buffer:
                last = bytes(self.buffer)
                self._failsafe("upload a part of", lambda: self._upload_part(last))
            self._failsafe("complete the upload of", self._complete)
        self.buffer = bytearray()
        self.closed = True

    def abort(self) -> None:
        """Abort the multipart upload (its parts are billed until then); idempotent."""
        self.closed = True
        self.buffer = bytearray()
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None:
            return
        client = self.repo.client
        # When this fails too (the endpoint is down), S3 keeps the parts until a
        # lifecycle rule or abort_stale_uploads (run before each new upload) removes them.
        self.repo._guard(
            f"abort the multipart upload of {self.key} in",
            lambda: client.abort_multipart_upload(
                Bucket=self.repo.bucket, Key=self.key, UploadId=upload_id
            ),
        )

    # -- I/O ---------------------------------------------------------------------------
    def _failsafe(self, what: str, action: Any) -> None:
        """Run ``action``; on any failure abort the upload, then raise RepositoryError."""
        try:
            self.repo._guard(what, action)
        except BaseException:  # KeyboardInterrupt too: never leave parts behind
            with contextlib.suppress(Exception):
                self.abort()
            raise

    def _upload_part(self, data: bytes | bytearray) -> None:
        client = self.repo.client
        if self.upload_id is None:
            answer = client.create_multipart_upload(
                Bucket=self.repo.bucket, Key=self.key, **self.args
            )
            self.upload_id = str(answer["UploadId"])
        if len(self.parts) >= _MAX_PARTS:
            raise ValueError(f"{self.key} needs more than {_MAX_PARTS} parts")
        number = len(self.parts) + 1
        answer = client.upload_part(
            Bucket=self.repo.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
        )
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        for name in ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumSHA1", "ChecksumSHA256"):
            if answer.get(name):
                part[name] = answer[name]
        self.parts.append(part)

    def _complete(self) -> None:
        self.repo.client.complete_multipart_upload(
            Bucket=self.repo.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )
        self.upload_id = None  # completed: nothing left to abort
        if "ObjectLockMode" in self.args:
            # AWS applies the lock given at CreateMultipartUpload; some stores (moto)
            # drop it on completion. Setting the same date again is allowed, and sure.
            self.repo.client.put_object_retention(
                Bucket=self.repo.bucket,
                Key=self.key,
                Retention={
                    "Mode": self.args["ObjectLockMode"],
                    "RetainUntilDate": self.args["ObjectLockRetainUntilDate"],
                },
            )


class S3Repository(Repository):
    """Backups under ``s3://bucket/prefix/<backup_id>/...`` (see the module docstring)."""

    kind = "s3"

    def __init__(self, name: str, url: str, options: dict[str, Any]) -> None:
        super().__init__(name, url, options)
        rest = url.split("://", 1)[1] if "://" in url else ""
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ConfigError(
                f"backup repository {name!r}: {url!r} names no bucket",
                hint="use url = s3://BUCKET or s3://BUCKET/PREFIX",
            )
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        opt = {k: options.get(k, spec[1]) for k, spec in S3_OPTIONS.items()}
        problems = []
        if opt["sse"] not in _SSE:
            problems.append(f"sse = {opt['sse']!r} (use one of {_SSE})")
        if opt["kms_key_id"] and opt["sse"] != "aws:kms":
            problems.append('kms_key_id is set but sse is not "aws:kms"')
        if opt["object_lock_mode"] not in _LOCK_MODES:
            problems.append(f"object_lock_mode = {opt['object_lock_mode']!r} (use {_LOCK_MODES})")
        if bool(opt["object_lock_mode"]) != (int(opt["object_lock_days"] or 0) > 0):
            problems.append("object_lock_mode and object_lock_days go together (both or neither)")
        if opt["addressing_style"] not in _STYLES:
            problems.append(f"addressing_style = {opt['addressing_style']!r} (use {_STYLES})")
        if int(opt["part_size_mb"]) < _MIN_PART_MB:
            problems.append(f"part_size_mb = {opt['part_size_mb']} (S3 needs 5 or more)")
        if int(opt["max_attempts"]) < 1:
            problems.append(f"max_attempts = {opt['max_attempts']} (use 1 or more)")
        if problems:
            raise ConfigError(
                f"backup repository {name!r}: " + "; ".join(problems),
                hint=f"fix [backup.repos.{name}] in empire-ops.toml",
            )
        self.opt = opt
        self.part_size = int(opt["part_size_mb"]) * MIB
        self.max_attempts = int(opt["max_attempts"])
        self._client: Any = None
        self._swept = False

    def describe(self) -> str:
        where = f" at {self.opt['endpoint_url']}" if self.opt["endpoint_url"] else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use (boto3 imported only then)."""
        if self._client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            session = boto3.session.Session(
                profile_name=self.opt["profile"] or None, region_name=self.opt["region"] or None
            )
            self._client = session.client(
                "s3",
                endpoint_url=self.opt["endpoint_url"] or None,
                config=BotoConfig(
                    connect_timeout=CONNECT_TIMEOUT,
                    read_timeout=READ_TIMEOUT,
                    # total_max_attempts counts the first request too (max_attempts would not).
                    retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
                    s3={"addressing_style": self.opt["addressing_style"]},
                ),
            )
        return self._client

    def key_of(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def write_args(self) -> dict[str, Any]:
        """The PutObject/CreateMultipartUpload arguments every object gets (SSE, lock)."""
        args: dict[str, Any] = {}
        if self.opt["sse"]:
            args["ServerSideEncryption"] = self.opt["sse"]
            if self.opt["kms_key_id"]:
                args["SSEKMSKeyId"] = self.opt["kms_key_id"]
        if self.opt["object_lock_mode"]:
            args["ObjectLockMode"] = self.opt["object_lock_mode"]
            args["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(
                days=int(self.opt["object_lock_days"])
            )
        return args

    def put_object(self, key: str, data: bytes, args: dict[str, Any] | None = None) -> None:
        """One PUT of a whole object (its full key), with the SSE and lock arguments."""
        extra = self.write_args() if args is None else args
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)

    # -- the base's I/O ------------------------------------------------------------------
    def _writer(self, key: str) -> ArtifactWriter:
        if not self._swept:
            self._swept = True
            try:  # what an earlier run could not abort; never a reason to fail this one
                self.abort_stale_uploads()
            except Exception as exc:
                log.info("could not look for stale uploads in %s: %s", self.name, exc)
        return _S3Writer(self, key)

    def _put(self, key: str, data: bytes) -> None:
        self.put_object(self.key_of(key), data)  # a PUT is atomic: the old or the new whole

    def _get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key_of(key))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        body = answer["Body"]
        try:
            return bytes(body.read())
        finally:
            body.close()

    def _open(self, key: str) -> IO[bytes]:
        answer = self.client.get_object(Bucket=self.bucket, Key=self.key_of(key))
        stream: IO[bytes] = answer["Body"]  # botocore's StreamingBody: read(n), close()
        return stream

    def _list(self, prefix: str) -> list[str]:
        # ListObjectsV2 shows finished objects only: open multipart uploads are not listed.
        out = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.key_of(prefix)
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"])[len(self.prefix) :]
                # Only <folder>/<file>: deeper keys and files at the root are not ours.
                if key.count("/") == 1 and not key.endswith("/"):
                    out.append(key)
        return sorted(out)

    def _delete(self, keys: list[str]) -> None:
        # Delete every version of each key: with Object Lock (a versioned bucket) a
        # plain delete adds a delete marker and leaves the data; deleting a locked
        # version fails, which is the point of the lock.
        targets: list[dict[str, str]] = []
        for key in keys:
            targets += self._versions(self.key_of(key))
        errors: list[dict[str, Any]] = []
        for start in range(0, len(targets), _DELETE_BATCH):
            batch = targets[start : start + _DELETE_BATCH]
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
            errors += answer.get("Errors", [])
        if errors:
            raise S3DeleteRefused(errors)

    def _versions(self, full_key: str) -> list[dict[str, str]]:
        from botocore.exceptions import ClientError

        try:
            pages = self.client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=full_key
            )
            found = []
            for page in pages:
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if item["Key"] == full_key:
                        found.append({"Key": full_key, "VersionId": str(item["VersionId"])})
        except ClientError as exc:
            if _code(exc) not in ("NotImplemented", "501", "MethodNotAllowed"):
                raise
            found = []  # a store without versions (some S3-compatible ones): the key
        return found or [{"Key": full_key}]

    # -- S3 only ---------------------------------------------------------------------------
    def locked_until(self, backup_id: str) -> datetime | None:
        """When the Object Lock retention of ``backup_id``'s manifest ends, if still ahead.

        (Reading it needs s3:GetObjectRetention; without it S3 hides the date.)

        None when the bucket has no Object Lock, the manifest has no retention or it
        has passed. Raises RepositoryError when S3 cannot be asked.
        """
        key = self.key_of(f"{check_backup_id(backup_id)}/{MANIFEST_NAME}")

        def ask() -> datetime | None:
            from botocore.exceptions import ClientError

            # HeadObject carries the retention (ObjectLockRetainUntilDate) when there is
            # one, in one request every S3-compatible store answers; GetObjectRetention
            # errs differently per store when the bucket or the object has no lock.
            try:
                answer = self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
            until = answer.get("ObjectLockRetainUntilDate")
            if not isinstance(until, datetime):
                return None
            until = until.astimezone(UTC)
            return until if until > datetime.now(UTC) else None

        result: datetime | None = self._guard("read the Object Lock retention of", ask)
        return result

    def open_uploads(self) -> list[dict[str, Any]]:
        """The multipart uploads open under the prefix (``Key``, ``UploadId``, ``Initiated``)."""

        def ask() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                out += page.get("Uploads", [])
            return out

        result: list[dict[str, Any]] = self._guard("list the open uploads of", ask)
        return result

    def abort_stale_uploads(self, older_than: timedelta = timedelta(days=1)) -> list[str]:
        """Abort open multipart uploads under the prefix started ``older_than`` ago; their keys.

        What a writer could not abort (the endpoint was down) is removed here; a
        lifecycle rule (AbortIncompleteMultipartUpload) does the same on AWS.
        """
        cutoff = datetime.now(UTC) - older_than
        aborted = []
        for upload in self.open_uploads():
            started = upload.get("Initiated")
            if isinstance(started, datetime) and started.astimezone(UTC) > cutoff:
                continue  # maybe another run's upload in progress
            self._guard(
                "abort an upload in",
                lambda u=upload: self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"]
                ),
            )
            aborted.append(str(upload["Key"]))
        return aborted

    # -- messages ------------------------------------------------------------------------
    def _map_error(self, exc: Exception) -> str:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            op = getattr(exc, "operation_name", "")
            text = f"S3 answered {_code(exc) or '?'} (HTTP {status}) to {op}"
            message = str(exc.response.get("Error", {}).get("Message", ""))
            if message:
                text += f": {message[:200]}"
        else:
            text = f"{type(exc).__name__}: {exc}"
        return self._scrub(text)

    def _hint(self, exc: Exception) -> str | None:
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            ConnectionError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        where = f"[backup.repos.{self.name}]"
        if isinstance(exc, S3DeleteRefused):
            if "AccessDenied" in exc.codes:
                return (
                    "a version under S3 Object Lock cannot be deleted before its retain-until "
                    "date (prune reports it as locked); otherwise allow s3:DeleteObject and "
                    "s3:DeleteObjectVersion on the prefix"
                )
            return "check the bucket policy for s3:DeleteObject and s3:DeleteObjectVersion"
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return (
                "give boto3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                f"profile = ... in {where}, or an instance role"
            )
        if isinstance(exc, NoRegionError):
            return f"set region = ... in {where} or AWS_REGION"
        if isinstance(
            exc, (EndpointConnectionError, ReadTimeoutError, ConnectionError, ConnectionClosedError)
        ):
            return (
                f"the S3 endpoint did not answer after {self.max_attempts} attempts; check "
                f"endpoint_url and the network, or raise max_attempts in {where}"
            )
        if isinstance(exc, ClientError):
            code = _code(exc)
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code == "NoSuchBucket":
                return f"create the bucket {self.bucket!r}, or fix url in {where}"
            if code in _BAD_CREDENTIALS:
                return "the S3 credentials are wrong or expired for this endpoint; renew them"
            if code.startswith("KMS") or "kms" in str(exc).lower():
                return (
                    f"check kms_key_id in {where} and that the credentials may use it "
                    "(kms:GenerateDataKey to write, kms:Decrypt to read)"
                )
            if code in _DENIED or status == 403:
                return (
                    f"allow s3:ListBucket, s3:GetObject, s3:PutObject, s3:AbortMultipartUpload "
                    f"and s3:DeleteObject on s3://{self.bucket}/{self.prefix}*"
                )
            if code in ("SlowDown", "ServiceUnavailable", "InternalError") or status >= 500:
                return (
                    f"S3 kept failing after {self.max_attempts} attempts with backoff; run "
                    f"again later or raise max_attempts in {where}"
                )
            if code == "InvalidRequest" and self.opt["object_lock_mode"]:
                return "object_lock_mode needs a bucket created with Object Lock enabled"
        return None

    def _scrub(self, text: str) -> str:
        """``text`` without the credentials' secret (a store could echo it; never show it)."""
        with contextlib.suppress(Exception):
            creds = self.client._request_signer._credentials
            for value in (getattr(creds, "secret_key", None), getattr(creds, "token", None)):
                if value and value in text:
                    text = text.replace(value, "***")
        return text


def _code(exc: Any) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
