"""Uploading a result: files concurrently (directory mode) or one streamed archive.

Directory mode uploads each file as ``KEY + path`` from a thread pool sharing one client,
with a bounded number of files in flight, and writes the manifest last. Archive mode
streams tar -> gzip (ISA-L) -> SHA-256 -> parts: a small archive is one PutObject, a large
one a multipart upload whose parts go up while compression continues. Memory stays
bounded by the part size times the parts in flight; nothing is staged on disk. The first
failure stops the rest, and everything written is removed (see ``_cleanup``).

Both modes do their work off the main thread (``_tasks``): an interrupt asks the work to
stop, waits up to ``INTERRUPT_GRACE`` seconds for the requests in flight to return (so
that clean-up knows everything they created), then cleans up and re-raises.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import mimetypes
import threading
from collections.abc import Mapping
from typing import Any, NoReturn

import attrs
from isal import igzip_threaded

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

from ._cleanup import WriteLog
from ._client import client_credentials, describe_client_error, error_code
from ._helpers import Helper, helper_count
from ._objects import MAX_PART_SIZE, Multipart, part_size_for, put_object, sha256_of
from ._overwrite import overwrite_policy
from ._spec import S3Settings
from ._tasks import INTERRUPT_GRACE, BoundedPool, Stopped, off_main_thread

__all__ = ["ArchiveUpload", "DirectoryUpload", "UploadOutcome", "abandon", "part_size_for"]

_log = logging.getLogger(__name__)

ARCHIVE_CONTENT_TYPE = "application/gzip"
_ARCHIVE_PARTS_IN_FLIGHT = 4


@attrs.frozen(kw_only=True)
class UploadOutcome:
    """What an upload stored; for a directory, the version and checksum are the manifest's."""

    size: int
    checksum_sha256: str
    version_id: str | None
    files: int
    manifest_key: str | None = None


def _grace(exc: BaseException) -> float | None:
    """How long to wait for running tasks after ``exc``: bounded after an interrupt."""
    return None if isinstance(exc, Exception) else INTERRUPT_GRACE


def _listing(left: list[str]) -> str:
    shown = ", ".join(left[:10])
    return shown + (f" and {len(left) - 10} more" if len(left) > 10 else "")


def abandon(exc: BaseException, log: WriteLog, bucket: str, key: str) -> NoReturn:
    """Remove what this publish wrote, then raise one error naming the failure.

    The error also says what could not be removed; an interrupt is re-raised as it is,
    after the clean-up, and a warning names what could not be removed.
    """
    left = log.cleanup()
    if not isinstance(exc, Exception):
        if left:
            _log.warning("publish stopped; could not remove: %s", _listing(left))
        raise exc
    if isinstance(exc, PublishError):
        message = str(exc)
    elif error_code(exc) == "PreconditionFailed":  # a create-only write (Overwrite: false)
        message = (
            f"s3://{bucket}/{key} was created by another publish while this one ran; "
            "Overwrite is false, so this publish removed what it wrote"
        )
    else:
        message = describe_client_error(exc, bucket, key)
    if left:
        message += f"; could not remove: {_listing(left)}"
    raise PublishError(message) from exc


