"""Transfer primitives: requests that create objects, part sizes, checksums, running work.

What both modes (``_directory``, ``_archive``) build on, and what no mode decides:

- Where writes go: a :class:`Destination` (one bucket through one client, and the
  attributes every object carries).
- PutObject (:func:`put_object`) and multipart uploads (:class:`Multipart`), each key
  announced to the clean-up log before its request (see ``_cleanup``); bodies carry
  their own checksum (SHA-256 for objects, CRC32 for parts), which the store verifies
  where it can.
- Sending the parts of files: :class:`PartSender`, several parts of a file at once,
  with a bound on the parts in flight across all files (their memory).
- The part-size policy: :func:`part_size_for` a file of known size,
  :func:`streamed_part_size` a stream of unknown size; both fit S3's 10,000 parts.
- Running work: :class:`BoundedPool`, which stops at the first failure, and
  :func:`off_main_thread`. An interrupt (Ctrl-C, SIGTERM) is raised by Python in the
  main thread, wherever it is. Work run off the main thread is never there, so an
  interrupt never lands inside a request (whose effect the clean-up would then not
  know) or inside ISA-L's compressor queues (which it could leave waiting forever for
  a lost block); the interrupted caller waits :func:`grace_after` it for the requests
  in flight.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from isal import isal_zlib

from publisher_core import PublishError, sha256_of

from ._cleanup import CleanupLog, started_now, uploads_of
from ._client import attempts_of, describe_client_error, error_code
from ._spec import MIB

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        CompleteMultipartUploadOutputTypeDef,
        CompleteMultipartUploadRequestTypeDef,
        HeadObjectOutputTypeDef,
        PutObjectOutputTypeDef,
    )

__all__ = [
    "INTERRUPT_GRACE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "BoundedPool",
    "Destination",
    "Multipart",
    "PartSender",
    "Stopped",
    "grace_after",
    "off_main_thread",
    "part_size_for",
    "put_object",
    "streamed_part_size",
    "version_of",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * 1024 * MIB


def part_size_for(size: int, part_size: int) -> int:
    """The part size for a file of ``size`` bytes: the setting, grown to fit 10,000 parts."""
    needed = -(-size // MAX_PARTS)
    return min(MAX_PART_SIZE, max(part_size, -(-needed // MIB) * MIB))


def streamed_part_size(part_size: int, parts_sent: int) -> int:
    """The size of the next part of a stream of unknown size, ``parts_sent`` parts in.

    Parts grow by one ``part_size`` every 1,000 parts, so a stream of any size fits
    S3's 10,000-part limit.
    """
    return min(MAX_PART_SIZE, part_size * (1 + parts_sent // 1000))


def _crc32(data: bytes) -> str:
    """Base64 CRC32 of a part: the store checks it (ISA-L computes it at ~10 GB/s)."""
    return base64.b64encode(isal_zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


@attrs.frozen(eq=False)
class Destination:
    """Where a publish writes: one bucket through one client, and what every object carries.

    ``arguments`` are the result's object attributes (encryption, tags...; see
    ``_attributes.object_arguments``), sent on every PutObject and CreateMultipartUpload.
    """

    client: S3Client
    bucket: str
    arguments: Mapping[str, Any] = attrs.field(factory=dict)

    def url(self, key: str) -> str:
        """``s3://bucket/key``, as messages name an object."""
        return f"s3://{self.bucket}/{key}"


def version_of(reply: Mapping[str, object]) -> str | None:
    """The version a write created: none where the bucket does not version objects.

    Stores answer ``null`` for an object written while versioning is off or suspended;
    it names no version a reader could pin, so it is not recorded.
    """
    version = reply.get("VersionId")
    return version if isinstance(version, str) and version and version != "null" else None


def put_object(
    to: Destination,
    log: CleanupLog,
    key: str,
    data: bytes,
    content_type: str,
    *,
    create_only: bool = False,
) -> str | None:
    """PutObject ``data`` at ``key`` with its SHA-256; return the version it created.

    ``create_only`` sends ``If-None-Match: *``: a store that honours it refuses (412
    PreconditionFailed) when ``key`` exists.
    """
    checksum = sha256_of(data)
    request = dict(to.arguments)
    if create_only:
        request["IfNoneMatch"] = "*"
    log.writing(key)
    reply: PutObjectOutputTypeDef | HeadObjectOutputTypeDef | None
    try:
        reply = to.client.put_object(
            **request,
            Bucket=to.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",  # the store verifies and keeps our value where it can
            ChecksumSHA256=checksum,
        )
    except BaseException as exc:
        reply = _put_before(to, log, key, data, exc) if create_only else None
        if reply is None:
            log.not_written(key, exc)
            raise
    version = version_of(reply)
    log.written(key, version)
    return version


