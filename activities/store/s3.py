"""The S3-compatible backend (AWS S3, MinIO, GCS through its XML API with HMAC keys), through boto3.

Layout: `<prefix><scope, percent-encoded>/<sha256>`. Puts are plain PUTs of content-addressed keys: the
same name always carries the same bytes, so a repeated put changes nothing. Errors become the store's
own: unreachable endpoints and 5xx answers are StoreUnavailable (retried by Temporal), a missing bucket
or refused credentials StoreMisconfigured (not retried), each in one line naming the setting to check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from activities.store.base import (
    BlobMissing,
    ScopeUsage,
    StoreError,
    StoreMisconfigured,
    StoreUnavailable,
    reference,
    verified,
)
from contracts.store import BlobRef

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"NoSuchKey", "404", "NotFound"}
_UNAVAILABLE = {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "503", "500"}
_DELETE_BATCH = 1000


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str | None = None,
                 path_style: bool = False, access_key_id: str | None = None, secret_access_key: str | None = None,
                 session_token: str | None = None) -> None:
        if not bucket:
            raise StoreMisconfigured("SPEC2SHIP_STORE=s3 needs a bucket: set SPEC2SHIP_STORE_BUCKET")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket, self.prefix, self.endpoint_url = bucket, prefix.lstrip("/"), endpoint_url
        config = Config(
            region_name=region, connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3},
            s3={"addressing_style": "path" if path_style else "auto"},
            # Checksums only where the API requires them: S3-compatible stores (GCS, older MinIO) refuse the rest.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        try:
            self._client: S3Client = boto3.client(
                "s3", endpoint_url=endpoint_url or None, config=config, aws_access_key_id=access_key_id or None,
                aws_secret_access_key=secret_access_key or None, aws_session_token=session_token or None)
        except (BotoCoreError, ValueError) as error:
            raise StoreMisconfigured(f"the S3 store cannot be set up ({error}); check SPEC2SHIP_STORE_ENDPOINT and "
                                     "SPEC2SHIP_STORE_REGION") from None

    @property
    def description(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    def _scope_prefix(self, scope: str) -> str:
        return f"{self.prefix}{quote(scope, safe='')}/"

    def _key(self, ref: BlobRef) -> str:
        return self._scope_prefix(ref.scope) + ref.sha256

    def check(self) -> None:
        with self._errors("checking the bucket"):
            self._client.head_bucket(Bucket=self.bucket)

    def put(self, scope: str, data: bytes) -> BlobRef:
        ref = reference(scope, data)
        with self._errors(f"writing blob {ref.sha256[:12]}"):
            self._client.put_object(Bucket=self.bucket, Key=self._key(ref), Body=data,
                                    ContentType="application/octet-stream")
        return ref

    def get(self, ref: BlobRef) -> bytes:
        with self._errors(f"reading blob {ref.sha256[:12]} of {ref.scope!r}"):
            answer = self._client.get_object(Bucket=self.bucket, Key=self._key(ref))
            data = answer["Body"].read()
        return verified(ref, data, self.description)

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            yield from page.get("Contents", [])  # type: ignore[misc]

    def scopes(self) -> list[ScopeUsage]:
        found: dict[str, ScopeUsage] = {}
        with self._errors("listing scopes"):
            for item in self._objects(self.prefix):
                encoded, _, name = item["Key"][len(self.prefix):].partition("/")
                if not name or "/" in name:
                    continue  # not one of ours
                scope = unquote(encoded)
                usage = found.setdefault(scope, ScopeUsage(scope=scope, blobs=0, bytes=0, newest=None))
                usage.blobs += 1
                usage.bytes += int(item.get("Size", 0))
                modified = item.get("LastModified")
                if modified is not None and (usage.newest is None or modified > usage.newest):
                    usage.newest = modified
        return sorted(found.values(), key=lambda usage: usage.scope)

    def delete_scope(self, scope: str) -> int:
        removed = 0
        with self._errors(f"removing scope {scope!r}"):
            keys = [item["Key"] for item in self._objects(self._scope_prefix(scope))]
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start:start + _DELETE_BATCH]
                answer = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
                failed = answer.get("Errors", [])
                if failed:
                    first = failed[0]
                    raise StoreMisconfigured(f"{len(failed)} blob(s) of {scope!r} in {self.description} not removed: "
                                             f"{first.get('Code')}: {first.get('Message')}")
                removed += len(batch)
        return removed

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn boto3's exceptions into the store's, with a message that says where and what to check."""
        try:
            yield
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise StoreMisconfigured(f"{doing} in {self.description}: no usable credentials ({error}); set "
                                     "SPEC2SHIP_STORE_ACCESS_KEY_ID and SPEC2SHIP_STORE_SECRET_ACCESS_KEY, or the "
                                     "AWS_* variables") from None
        except ClientError as error:
            raise self._refusal(doing, error) from None
        except BotoCoreError as error:
            raise StoreUnavailable(f"{doing}: {self.description} is unreachable ({error}); check "
                                   "SPEC2SHIP_STORE_ENDPOINT and the network") from None

    def _refusal(self, doing: str, error: ClientError) -> StoreError:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = error.response.get("Error", {}).get("Message", "") or code
        where = self.description
        if code in _MISSING and "bucket" not in doing:
            return BlobMissing(f"{doing}: not in {where} (removed by the janitor, or written to another store: check "
                               "SPEC2SHIP_STORE* on every worker)")
        if code in _UNAVAILABLE or status >= 500:
            return StoreUnavailable(f"{doing} in {where}: the store answered {code or status}: {message}; it will be "
                                    "retried")
        if code in {"NoSuchBucket", "404", "NotFound"}:
            return StoreMisconfigured(f"{doing}: bucket {self.bucket!r} does not exist at "
                                      f"{self.endpoint_url or 'AWS'}; create it or set SPEC2SHIP_STORE_BUCKET")
        return StoreMisconfigured(f"{doing} in {where}: refused with {code or status}: {message}; check the "
                                  "credentials, the bucket policy and SPEC2SHIP_STORE_PATH_STYLE")
