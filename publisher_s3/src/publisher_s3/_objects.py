"""Object requests of a publish: PutObject and multipart uploads, each key recorded first.

Every request that may create an object is announced to the clean-up log before it is
sent (see ``_cleanup``); bodies carry their own checksum (SHA-256 for objects, CRC32 for
parts), which the store verifies where it can.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from isal import isal_zlib

from publisher_core import PublishError, sha256_b64

from ._cleanup import WriteLog, started_now, uploads_of
from ._client import attempts_of, describe_client_error, error_code
from ._spec import MIB

__all__ = [
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "Multipart",
    "part_size_for",
    "put_object",
    "sha256_of",
    "version_of",
]

_log = logging.getLogger(__name__)

MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * 1024 * MIB


def part_size_for(size: int, part_size: int) -> int:
    """The part size for a file of ``size`` bytes: the setting, grown to fit 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    return min(MAX_PART_SIZE, max(part_size, -(-needed // MIB) * MIB))


def sha256_of(data: bytes | bytearray | memoryview) -> str:
    """Base64 SHA-256 of ``data``, as S3 encodes ``x-amz-checksum-sha256``."""
    return sha256_b64(hashlib.sha256(data).digest())


def _crc32(data: bytes) -> str:
    """Base64 CRC32 of a part: the store checks it (ISA-L computes it at ~10 GB/s)."""
    return base64.b64encode(isal_zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


def version_of(reply: dict[str, Any]) -> str | None:
    """The version a write created: none where the bucket does not version objects.

    Stores answer ``null`` for an object written while versioning is off or suspended;
    it names no version a reader could pin, so it is not recorded.
    """
    version = reply.get("VersionId")
    return version if isinstance(version, str) and version and version != "null" else None


def put_object(
    client: Any,
    log: WriteLog,
    bucket: str,
    key: str,
    data: bytes,
    content_type: str,
    *,
    arguments: Mapping[str, Any],
    create_only: bool = False,
) -> str | None:
    """PutObject ``data`` at ``key`` with its SHA-256; return the version it created.

    ``arguments`` are the result's object attributes (encryption, tags...; see
    ``_attributes.object_arguments``). ``create_only`` sends ``If-None-Match: *``: a store
    that honours it refuses (412 PreconditionFailed) when ``key`` exists.
    """
    checksum = sha256_of(data)
    request = dict(arguments)
    if create_only:
        request["IfNoneMatch"] = "*"
    log.writing(key)
    try:
        reply = client.put_object(
            **request,
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",  # the store verifies and keeps our value where it can
            ChecksumSHA256=checksum,
        )
    except BaseException as exc:
        reply = _put_before(client, log, bucket, key, data, exc) if create_only else None
        if reply is None:
            log.not_written(key, exc)
            raise
    version = version_of(reply)
    log.written(key, version)
    return version


def _put_before(
    client: Any, log: WriteLog, bucket: str, key: str, data: bytes, exc: BaseException
) -> dict[str, Any] | None:
    """The object, if ``exc`` is a 412 because an earlier attempt of this PutObject stored it.

    A conditional PutObject whose reply was lost is retried, and the retry finds the
    object the first attempt made. It is ours if it is newer than this publish and holds
    these bytes (by the SHA-256 the store kept, else the plain ETag, an MD5).
    """
    if (attempts_of(exc) or 1) < 2 or error_code(exc) != "PreconditionFailed":
        return None
    try:
        head: dict[str, Any] = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except Exception:
        return None
    md5 = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    ours = head.get("ChecksumSHA256") == sha256_of(data) or head.get("ETag") == md5
    if not ours or head["LastModified"] < log.started:
        return None
    _log.debug("s3://%s/%s was stored by a lost attempt", bucket, key)
    return head


class Multipart:
    """One multipart upload: parts go up through ``upload``; ``complete`` at the end."""

    def __init__(
        self,
        client: Any,
        log: WriteLog,
        bucket: str,
        key: str,
        content_type: str,
        *,
        arguments: Mapping[str, Any],
        create_only: bool = False,
    ) -> None:
        self.client, self.log, self.bucket, self.key = client, log, bucket, key
        self.create_only = create_only  # complete with If-None-Match: * (see put_object)
        self.started = started_now()  # the object a lost Complete made is newer
        log.creating(key)
        try:
            reply = client.create_multipart_upload(
                **arguments,
                Bucket=bucket,
                Key=key,
                ContentType=content_type,
                ChecksumAlgorithm="CRC32",
            )
        except BaseException as exc:
            log.not_created(key, exc)
            raise
        self.upload_id: str = reply["UploadId"]
        log.created(key, self.upload_id)
        _log.debug("multipart upload started for s3://%s/%s", bucket, key)
        self.parts: dict[int, tuple[str, str]] = {}  # number -> (ETag, CRC32)
        if reply.get("ResponseMetadata", {}).get("RetryAttempts"):
            self._abort_lost_attempts()

    def _abort_lost_attempts(self) -> None:
        """Abort uploads of this key that earlier attempts created but whose reply was lost.

        Otherwise a retried CreateMultipartUpload leaves an incomplete upload behind
        (billed, invisible) even though the publish succeeds. Any other incomplete upload
        of this very key is such an attempt or debris of an earlier failed publish (stores
        do not all report when an upload began, so age cannot tell them apart).
        """
        try:
            for upload_id in uploads_of(self.client, self.bucket, self.key):
                if upload_id != self.upload_id:
                    _log.debug("aborting a lost upload of s3://%s/%s", self.bucket, self.key)
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=self.key, UploadId=upload_id
                    )
        except Exception as exc:  # the result itself is fine; say what may be left
            _log.warning(
                "a lost multipart upload of s3://%s/%s may be left: %s",
                self.bucket,
                self.key,
                describe_client_error(exc, self.bucket, self.key),
            )

    def upload(self, number: int, data: bytes) -> None:
        """Upload part ``number`` with its CRC32 (thread-safe: parts go up concurrently)."""
        if number > MAX_PARTS:
            raise PublishError(
                f"s3://{self.bucket}/{self.key} needs more than {MAX_PARTS} parts; "
                "raise PUBLISHER_S3_PART_SIZE"
            )
        checksum = _crc32(data)
        reply = self.client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
            ChecksumCRC32=checksum,
        )
        self.parts[number] = (reply["ETag"], checksum)

    def complete(self) -> str | None:
        """Complete the upload from its parts; return the version it created."""
        parts = [
            {"PartNumber": n, "ETag": self.parts[n][0], "ChecksumCRC32": self.parts[n][1]}
            for n in sorted(self.parts)
        ]
        self.log.writing(self.key)
        self.log.completing(self.upload_id)
        try:
            reply = self.client.complete_multipart_upload(
                **({"IfNoneMatch": "*"} if self.create_only else {}),
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException as exc:
            reply = self._completed_before(exc)
            if reply is None:
                self.log.not_written(self.key, exc)
                raise
        self.log.completed(self.upload_id)
        version = version_of(reply)
        self.log.written(self.key, version)
        return version

    def _completed_before(self, exc: BaseException) -> dict[str, Any] | None:
        """The object, if ``exc`` says an earlier attempt of this Complete made it.

        A lost CompleteMultipartUpload reply is retried; the store has by then turned the
        upload into the object, so the retry gets NoSuchUpload (or, sent with
        If-None-Match, PreconditionFailed). It is ours if its ETag is the one these parts
        make.
        """
        from botocore.exceptions import ClientError

        if (attempts_of(exc) or 1) < 2 or error_code(exc) not in (
            "NoSuchUpload",
            "PreconditionFailed",
        ):
            return None
        try:
            digests = b"".join(
                bytes.fromhex(self.parts[n][0].strip('"')) for n in sorted(self.parts)
            )
        except ValueError:  # a store whose part ETags are not MD5s: cannot tell
            return None
        expected = f'"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(self.parts)}"'
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError:
            return None
        if head.get("ETag") != expected or head["LastModified"] < self.started:
            return None
        _log.debug("s3://%s/%s was completed by a lost attempt", self.bucket, self.key)
        return head
