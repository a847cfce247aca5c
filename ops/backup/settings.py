"""The ``[backup]`` config section (light: no SDK imports, read by the config loader)."""

from __future__ import annotations

import re
from typing import Any

from ops.config import Field, Table, _is_count, _is_duration
from ops.supabase_schemas import SUPABASE_SCHEMAS

SECTION_NAME = "backup"
COMPRESSIONS = ("zstd", "pg_dump", "none")
_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")


def _zstd_level(v: Any) -> Any:
    if not 1 <= v <= 19:
        raise ValueError(f"{v} is not a zstd level (1 to 19; 3 is the default)")
    return v


def _duration_or_empty(v: Any) -> Any:
    return _is_duration(v) if v else v


def _recipients(v: Any) -> Any:
    for i, item in enumerate(v):
        if not isinstance(item, str) or not _AGE_RECIPIENT.fullmatch(item):
            raise ValueError(
                f"recipients[{i}] is not an age public key (age1... , 62 characters; "
                "make a pair with `age-keygen`, put the public key here and the identity "
                "in a secret)"
            )
    return v


def _schemas(v: Any) -> Any:
    for item in v:
        if not isinstance(item, str) or not item:
            raise ValueError(f"{item!r} is not a schema name")
    return v


REPO = Table(
    {
        "url": Field(str, "", "file:PATH (relative to the project root) or s3://bucket/prefix"),
        "endpoint_url": Field(str, "", "s3: an S3-compatible endpoint (R2, MinIO, rclone)"),
        "region": Field(str, "", "s3: the bucket's region"),
        "profile": Field(str, "", "s3: an AWS profile (default: boto3's credential chain)"),
        "sse": Field(str, "", "s3: server-side encryption", choices=("", "AES256", "aws:kms")),
        "kms_key_id": Field(str, "", "s3: the KMS key for sse = aws:kms"),
        "object_lock_mode": Field(
            str, "", "s3: Object Lock on every object", choices=("", "GOVERNANCE", "COMPLIANCE")
        ),
        "object_lock_days": Field(int, 0, "s3: days each object stays locked", _is_count),
        "addressing_style": Field(
            str, "auto", "s3: bucket addressing", choices=("auto", "path", "virtual")
        ),
        "part_size_mb": Field(int, 8, "s3: multipart part size in MiB (5 or more)", _is_count),
        "max_attempts": Field(int, 5, "s3: attempts per request (botocore retries)", _is_count),
    }
)

RETENTION = Table(
    {
        "keep_last": Field(int, 7, "always keep the newest N complete backups", _is_count),
        "keep_daily": Field(int, 7, "keep the newest backup of each of the last N days", _is_count),
        "keep_weekly": Field(int, 4, "... of each of the last N ISO weeks", _is_count),
        "keep_monthly": Field(int, 6, "... of each of the last N months", _is_count),
        "max_age": Field(
            str,
            "",
            'delete backups older than this unless a tier keeps them ("": never)',
            _duration_or_empty,
        ),
    }
)


def _probes(v: Any) -> Any:
    for i, probe in enumerate(v):
        if (
            not isinstance(probe, dict)
            or not isinstance(probe.get("sql"), str)
            or ("expect" not in probe)
        ):
            raise ValueError(
                f'probes[{i}]: expected a table {{ name = "...", sql = "select ...", '
                'expect = "..." }} (the first column of the first row, as text)'
            )
    return v


DRILL = Table(
    {
        "dsn_secret": Field(
            str, "", "a secret holding the drill server's DSN (default: the embedded server)"
        ),
        "rto_target": Field(
            str, "15m", "a drill slower than this (restore and checks) is DRILL_SLOW",
            _is_duration,
        ),
        "stale_after": Field(
            str, "8d", "DRILL_STALE when the newest drill report is older than this",
            _is_duration,
        ),
        "probes": Field(
            list, [], "queries run on the restored copy: {name, sql, expect}", _probes
        ),
    }
)  # fmt: skip

SECTION = Table(
    {
        "compression": Field(
            str, "zstd", "zstd (streamed, fast), pg_dump (its own gzip) or none",
            choices=COMPRESSIONS,
        ),
        "zstd_level": Field(int, 3, "zstd level, 1 (fast) to 19 (small)", _zstd_level),
        "recipients": Field(
            list, [], "age public keys to encrypt backups to (empty: not encrypted)", _recipients
        ),
        "identity_secret": Field(
            str, "BACKUP_AGE_IDENTITY",
            "the secret holding the age identity, needed only where restores and drills run",
        ),
        "exclude_schemas": Field(
            list, list(SUPABASE_SCHEMAS), "schemas left out of the dump (Supabase's own)",
            _schemas,
        ),
        "pg_dump": Field(str, "", "a pg_dump to use (default: the newest found)"),
        "lock_timeout": Field(
            str, "5s", "wait this long for another backup of the database, then exit 5",
            _is_duration,
        ),
        "stale_after": Field(
            str, "26h", "BACKUP_STALE when the newest verified backup is older than this",
            _is_duration,
        ),
        "secrets_snapshot": Field(
            bool, False,
            "store an encrypted secrets snapshot ([secrets.snapshot]) beside each backup",
        ),
        "restore_grants": Field(
            bool, True,
            "after a restore, give each object exactly the grants the backup recorded "
            "(pg_restore itself runs --no-privileges, as Supabase advises)",
        ),
        "repos": Table(
            item=REPO,
            doc="repositories: [backup.repos.<name>] url = ...; none: file:<state_dir>/backups",
        ),
        "retention": RETENTION,
        "drill": DRILL,
    }
)  # fmt: skip
