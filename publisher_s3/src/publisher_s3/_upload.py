"""Uploading a result: files concurrently (directory mode) or one streamed archive.

Directory mode uploads each file as ``KEY + path`` from a thread pool sharing one client,
with a bounded number of files in flight, and writes the manifest last. Archive mode
streams tar -> gzip (ISA-L) -> SHA-256 -> parts: a small archive is one PutObject, a large
one a multipart upload whose parts go up while compression continues. Memory stays
bounded by the part size times the parts in flight. Nothing is staged on disk.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import mimetypes
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NoReturn

import attrs

from publisher_core import (
    Manifest,
    ManifestFile,
    PublishError,
    TreeEntry,
    empty_directories,
    manifest_key,
    open_entry,
    sha256_b64,
    write_archive,
)

from ._client import describe_client_error
from ._spec import S3Settings

__all__ = ["ArchiveUpload", "DirectoryUpload", "UploadOutcome"]

_log = logging.getLogger(__name__)

ARCHIVE_CONTENT_TYPE = "application/gzip"
_ARCHIVE_PARTS_IN_FLIGHT = 4


@attrs.frozen(kw_only=True)
class UploadOutcome:
    """What an upload stored."""

    size: int
    checksum_sha256: str
    version_id: str | None
    files: int
    manifest_key: str | None = None


def _sha256(data: bytes | bytearray | memoryview) -> str:
    return sha256_b64(hashlib.sha256(data).digest())


class _Tracker:
    """Keys written and multipart uploads open, for clean-up after a failure."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: list[str] = []
        self.uploads: dict[str, str] = {}  # upload id -> key

    def cleanup(self, client: Any, bucket: str) -> list[str]:
        """Abort open uploads and delete written keys; return what could not be removed."""
        left: list[str] = []
        for upload_id, key in list(self.uploads.items()):
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception:
                left.append(f"multipart upload of {key}")
        for start in range(0, len(self.keys), 1000):
            batch = self.keys[start : start + 1000]
            try:
                reply = client.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
                left += [e.get("Key", "?") for e in reply.get("Errors", [])]
            except Exception:
                left += batch
        return left


def _fail(exc: BaseException, tracker: _Tracker, client: Any, bucket: str, key: str) -> NoReturn:
    """Remove what this publish wrote, then raise one error naming the failure.

    The error also says what could not be removed; an interrupt is re-raised as it is,
    after the clean-up.
    """
    left = tracker.cleanup(client, bucket)
    if not isinstance(exc, Exception):
        raise exc
    message = str(exc) if isinstance(exc, PublishError) else describe_client_error(exc, bucket, key)
    if left:
        message += f"; could not remove: {', '.join(left[:10])}"
        if len(left) > 10:
            message += f" and {len(left) - 10} more"
    raise PublishError(message) from exc


class _Multipart:
    """One multipart upload: parts go up through ``submit``; complete or abort at the end."""

    def __init__(
        self, client: Any, bucket: str, key: str, tracker: _Tracker, content_type: str
    ) -> None:
        self.client, self.bucket, self.key, self.tracker = client, bucket, key, tracker
        reply = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type)
        self.upload_id: str = reply["UploadId"]
        _log.debug("multipart upload started for s3://%s/%s", bucket, key)
        with tracker.lock:
            tracker.uploads[self.upload_id] = key
        self.parts: dict[int, str] = {}

    def upload(self, number: int, data: bytes) -> None:
        reply = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        self.parts[number] = reply["ETag"]

    def complete(self) -> str | None:
        parts = [{"PartNumber": n, "ETag": self.parts[n]} for n in sorted(self.parts)]
        reply = self.client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": parts},
        )
        with self.tracker.lock:
            del self.tracker.uploads[self.upload_id]
            self.tracker.keys.append(self.key)
        version: str | None = reply.get("VersionId")
        return version


def _put(
    client: Any, bucket: str, key: str, data: bytes, content_type: str, tracker: _Tracker
) -> str | None:
    reply = client.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType=content_type,
        ChecksumAlgorithm="SHA256",  # the store verifies and keeps our value where it can
        ChecksumSHA256=_sha256(data),
    )
    with tracker.lock:
        tracker.keys.append(key)
    version: str | None = reply.get("VersionId")
    return version