class DirectoryUpload:
    """Directory mode: every file under ``key``, then the manifest, or nothing at all.

    Many small files are shared with helper processes (see ``_helpers``); ``log``
    replaces the clean-up log (a helper reports to its parent's). ``arguments`` go on
    every PutObject and CreateMultipartUpload, the manifest's and the helpers' included;
    ``expected_bucket_owner`` is what the client was told to send (helpers tell theirs).
    ``overwrite`` chooses what happens to an earlier result at the key (``_overwrite``).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        settings: S3Settings,
        *,
        arguments: Mapping[str, Any],
        expected_bucket_owner: str | None = None,
        log: WriteLog | Any | None = None,
        overwrite: bool = True,
    ) -> None:
        self.client, self.bucket, self.key, self.settings = client, bucket, key, settings
        self.arguments = arguments
        self.overwrite = overwrite
        self.expected_bucket_owner = expected_bucket_owner  # passed on to helper processes
        self.log = log if log is not None else WriteLog(client, bucket)
        workers = settings.concurrency
        self.pool = BoundedPool(workers, limit=2 * workers)

    def _file(self, entry: TreeEntry) -> ManifestFile:
        key = self.key + entry.path
        try:
            return self._upload_file(entry, key)
        except (Stopped, PublishError):
            raise
        except Exception as exc:  # name the object that failed, not just the prefix
            raise PublishError(describe_client_error(exc, self.bucket, key)) from exc

    def _upload_file(self, entry: TreeEntry, key: str) -> ManifestFile:
        if self.pool.stop.is_set():
            raise Stopped
        content_type = mimetypes.guess_type(entry.path)[0] or "application/octet-stream"
        part_size = part_size_for(entry.size, self.settings.part_size)
        digest = hashlib.sha256()
        size = 0
        version: str | None
        with open_entry(entry) as handle:
            chunk: bytes | None = handle.read(part_size)
            assert chunk is not None
            if len(chunk) < part_size:
                version = put_object(
                    self.client,
                    self.log,
                    self.bucket,
                    key,
                    chunk,
                    content_type,
                    arguments=self.arguments,
                )
                digest.update(chunk)
                size = len(chunk)
            else:
                upload = Multipart(
                    self.client,
                    self.log,
                    self.bucket,
                    key,
                    content_type,
                    arguments=self.arguments,
                )
                number = 1
                while chunk:
                    if self.pool.stop.is_set():
                        raise Stopped
                    digest.update(chunk)
                    size += len(chunk)
                    upload.upload(number, chunk)
                    number += 1
                    chunk = None  # let the sent part go before reading the next
                    chunk = handle.read(part_size)
                version = upload.complete()
        if size != entry.size:
            raise PublishError(
                f"{entry.path}: changed size while publishing; nothing was published"
            )
        return ManifestFile(
            path=entry.path,
            size=size,
            checksum_sha256=sha256_b64(digest.digest()),
            version_id=version,
        )

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
            "arguments": self.arguments,  # every object carries the result's attributes
            "expected_bucket_owner": self.expected_bucket_owner,
            "credentials": client_credentials(self.client),
        }
        _log.debug("directory upload: %d helper processes for %d small files", count, len(small))
        kept = small[0::shares]
        for share in range(1, shares):
            if self.pool.stop.is_set():
                raise Stopped
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
            return off_main_thread(
                lambda: self._upload(entries, helpers), self.pool.stop.set, "publisher-s3-directory"
            )
        except BaseException as exc:
            self.pool.close(cancel=True, timeout=_grace(exc))
            for helper in list(helpers):
                helper.stop()  # everything a helper reported is in the log before clean-up
            abandon(exc, self.log, self.bucket, self.key)

    def _upload(self, entries: list[TreeEntry], helpers: list[Helper]) -> UploadOutcome:
        policy = overwrite_policy(
            self.overwrite, self.client, self.log, self.bucket, self.key, self.arguments
        )
        policy.before()
        files = [e for e in entries if e.kind == "file"]
        kept = self._start_helpers(files, helpers)
        done = self.upload_files(kept)
        for helper in helpers:
            done += helper.finish()
        if self.pool.stop.is_set():
            raise Stopped
        manifest = Manifest.build(done, empty_directories(entries))
        data = manifest.to_bytes()
        where = manifest_key(self.key)
        version = put_object(
            self.client,
            self.log,
            self.bucket,
            where,
            data,
            "application/json",
            arguments=self.arguments,
            create_only=policy.create_only,
        )
        policy.after({self.key + f.path for f in done})
        return UploadOutcome(
            size=manifest.total_size,
            checksum_sha256=sha256_of(data),
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

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        settings: S3Settings,
        arguments: Mapping[str, Any],
        content_type: str,
    ) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.arguments, self.content_type = arguments, content_type
        self.create_only = False  # set by the overwrite policy before the first write
        self.base_part_size = settings.part_size
        self.log = WriteLog(client, bucket)
        self.buffer: list[bytes] = []  # joined once per part: one copy of every byte
        self.buffered = 0
        self.multipart: Multipart | None = None
        self.number = 0
        self.failed = False
        in_flight = max(1, min(settings.concurrency, _ARCHIVE_PARTS_IN_FLIGHT))
        self.pool = BoundedPool(in_flight, limit=in_flight)

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
            self.multipart = Multipart(
                self.client,
                self.log,
                self.bucket,
                self.key,
                self.content_type,
                arguments=self.arguments,
                create_only=self.create_only,
            )
        self.number += 1
        upload, number = self.multipart, self.number
        self.pool.submit(lambda: upload.upload(number, part))

    def finish(self) -> str | None:
        if self.multipart is None:  # small: one PutObject, checked by the server where it can
            return put_object(
                self.client,
                self.log,
                self.bucket,
                self.key,
                b"".join(self.buffer),
                self.content_type,
                arguments=self.arguments,
                create_only=self.create_only,
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
            raise Stopped
        return self.stream.write(data)

    def close(self) -> None:
        self.stream.close()


class ArchiveUpload:
    """Archive mode: one ``.tar.gz`` object streamed from the tree, or nothing at all.

    ``overwrite`` chooses what happens to an earlier result at the key (``_overwrite``).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        settings: S3Settings,
        *,
        arguments: Mapping[str, Any],
        content_type: str | None = None,
        overwrite: bool = True,
    ) -> None:
        self.sink = _PartSink(
            client, bucket, key, settings, arguments, content_type or ARCHIVE_CONTENT_TYPE
        )
        self.policy = overwrite_policy(overwrite, client, self.sink.log, bucket, key, arguments)
        self.sink.create_only = self.policy.create_only
        self.settings = settings
        self.stream: GzipStream | None = None
        self.cancelled = threading.Event()

    @property
    def log(self) -> WriteLog:
        """What this upload wrote, for clean-up."""
        return self.sink.log

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
            self.policy.before()
            summary = write_archive(
                entries, self.sink, level=self.settings.compression_level, gzip=self._gzip
            )
            if self.cancelled.is_set():
                raise Stopped
            version = self.sink.finish()
            self.policy.after(set())
            return summary, version
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
            summary, version = off_main_thread(
                lambda: self._stream(entries), self._stop, "publisher-s3-archive"
            )
        except BaseException as exc:
            self._stop()
            self.sink.pool.close(cancel=True, timeout=_grace(exc))
            abandon(exc, self.log, self.sink.bucket, self.sink.key)
        return UploadOutcome(
            size=summary.size,
            checksum_sha256=summary.checksum_sha256,
            version_id=version,
            files=summary.files,
        )