def _put_before(
    to: Destination, log: CleanupLog, key: str, data: bytes, exc: BaseException
) -> HeadObjectOutputTypeDef | None:
    """The object, if ``exc`` is a 412 because an earlier attempt of this PutObject stored it.

    A conditional PutObject whose reply was lost is retried, and the retry finds the
    object the first attempt made. It is ours if it is newer than this publish and holds
    these bytes (by the SHA-256 the store kept, else the plain ETag, an MD5).
    """
    if (attempts_of(exc) or 1) < 2 or error_code(exc) != "PreconditionFailed":
        return None
    try:
        head = to.client.head_object(Bucket=to.bucket, Key=key, ChecksumMode="ENABLED")
    except Exception:
        return None
    md5 = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
    ours = head.get("ChecksumSHA256") == sha256_of(data) or head.get("ETag") == md5
    if not ours or head["LastModified"] < log.started:
        return None
    _log.debug("%s was stored by a lost attempt", to.url(key))
    return head


class Multipart:
    """One multipart upload: parts go up through ``upload``; ``complete`` at the end."""

    def __init__(
        self,
        to: Destination,
        log: CleanupLog,
        key: str,
        content_type: str,
        *,
        create_only: bool = False,
    ) -> None:
        self.client, self.bucket, self.log, self.key = to.client, to.bucket, log, key
        self.create_only = create_only  # complete with If-None-Match: * (see put_object)
        self.started = started_now()  # the object a lost Complete made is newer
        log.creating(key)
        try:
            reply = to.client.create_multipart_upload(
                **to.arguments,
                Bucket=to.bucket,
                Key=key,
                ContentType=content_type,
                ChecksumAlgorithm="CRC32",
            )
        except BaseException as exc:
            log.not_created(key, exc)
            raise
        self.upload_id: str = reply["UploadId"]
        log.created(key, self.upload_id)
        _log.debug("multipart upload started for %s", to.url(key))
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
        parts: list[CompletedPartTypeDef] = [
            {"PartNumber": n, "ETag": self.parts[n][0], "ChecksumCRC32": self.parts[n][1]}
            for n in sorted(self.parts)
        ]
        request: CompleteMultipartUploadRequestTypeDef = {
            "Bucket": self.bucket,
            "Key": self.key,
            "UploadId": self.upload_id,
            "MultipartUpload": {"Parts": parts},
        }
        if self.create_only:
            request["IfNoneMatch"] = "*"
        self.log.writing(self.key)
        self.log.completing(self.upload_id)
        reply: CompleteMultipartUploadOutputTypeDef | HeadObjectOutputTypeDef | None
        try:
            reply = self.client.complete_multipart_upload(**request)
        except BaseException as exc:
            reply = self._completed_before(exc)
            if reply is None:
                self.log.not_written(self.key, exc)
                raise
        self.log.completed(self.upload_id)
        version = version_of(reply)
        self.log.written(self.key, version)
        return version

    def _completed_before(self, exc: BaseException) -> HeadObjectOutputTypeDef | None:
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
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError:
            return None
        if head.get("ETag") != expected or head["LastModified"] < self.started:
            return None
        _log.debug("s3://%s/%s was completed by a lost attempt", self.bucket, self.key)
        return head


INTERRUPT_GRACE = 5.0
"""Seconds an interrupted publish waits for its requests in flight before cleaning up."""


def grace_after(exc: BaseException) -> float | None:
    """How long to wait for running tasks after ``exc``: bounded after an interrupt."""
    return None if isinstance(exc, Exception) else INTERRUPT_GRACE


class Stopped(Exception):
    """Another task failed first; this one stops without an error of its own."""


def off_main_thread(work: Callable[[], T], stop: Callable[[], None], name: str) -> T:
    """Run ``work`` in a thread and wait for it; the result, or the first failure.

    An interrupt while waiting calls ``stop`` and waits up to ``INTERRUPT_GRACE``
    seconds for ``work`` to end (its requests in flight return, so what they created is
    in the clean-up log), then re-raises. The thread is a daemon: one stuck in a request
    past the grace period does not keep the process alive.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)
        finally:
            done.set()

    # An Event, not Thread.join: on Python 3.11 an interrupt raised inside join() can
    # leave the thread marked as finished while it still runs; clean-up then raced the
    # request in flight (the signal test on Ceph left the archive in 1 run of 2).
    threading.Thread(target=target, name=name, daemon=True).start()
    try:
        while not done.wait(0.5):  # interruptible: a signal's exception is raised here
            pass
    except BaseException:
        stop()
        if not done.wait(INTERRUPT_GRACE):
            _log.debug("%s still has a request in flight; cleaning up anyway", name)
        raise
    if failure:
        raise failure[0]
    return outcome[0]


class BoundedPool:
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
            if error is not None and not isinstance(error, Stopped) and self.failure is None:
                self.failure = error
                self.stop.set()
        self.slots.release()

    def submit(self, task: Callable[[], Any]) -> None:
        """Run ``task``, waiting for a free slot; re-raise an earlier task's failure first."""
        self.slots.acquire()
        if self.failure is not None or self.stop.is_set():
            self.slots.release()
            raise self.failure or Stopped()
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


