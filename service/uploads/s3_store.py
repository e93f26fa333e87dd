"""The object store behind service.uploads.uploader, through boto3: each call answers or raises
:class:`StoreError`, whose message names the store, the bucket and what to fix; and the ETag a file
gets there (:func:`etag_of`), against which an upload is verified."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from rigcore.config import RemoteStorageConfig
from rigcore.memory import MIB

# What a store's error code means for the operator.
_HINTS = {
    "InvalidAccessKeyId": "the store does not know this access key (storage.remote.access_key)",
    "SignatureDoesNotMatch": "the secret key does not match the access key (storage.remote.secret_key)",
    "NoSuchBucket": "the bucket does not exist; create it (the service never creates buckets)",
    "AccessDenied": "these credentials may not write to this bucket",
    "403": "forbidden: wrong credentials, or no permission to read back (s3:GetObject) what was written",
    "404": "not found: does the bucket exist?",
}
# Codes that concern the whole store, not one item: every item waits.
_STORE_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "AccessDenied", "403"}
)


class StoreError(Exception):
    """An attempt failed; the message names the store, the bucket and what to fix."""

    def __init__(self, message: str, *, store_level: bool) -> None:
        super().__init__(message)
        self.store_level = store_level


def target_of(cfg: RemoteStorageConfig) -> str:
    """The place a journal's objects are verified in (sessions.upload_queue.UploadRecord.target)."""
    return f"{cfg.endpoint or 'aws:' + cfg.region} {cfg.bucket} {cfg.prefix}"


def etag_of(path: Path, size: int, cfg: RemoteStorageConfig) -> str:
    """The ETag the store computes for this file uploaded as this module uploads it."""
    part = cfg.part_size_mb * MIB
    with path.open("rb") as fh:
        if size <= cfg.multipart_threshold_mb * MIB:
            return hashlib.md5(fh.read()).hexdigest()
        digests = [hashlib.md5(chunk).digest() for chunk in iter(lambda: fh.read(part), b"")]
    return f"{hashlib.md5(b''.join(digests)).hexdigest()}-{len(digests)}"


def _b64md5(data: bytes) -> tuple[str, str]:
    digest = hashlib.md5(data)
    return digest.hexdigest(), base64.b64encode(digest.digest()).decode("ascii")


def _etag(response: dict[str, Any]) -> str:
    return str(response.get("ETag", "")).strip('"')


class S3Store:
    """The object store through boto3: each call answers or raises StoreError."""

    def __init__(self, cfg: RemoteStorageConfig) -> None:
        self.cfg = cfg
        self.where = f"bucket {cfg.bucket} at endpoint {cfg.endpoint or f'AWS S3 ({cfg.region})'}"
        boto = BotoConfig(
            signature_version="s3v4",
            s3={"addressing_style": cfg.addressing_style},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=cfg.connect_timeout_s,
            read_timeout=cfg.read_timeout_s,
            max_pool_connections=cfg.concurrency + 2,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=cfg.endpoint,
            region_name=cfg.region,
            aws_access_key_id=cfg.access_key,
            aws_secret_access_key=cfg.secret_key,
            config=boto,
        )

    def error(self, exc: Exception, what: str) -> StoreError:
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
            hint = _HINTS.get(code) or err.get("Message") or "refused"
            return StoreError(
                f"S3 {code} for {self.where} ({what}): {hint}", store_level=code in _STORE_CODES
            )
        return StoreError(f"cannot reach the S3 store for {self.where} ({what}): {exc}", store_level=True)

    def head(self, key: str, *, probe: bool = False) -> tuple[int, str] | None:
        """(size, ETag) of an object, or None when there is none. A ``probe`` (is it there already?)
        also takes a 403 as "not there": a HEAD answer has no body to say why, and the PUT that
        follows fails with the store's own reason (InvalidAccessKeyId, AccessDenied, ...)."""
        try:
            r = self._client.head_object(Bucket=self.cfg.bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey") or (probe and code == "403"):
                return None
            raise self.error(exc, f"HEAD {key}") from exc
        except BotoCoreError as exc:
            raise self.error(exc, f"HEAD {key}") from exc
        return int(r["ContentLength"]), _etag(r)

    def put(self, key: str, data: bytes) -> str:
        """One PUT; returns the MD5 the store must answer as ETag."""
        md5, b64 = _b64md5(data)
        try:
            self._client.put_object(Bucket=self.cfg.bucket, Key=key, Body=data, ContentMD5=b64)
        except (ClientError, BotoCoreError) as exc:
            raise self.error(exc, f"PUT {key}") from exc
        return md5

    def begin(self, key: str) -> str:
        try:
            r = self._client.create_multipart_upload(Bucket=self.cfg.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self.error(exc, f"multipart upload of {key}") from exc
        return str(r["UploadId"])

    def part(self, key: str, upload_id: str, number: int, data: bytes) -> tuple[str, bytes]:
        """One part; returns (its ETag, its MD5 digest), the ETag checked against the MD5."""
        md5, b64 = _b64md5(data)
        try:
            r = self._client.upload_part(
                Bucket=self.cfg.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ContentMD5=b64,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self.error(exc, f"part {number} of {key}") from exc
        if _etag(r) != md5:
            raise StoreError(
                f"part {number} of {key} in {self.where}: ETag {_etag(r)} is not its MD5 {md5}",
                store_level=False,
            )
        return _etag(r), bytes.fromhex(md5)

    def complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        try:
            self._client.complete_multipart_upload(
                Bucket=self.cfg.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except (ClientError, BotoCoreError) as exc:
            raise self.error(exc, f"completing {key}") from exc

    def abort(self, key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.cfg.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
                raise self.error(exc, f"aborting the upload of {key}") from exc
        except BotoCoreError as exc:
            raise self.error(exc, f"aborting the upload of {key}") from exc
