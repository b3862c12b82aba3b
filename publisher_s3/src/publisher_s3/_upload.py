"""Uploading a result: files concurrently (directory mode) or one streamed archive.

Directory mode uploads each file as ``KEY + path`` from a thread pool sharing one client,
with a bounded number of files in flight, and writes the manifest last. Archive mode
streams tar -> gzip (ISA-L) -> SHA-256 -> parts: a small archive is one PutObject, a large
one a multipart upload whose parts go up while compression continues. Memory stays
bounded by the part size times the parts in flight; nothing is staged on disk. The first
failure stops the rest, and everything written is removed (see ``_cleanup``).

Both modes do their work in a thread while the calling thread only waits, so an interrupt
(Ctrl-C, SIGTERM: raised in the main thread) never lands inside a request or inside the
compressor's queues. The interrupted thread asks the work to stop, waits up to
``INTERRUPT_GRACE`` seconds for the requests in flight to return (so that clean-up knows
everything they created), then cleans up and re-raises the interrupt.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import functools
import hashlib
import logging
import mimetypes
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NoReturn, TypeVar

import attrs
from isal import igzip_threaded, isal_zlib

from publisher_core import (
    ArchiveSummary,
    BinarySink,
    GzipStream,
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

from ._cleanup import WriteLog, started_now, uploads_of
from ._client import attempts_of, client_credentials, describe_client_error
from ._helpers import Helper, helper_count
from ._spec import MIB, S3Settings

__all__ = ["ArchiveUpload", "DirectoryUpload", "UploadOutcome", "part_size_for"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

ARCHIVE_CONTENT_TYPE = "application/gzip"
INTERRUPT_GRACE = 5.0
"""Seconds an interrupted publish waits for its requests in flight before cleaning up."""
_ARCHIVE_PARTS_IN_FLIGHT = 4
MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * 1024 * MIB


@attrs.frozen(kw_only=True)
class UploadOutcome:
    """What an upload stored; for a directory, the version and checksum are the manifest's."""

    size: int
    checksum_sha256: str
    version_id: str | None
    files: int
    manifest_key: str | None = None


class _Stopped(Exception):
    """Another task failed first; this one stops without an error of its own."""


def part_size_for(size: int, part_size: int) -> int:
    """The part size for a file of ``size`` bytes: the setting, grown to fit 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    return min(MAX_PART_SIZE, max(part_size, -(-needed // MIB) * MIB))


def _sha256(data: bytes | bytearray | memoryview) -> str:
    return sha256_b64(hashlib.sha256(data).digest())


def _crc32(data: bytes) -> str:
    """Base64 CRC32 of a part: the store checks it (ISA-L computes it at ~10 GB/s)."""
    return base64.b64encode(isal_zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


def _listing(left: list[str]) -> str:
    shown = ", ".join(left[:10])
    return shown + (f" and {len(left) - 10} more" if len(left) > 10 else "")


def _fail(exc: BaseException, log: WriteLog, bucket: str, key: str) -> NoReturn:
    """Remove what this publish wrote, then raise one error naming the failure.

    The error also says what could not be removed; an interrupt is re-raised as it is,
    after the clean-up, and a warning names what could not be removed.
    """
    left = log.cleanup()
    if not isinstance(exc, Exception):
        if left:
            _log.warning("publish stopped; could not remove: %s", _listing(left))
        raise exc
    message = str(exc) if isinstance(exc, PublishError) else describe_client_error(exc, bucket, key)
    if left:
        message += f"; could not remove: {_listing(left)}"
    raise PublishError(message) from exc


def _off_main_thread(work: Callable[[], T], stop: Callable[[], None], name: str) -> T:
    """Run ``work`` in a thread and wait for it; the result, or the first failure.

    An interrupt while waiting calls ``stop`` and waits up to ``INTERRUPT_GRACE``
    seconds for ``work`` to end (its requests in flight return, so what they created is
    in the clean-up log), then re-raises. The thread is a daemon: one stuck in a request
    past the grace period does not keep the process alive.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)  # interruptible: a signal's exception is raised here
    except BaseException:
        stop()
        thread.join(INTERRUPT_GRACE)
        if thread.is_alive():
            _log.debug("%s still has a request in flight; cleaning up anyway", name)
        raise
    if failure:
        raise failure[0]
    return outcome[0]


def _put(
    client: Any, log: WriteLog, bucket: str, key: str, data: bytes, content_type: str
) -> str | None:
    log.writing(key)
    try:
        reply = client.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",  # the store verifies and keeps our value where it can
            ChecksumSHA256=_sha256(data),
        )
    except BaseException as exc:
        log.not_written(key, exc)
        raise
    version: str | None = reply.get("VersionId")
    log.written(key, version)
    return version