class PartSender:
    """Sends the parts of files' multipart uploads, several at once: see :meth:`send`.

    One per publish, shared by all its files, so the parts in flight stay bounded however
    many files go up together: at most ``parts`` parts, holding at most ``memory`` bytes
    (a part larger than that goes alone). A part is read only once it has its place, by
    the thread that sends it: only these few threads ever hold parts. The allocator
    keeps freed memory per thread, so parts read by each file's own thread would leave
    every such thread holding parts' worth of it (4 files: twice the RSS).

    A part's failure goes to ``pool`` at once (:meth:`BoundedPool.fail`), whose ``stop``
    ends every upload: no part, of any file, starts after the first failure.
    """

    def __init__(self, pool: BoundedPool, *, parts: int, memory: int) -> None:
        self.pool, self.parts, self.memory = pool, parts, memory
        self.threads = ThreadPoolExecutor(max_workers=parts, thread_name_prefix="publisher-s3-part")
        self._room = threading.Condition()
        self._taken = 0  # parts being read or sent
        self._taken_bytes = 0

    def send(self, upload: Multipart, read: Callable[[], bytes], count: int, size: int) -> None:
        """Send ``count`` parts of ``size`` bytes, each what ``read()`` returns, to ``upload``.

        Several parts go at once, each from a thread of its own that first reads it:
        ``read`` is called one part at a time, in order, and the parts are numbered in that
        order (it may return less at the end of the file, and ``b""`` after it: such a
        part is not sent). Returns once all are sent. Once the publish stops (a failure
        anywhere, an interrupt) no further part starts; the parts in flight end first,
        then the failure is raised: a part's own, else :class:`Stopped`.
        """
        parts = _InOrder(read)
        sent: list[Future[None]] = []
        try:
            for _ in range(count):
                if not self._take(size):
                    break
                sent.append(self.threads.submit(self._send_part, upload, parts, size))
        finally:
            concurrent.futures.wait(sent)  # so clean-up runs after the requests in flight
        for part in sent:
            error = part.exception()
            if error is not None:
                raise error
        if self.pool.stop.is_set():
            raise Stopped

    def _send_part(self, upload: Multipart, parts: _InOrder, size: int) -> None:
        """Read the file's next part and send it (on a thread of ours; holds a place)."""
        try:
            self._read_and_send(upload, parts)  # the part is freed when this returns
        except PublishError as exc:
            self.pool.fail(exc)
            raise
        except Exception as exc:  # named as the file's own failure would be (_directory)
            error = PublishError(describe_client_error(exc, upload.bucket, upload.key))
            self.pool.fail(error)  # the publish stops now, not once the file's other parts end
            raise error from exc
        finally:
            self._give(size)

    def _read_and_send(self, upload: Multipart, parts: _InOrder) -> None:
        number, data = parts.next(self.pool.stop)
        if data and not self.pool.stop.is_set():  # nothing starts after a failure
            upload.upload(number, data)

    def _take(self, size: int) -> bool:
        """Wait for room for a part of ``size`` bytes and take it; False once stopped.

        A waiting thread is woken when a part ends; while it waits, one is in flight.
        """
        with self._room:
            while not self.pool.stop.is_set():
                fits = self._taken_bytes == 0 or self._taken_bytes + size <= self.memory
                if self._taken < self.parts and fits:
                    self._taken += 1
                    self._taken_bytes += size
                    return True
                self._room.wait()
            return False

    def _give(self, size: int) -> None:
        with self._room:
            self._taken -= 1
            self._taken_bytes -= size
            self._room.notify_all()

    def close(self) -> None:
        """Shut the threads down once idle (each file waits for its own parts)."""
        self.threads.shutdown(wait=False)


class _InOrder:
    """A file's parts, read one at a time and numbered in the order they are read."""

    def __init__(self, read: Callable[[], bytes]) -> None:
        self.read = read
        self.lock = threading.Lock()
        self.number = 0

    def next(self, stop: threading.Event) -> tuple[int, bytes]:
        """The next part and its number; ``b""`` at the end, or once ``stop`` is set."""
        with self.lock:
            if stop.is_set():
                return 0, b""
            self.number += 1
            return self.number, self.read()
