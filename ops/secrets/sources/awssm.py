"""The ``awssm`` source: AWS Secrets Manager through boto3 (imported only here, lazily).

``mode = "json"`` (default): one secret (``secret_id``) holds a JSON object of
name -> value. ``mode = "per-key"``: each secret named ``<prefix><NAME>`` holds
one value. Region, profile and endpoint can be overridden (else the usual
``AWS_*`` environment). Timeouts are short and botocore retries at most once.

Deleting (``sync --prune`` in per-key mode) never destroys a secret at once:
it is scheduled for deletion with a recovery window (``recovery_window``,
default 7 days, AWS allows 7 to 30) during which ``aws secretsmanager
restore-secret`` brings it back; writing the name again restores it first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from ops.config import parse_duration
from ops.errors import ConfigError
from ops.secrets.errors import (
    SourceAccessDenied,
    SourceInvalid,
    SourceNotFound,
    SourceUnavailable,
)
from ops.secrets.sources.base import RawSecrets, SecretSource

T = TypeVar("T")
_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
}
_NOT_FOUND = {"ResourceNotFoundException"}
DEFAULT_RECOVERY_DAYS = 7


class AwsSecretsManagerSource(SecretSource):
    """A JSON secret (or one secret per key) in AWS Secrets Manager."""

    type = "awssm"
    remote = True
    writable = True

    @property
    def per_key(self) -> bool:
        return self.options.get("mode") == "per-key"

    @property
    def secret_id(self) -> str:
        return str(self.options.get("secret_id") or "")

    @property
    def prefix(self) -> str:
        return str(self.options.get("prefix") or "")

    @property
    def configured(self) -> bool:
        return bool(self.prefix if self.per_key else self.secret_id)

    @property
    def recovery_days(self) -> int:
        """Days a deleted secret stays restorable: ``recovery_window`` (7d-30d), default 7.

        Raises ConfigError for a value AWS would refuse (e.g. from a URL's query).
        """
        text = self.options.get("recovery_window")
        if not text:
            return DEFAULT_RECOVERY_DAYS
        try:
            days = parse_duration(str(text)) / 86400
        except ValueError as exc:
            raise ConfigError(f"secrets.sources.{self.name}.recovery_window: {exc}") from None
        if days != int(days) or not 7 <= days <= 30:
            raise ConfigError(
                f"secrets.sources.{self.name}.recovery_window: {text!r} is not a whole number "
                "of days from 7d to 30d",
                hint="AWS keeps a deleted secret restorable for 7 to 30 days; the default is 7d",
            )
        return int(days)

    def describe(self) -> str:
        if not self.configured:
            return "not configured"
        region = self.options.get("region") or ""
        where = f"{self.prefix}*" if self.per_key else self.secret_id
        return f"{where}{' in ' + region if region else ''}"

    # ------------------------------------------------------------------ I/O
    def _client(self) -> Any:
        import boto3
        from botocore.config import Config as BotoConfig

        timeout = self.call_timeout()
        session = boto3.session.Session(
            profile_name=self.options.get("profile"), region_name=self.options.get("region")
        )
        return session.client(
            "secretsmanager",
            endpoint_url=self.options.get("endpoint_url"),
            config=BotoConfig(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 1, "mode": "standard"},
            ),
        )

    def _call(self, fn: Callable[[], T], what: str) -> T:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            NoRegionError,
        )

        try:
            return fn()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in _NOT_FOUND:
                raise SourceNotFound(f"AWS secret {what} does not exist") from None
            if code in _DENIED or status in (401, 403):
                raise SourceAccessDenied(
                    f"AWS denied access to {what} ({code})",
                    hint="check the IAM policy: secretsmanager:GetSecretValue on this secret",
                ) from None
            raise SourceUnavailable(f"AWS answered {code or status} for {what}") from None
        except NoCredentialsError:
            raise SourceAccessDenied(
                "no AWS credentials",
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile",
            ) from None
        except NoRegionError:
            raise SourceUnavailable(
                "no AWS region", hint="set region in [secrets.sources.awssm] or AWS_REGION"
            ) from None
        except BotoCoreError as exc:
            raise SourceUnavailable(f"cannot reach AWS ({type(exc).__name__})") from None

    def _get(self, client: Any, secret_id: str) -> tuple[str, str]:
        answer = self._call(lambda: client.get_secret_value(SecretId=secret_id), secret_id)
        if "SecretString" not in answer:
            raise SourceInvalid(f"AWS secret {secret_id} is binary, not a string")
        return str(answer["SecretString"]), str(answer.get("VersionId", ""))[:8]

    def _json_document(self, client: Any) -> tuple[dict[str, Any], str]:
        text, version = self._get(client, self.secret_id)
        try:
            data = json.loads(text)
        except ValueError:
            raise SourceInvalid(f"AWS secret {self.secret_id} is not a JSON object") from None
        if not isinstance(data, dict):
            raise SourceInvalid(f"AWS secret {self.secret_id} is not a JSON object")
        return data, version

    def _names(self, client: Any) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Filters": [{"Key": "name", "Values": [self.prefix]}]}
            if token:
                kwargs["NextToken"] = token
            page = self._call(partial(client.list_secrets, **kwargs), f"{self.prefix}*")
            # A secret scheduled for deletion (pruned, still restorable) holds no value.
            names += [
                s["Name"]
                for s in page.get("SecretList", [])
                if s["Name"].startswith(self.prefix) and "DeletedDate" not in s
            ]
            token = page.get("NextToken")
            if not token:
                return names

    def _fetch_raw(self) -> RawSecrets:
        client = self._client()
        if not self.per_key:
            data, version = self._json_document(client)
            detail = f"{self.secret_id}@{version}"
            return {
                k: (v if isinstance(v, str) else json.dumps(v), detail) for k, v in data.items()
            }
        result: RawSecrets = {}
        for full in self._names(client):
            self.call_timeout()  # stop when the remote budget is spent
            value, version = self._get(client, full)
            result[full[len(self.prefix) :]] = (value, f"{full}@{version}")
        return result

    def _put(self, client: Any, secret_id: str, text: str) -> None:
        from botocore.exceptions import ClientError

        try:
            client.put_secret_value(SecretId=secret_id, SecretString=text)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _NOT_FOUND:
                raise
            self._call(lambda: client.create_secret(Name=secret_id, SecretString=text), secret_id)

    def _scheduled_for_deletion(self, client: Any) -> set[str]:
        """Names under the prefix that a prune scheduled for deletion (still restorable)."""
        names: set[str] = set()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "Filters": [{"Key": "name", "Values": [self.prefix]}],
                "IncludePlannedDeletion": True,
            }
            if token:
                kwargs["NextToken"] = token
            page = self._call(partial(client.list_secrets, **kwargs), f"{self.prefix}*")
            names |= {s["Name"] for s in page.get("SecretList", []) if "DeletedDate" in s}
            token = page.get("NextToken")
            if not token:
                return names

    def _write_raw(self, values: dict[str, str]) -> None:
        client = self._client()
        if self.per_key:
            # AWS refuses to write a secret scheduled for deletion: bring a pruned name back first.
            pruned = self._scheduled_for_deletion(client)
            for name, value in values.items():
                full = self.prefix + name
                if full in pruned:
                    self._call(partial(client.restore_secret, SecretId=full), full)
                self._call(partial(self._put, client, full, value), name)
            return
        try:
            data, _ = self._json_document(client)
        except SourceNotFound:
            data = {}
        data.update(values)
        self._call(lambda: self._put(client, self.secret_id, json.dumps(data)), self.secret_id)

    def _delete_raw(self, names: list[str]) -> None:
        client = self._client()
        if self.per_key:
            days = self.recovery_days
            for name in names:
                full = self.prefix + name
                self._call(
                    partial(client.delete_secret, SecretId=full, RecoveryWindowInDays=days),
                    full,
                )
            return
        data, _ = self._json_document(client)
        kept = {k: v for k, v in data.items() if k not in names}
        self._call(lambda: self._put(client, self.secret_id, json.dumps(kept)), self.secret_id)