class _Multipart:
    """One multipart upload: parts go up through ``upload``; ``complete`` at the end."""

    def __init__(
        self, client: Any, log: WriteLog, bucket: str, key: str, content_type: str
    ) -> None:
        self.client, self.log, self.bucket, self.key = client, log, bucket, key
        self.started = started_now()  # the object a lost Complete made is newer
        log.creating(key)
        try:
            reply = client.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=content_type, ChecksumAlgorithm="CRC32"
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
        parts = [
            {"PartNumber": n, "ETag": self.parts[n][0], "ChecksumCRC32": self.parts[n][1]}
            for n in sorted(self.parts)
        ]
        self.log.writing(self.key)
        self.log.completing(self.upload_id)
        try:
            reply = self.client.complete_multipart_upload(
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
        version: str | None = reply.get("VersionId")
        self.log.written(self.key, version)
        return version

    def _completed_before(self, exc: BaseException) -> dict[str, Any] | None:
        """The object, if ``exc`` is NoSuchUpload because an earlier attempt completed it.

        A lost CompleteMultipartUpload reply is retried; the store has by then turned the
        upload into the object. It is ours if its ETag is the one these parts make.
        """
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError) or (attempts_of(exc) or 1) < 2:
            return None
        if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
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


class _BoundedPool:
    """A thread pool that blocks the producer once ``limit`` tasks are pending.

    The first failure is kept and ``stop`` is set, so producers and running tasks end
    early instead of uploading the rest of a result that will be removed anyway.
    """

    def __init__(self, workers: int, limit: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publisher-s3")
        self.slots = threading.BoundedSemaphore(limit)
        self.futures: list[Future[Any]] = []
        self.failure: BaseException | None = None
        self.stop = threading.Event()

    def _done(self, future: Future[Any]) -> None:
        if not future.cancelled():
            error = future.exception()
            if error is not None and not isinstance(error, _Stopped) and self.failure is None:
                self.failure = error
                self.stop.set()
        self.slots.release()

    def submit(self, task: Callable[[], Any]) -> None:
        """Run ``task``, waiting for a free slot; re-raise an earlier task's failure first."""
        self.slots.acquire()
        if self.failure is not None or self.stop.is_set():
            self.slots.release()
            raise self.failure or _Stopped()
        future = self.pool.submit(task)
        future.add_done_callback(self._done)
        self.futures.append(future)

    def fail(self, error: BaseException) -> None:
        """Record a failure from outside the pool (a helper process): stop the rest."""
        if self.failure is None:
            self.failure = error
        self.stop.set()

    def results(self) -> list[Any]:
        """Wait for every task; raise the first real failure."""
        for future in self.futures:
            future.exception()  # wait
        if self.failure is not None:
            raise self.failure
        return [f.result() for f in self.futures]

    def close(self, *, cancel: bool, timeout: float | None = None) -> None:
        """Shut down; with ``cancel`` drop queued tasks and tell running ones to stop.

        Waits for the tasks still running, at most ``timeout`` seconds if given.
        """
        if cancel:
            self.stop.set()
        self.pool.shutdown(wait=False, cancel_futures=cancel)
        concurrent.futures.wait(self.futures, timeout=timeout)


class DirectoryUpload:
    """Directory mode: every file under ``key``, then the manifest, or nothing at all.

    Many small files are shared with helper processes (see ``_helpers``); ``log``
    replaces the clean-up log (a helper reports to its parent's).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        settings: S3Settings,
        *,
        log: WriteLog | Any | None = None,
    ) -> None:
        self.client, self.bucket, self.key, self.settings = client, bucket, key, settings
        self.log = log if log is not None else WriteLog(client, bucket)
        workers = settings.concurrency
        self.pool = _BoundedPool(workers, limit=2 * workers)

    def _file(self, entry: TreeEntry) -> ManifestFile:
        key = self.key + entry.path
        try:
            return self._upload_file(entry, key)
        except (_Stopped, PublishError):
            raise
        except Exception as exc:  # name the object that failed, not just the prefix
            raise PublishError(describe_client_error(exc, self.bucket, key)) from exc

    def _upload_file(self, entry: TreeEntry, key: str) -> ManifestFile:
        if self.pool.stop.is_set():
            raise _Stopped
        content_type = mimetypes.guess_type(entry.path)[0] or "application/octet-stream"
        part_size = part_size_for(entry.size, self.settings.part_size)
        digest = hashlib.sha256()
        size = 0
        with open_entry(entry) as handle:
            chunk: bytes | None = handle.read(part_size)
            assert chunk is not None
            if len(chunk) < part_size:
                _put(self.client, self.log, self.bucket, key, chunk, content_type)
                digest.update(chunk)
                size = len(chunk)
            else:
                upload = _Multipart(self.client, self.log, self.bucket, key, content_type)
                number = 1
                while chunk:
                    if self.pool.stop.is_set():
                        raise _Stopped
                    digest.update(chunk)
                    size += len(chunk)
                    upload.upload(number, chunk)
                    number += 1
                    chunk = None  # let the sent part go before reading the next
                    chunk = handle.read(part_size)
                upload.complete()
        if size != entry.size:
            raise PublishError(
                f"{entry.path}: changed size while publishing; nothing was published"
            )
        return ManifestFile(path=entry.path, size=size, checksum_sha256=sha256_b64(digest.digest()))

    def upload_files(self, files: list[TreeEntry]) -> list[ManifestFile]:
        """Upload ``files`` from the thread pool; the first failure stops the rest."""
        for entry in files:
            self.pool.submit(functools.partial(self._file, entry))
        done: list[ManifestFile] = self.pool.results()
        self.pool.close(cancel=False)
        return done

    def _start_helpers(self, files: list[TreeEntry], helpers: list[Helper]) -> list[TreeEntry]:
        """Start helper processes for shares of the small files; return what stays here.

        Each helper is added to ``helpers`` as it starts, so a failure part-way still
        stops the ones already running.
        """
        small = [e for e in files if e.size < self.settings.part_size]
        count = helper_count(len(small), self.settings.processes)
        if count == 0:
            return files
        shares = count + 1
        job = {
            # The very endpoint and addressing style this client uses (a VPC, FIPS or
            # dual-stack endpoint on amazonaws.com too).
            "endpoint": self.client.meta.endpoint_url,
            "addressing_style": (self.client.meta.config.s3 or {}).get("addressing_style"),
            "region": self.client.meta.region_name,
            "bucket": self.bucket,
            "key": self.key,
            "settings": attrs.asdict(self.settings),
            "credentials": client_credentials(self.client),
        }
        _log.debug("directory upload: %d helper processes for %d small files", count, len(small))
        kept = small[0::shares]
        for share in range(1, shares):
            if self.pool.stop.is_set():
                raise _Stopped
            try:
                helpers.append(Helper(job, small[share::shares], self.log, self.pool.fail))
            except OSError as exc:  # no interpreter to start: this process does that share
                _log.debug("helper process could not start (%s); uploading here", exc)
                kept += small[share::shares]
        return kept + [e for e in files if e.size >= self.settings.part_size]

    def run(self, entries: list[TreeEntry]) -> UploadOutcome:
        """Upload the files concurrently, then the manifest; clean up on any failure."""
        _log.debug(
            "directory upload to s3://%s/%s with %d workers",
            self.bucket,
            self.key,
            self.settings.concurrency,
        )
        helpers: list[Helper] = []
        try:
            return _off_main_thread(
                lambda: self._upload(entries, helpers), self.pool.stop.set, "publisher-s3-directory"
            )
        except BaseException as exc:
            interrupted = not isinstance(exc, Exception)
            self.pool.close(cancel=True, timeout=INTERRUPT_GRACE if interrupted else None)
            for helper in list(helpers):
                helper.stop()  # everything a helper reported is in the log before clean-up
            _fail(exc, self.log, self.bucket, self.key)

    def _upload(self, entries: list[TreeEntry], helpers: list[Helper]) -> UploadOutcome:
        files = [e for e in entries if e.kind == "file"]
        kept = self._start_helpers(files, helpers)
        done = self.upload_files(kept)
        for helper in helpers:
            done += helper.finish()
        if self.pool.stop.is_set():
            raise _Stopped
        manifest = Manifest.build(done, empty_directories(entries))
        data = manifest.to_bytes()
        where = manifest_key(self.key)
        version = _put(self.client, self.log, self.bucket, where, data, "application/json")
        return UploadOutcome(
            size=manifest.total_size,
            checksum_sha256=_sha256(data),
            version_id=version,
            files=len(done),
            manifest_key=where,
        )


class _PartSink:
    """The archive's compressed bytes, cut into parts and uploaded while more arrive.

    Parts grow by one part size every 1,000 parts, so an archive of any size fits S3's
    10,000-part limit. After a failure every further write is refused, so unwinding
    (tarfile flushes its buffer on the way out) cannot start new requests.
    """

    def __init__(self, client: Any, bucket: str, key: str, settings: S3Settings) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.base_part_size = settings.part_size
        self.log = WriteLog(client, bucket)
        self.buffer: list[bytes] = []  # joined once per part: one copy of every byte
        self.buffered = 0
        self.multipart: _Multipart | None = None
        self.number = 0
        self.failed = False
        in_flight = max(1, min(settings.concurrency, _ARCHIVE_PARTS_IN_FLIGHT))
        self.pool = _BoundedPool(in_flight, limit=in_flight)

    @property
    def part_size(self) -> int:
        return min(MAX_PART_SIZE, self.base_part_size * (1 + self.number // 1000))

    def write(self, data: bytes, /) -> int:
        if self.failed:  # unwinding after a failure: drop, never start new requests
            return len(data)
        try:
            view = memoryview(data)
            while len(view):
                room = self.part_size - self.buffered
                taken = view[:room]
                whole = len(taken) == len(data) and isinstance(data, bytes)
                self.buffer.append(data if whole else bytes(taken))
                self.buffered += len(taken)
                view = view[room:]
                if self.buffered == self.part_size:
                    self._send(b"".join(self.buffer))
                    self.buffer.clear()
                    self.buffered = 0
        except BaseException:
            self.failed = True
            raise
        return len(data)

    def _send(self, part: bytes) -> None:
        if self.multipart is None:
            self.multipart = _Multipart(
                self.client, self.log, self.bucket, self.key, ARCHIVE_CONTENT_TYPE
            )
        self.number += 1
        upload, number = self.multipart, self.number
        self.pool.submit(lambda: upload.upload(number, part))

    def finish(self) -> str | None:
        if self.multipart is None:  # small: one PutObject, checked by the server where it can
            return _put(
                self.client,
                self.log,
                self.bucket,
                self.key,
                b"".join(self.buffer),
                ARCHIVE_CONTENT_TYPE,
            )
        if self.buffered:
            self._send(b"".join(self.buffer))
            self.buffer.clear()
        self.pool.results()
        self.pool.close(cancel=False)
        return self.multipart.complete()


class _Cancellable:
    """The gzip stream the tar writer writes to, refusing further writes once cancelled.

    Stopping between writes keeps ISA-L's queues consistent, so closing the stream
    afterwards ends its threads instead of waiting for a block that was never queued.
    """

    def __init__(self, stream: GzipStream, cancelled: threading.Event) -> None:
        self.stream, self.cancelled = stream, cancelled

    def write(self, data: bytes | memoryview, /) -> object:
        if self.cancelled.is_set():
            raise _Stopped
        return self.stream.write(data)

    def close(self) -> None:
        self.stream.close()


class ArchiveUpload:
    """Archive mode: one ``.tar.gz`` object streamed from the tree, or nothing at all."""

    def __init__(self, client: Any, bucket: str, key: str, settings: S3Settings) -> None:
        self.sink = _PartSink(client, bucket, key, settings)
        self.settings = settings
        self.stream: GzipStream | None = None
        self.cancelled = threading.Event()

    def _gzip(self, sink: BinarySink, level: int) -> GzipStream:
        """ISA-L's threaded gzip writer: blocks compressed in parallel, one gzip member."""
        stream: GzipStream = igzip_threaded.open(  # type: ignore[no-untyped-call]
            sink, "wb", compresslevel=level, threads=self.settings.compression_threads
        )
        self.stream = stream
        return _Cancellable(stream, self.cancelled)

    def _stop(self) -> None:
        self.cancelled.set()
        self.sink.failed = True  # compressed bytes still on their way are dropped
        self.sink.pool.stop.set()

    def _stream(self, entries: list[TreeEntry]) -> tuple[ArchiveSummary, str | None]:
        try:
            summary = write_archive(
                entries, self.sink, level=self.settings.compression_level, gzip=self._gzip
            )
            if self.cancelled.is_set():
                raise _Stopped
            return summary, self.sink.finish()
        except BaseException:
            self._stop()
            if self.stream is not None:
                with contextlib.suppress(Exception):
                    self.stream.close()  # ends its threads; what it flushes is dropped
            raise

    def run(self, entries: list[TreeEntry]) -> UploadOutcome:
        """Stream the archive up; abort and remove everything on any failure."""
        _log.debug("archive upload to s3://%s/%s", self.sink.bucket, self.sink.key)
        try:
            summary, version = _off_main_thread(
                lambda: self._stream(entries), self._stop, "publisher-s3-archive"
            )
        except BaseException as exc:
            self._stop()
            interrupted = not isinstance(exc, Exception)
            self.sink.pool.close(cancel=True, timeout=INTERRUPT_GRACE if interrupted else None)
            _fail(exc, self.sink.log, self.sink.bucket, self.sink.key)
        return UploadOutcome(
            size=summary.size,
            checksum_sha256=summary.checksum_sha256,
            version_id=version,
            files=summary.files,
        )