class _BoundedPool:
    """A thread pool that blocks the producer once ``limit`` tasks are pending."""

    def __init__(self, workers: int, limit: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publisher-s3")
        self.slots = threading.BoundedSemaphore(limit)
        self.futures: list[Future[Any]] = []
        self.failure: BaseException | None = None

    def _done(self, future: Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None and self.failure is None:
            self.failure = future.exception()
        self.slots.release()

    def submit(self, task: Callable[[], Any]) -> None:
        """Run ``task``, waiting for a free slot; re-raise an earlier task's failure first."""
        self.slots.acquire()
        if self.failure is not None:
            self.slots.release()
            raise self.failure
        future = self.pool.submit(task)
        future.add_done_callback(self._done)
        self.futures.append(future)

    def results(self) -> list[Any]:
        """Wait for every task; raise the first failure."""
        return [f.result() for f in self.futures]

    def close(self, *, cancel: bool) -> None:
        self.pool.shutdown(wait=True, cancel_futures=cancel)


class DirectoryUpload:
    """Directory mode: every file under ``key``, then the manifest, or nothing at all."""

    def __init__(self, client: Any, bucket: str, key: str, settings: S3Settings) -> None:
        self.client, self.bucket, self.key, self.settings = client, bucket, key, settings
        self.tracker = _Tracker()

    def _file(self, entry: TreeEntry) -> ManifestFile:
        key = self.key + entry.path
        content_type = mimetypes.guess_type(entry.path)[0] or "application/octet-stream"
        part_size = self.settings.part_size
        with open_entry(entry) as handle:
            first = handle.read(part_size)
            if len(first) < part_size:
                _put(self.client, self.bucket, key, first, content_type, self.tracker)
                size, checksum = len(first), _sha256(first)
            else:
                digest = hashlib.sha256()
                upload = _Multipart(self.client, self.bucket, key, self.tracker, content_type)
                size, number, chunk = 0, 1, first
                while chunk:
                    digest.update(chunk)
                    size += len(chunk)
                    upload.upload(number, chunk)
                    number += 1
                    chunk = handle.read(part_size)
                upload.complete()
                checksum = sha256_b64(digest.digest())
        if size != entry.size:
            raise PublishError(
                f"{entry.path}: changed size while publishing; nothing was published"
            )
        return ManifestFile(path=entry.path, size=size, checksum_sha256=checksum)

    def run(self, entries: list[TreeEntry]) -> UploadOutcome:
        """Upload the files concurrently, then the manifest; clean up on any failure."""
        workers = self.settings.concurrency
        _log.debug("directory upload to s3://%s/%s with %d workers", self.bucket, self.key, workers)
        pool = _BoundedPool(workers, limit=2 * workers)
        try:
            for entry in entries:
                if entry.kind == "file":
                    pool.submit(functools.partial(self._file, entry))
            files: list[ManifestFile] = pool.results()
            pool.close(cancel=False)
            manifest = Manifest.build(files, empty_directories(entries))
            data = manifest.to_bytes()
            where = manifest_key(self.key)
            version = _put(self.client, self.bucket, where, data, "application/json", self.tracker)
        except BaseException as exc:
            pool.close(cancel=True)
            _fail(exc, self.tracker, self.client, self.bucket, self.key)
        return UploadOutcome(
            size=manifest.total_size,
            checksum_sha256=_sha256(data),
            version_id=version,
            files=len(files),
            manifest_key=where,
        )


class _PartSink:
    """The archive's compressed bytes, cut into parts and uploaded while more arrive."""

    def __init__(self, client: Any, bucket: str, key: str, settings: S3Settings) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.part_size = settings.part_size
        self.tracker = _Tracker()
        self.buffer = bytearray()
        self.multipart: _Multipart | None = None
        self.number = 0
        in_flight = max(1, min(settings.concurrency, _ARCHIVE_PARTS_IN_FLIGHT))
        self.pool = _BoundedPool(in_flight, limit=in_flight)

    def write(self, data: bytes, /) -> int:
        self.buffer += data
        while len(self.buffer) >= self.part_size:
            self._send(bytes(self.buffer[: self.part_size]))
            del self.buffer[: self.part_size]
        return len(data)

    def _send(self, part: bytes) -> None:
        if self.multipart is None:
            self.multipart = _Multipart(
                self.client, self.bucket, self.key, self.tracker, ARCHIVE_CONTENT_TYPE
            )
        self.number += 1
        upload, number = self.multipart, self.number
        self.pool.submit(lambda: upload.upload(number, part))

    def finish(self) -> str | None:
        if self.multipart is None:  # small: one PutObject, checked by the server where it can
            return _put(
                self.client,
                self.bucket,
                self.key,
                bytes(self.buffer),
                ARCHIVE_CONTENT_TYPE,
                self.tracker,
            )
        if self.buffer:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        self.pool.results()
        self.pool.close(cancel=False)
        return self.multipart.complete()


class ArchiveUpload:
    """Archive mode: one ``.tar.gz`` object streamed from the tree, or nothing at all."""

    def __init__(self, client: Any, bucket: str, key: str, settings: S3Settings) -> None:
        self.sink = _PartSink(client, bucket, key, settings)
        self.settings = settings

    def run(self, entries: list[TreeEntry]) -> UploadOutcome:
        """Stream the archive up; abort the multipart upload on any failure."""
        from isal import isal_zlib

        try:
            summary = write_archive(
                entries,
                self.sink,
                level=self.settings.compression_level,
                compressobj=isal_zlib.compressobj,
            )
            version = self.sink.finish()
        except BaseException as exc:
            self.sink.pool.close(cancel=True)
            sink = self.sink
            _fail(exc, sink.tracker, sink.client, sink.bucket, sink.key)
        return UploadOutcome(
            size=summary.size,
            checksum_sha256=summary.checksum_sha256,
            version_id=version,
            files=summary.files,
        )
