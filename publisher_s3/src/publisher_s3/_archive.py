"""Archive mode: one ``.tar.gz`` object streamed from the tree, or nothing at all.

tar -> gzip (ISA-L, blocks compressed in parallel) -> parts: a small archive is one
PutObject, a large one a multipart upload whose parts go up while compression
continues. Memory stays bounded by the part size times the parts in flight; nothing is
staged on disk. The first failure stops the rest, and everything written is removed
(``_upload.abandon``).

The work runs off the main thread (``_transfer.off_main_thread``): an interrupt stops
the compressor between writes, waits up to ``INTERRUPT_GRACE`` seconds for the parts in
flight to return (so that clean-up knows everything they created), then cleans up and
re-raises.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from isal import igzip_threaded

from publisher_core import ArchiveSummary, BinarySink, GzipStream, TreeEntry, write_archive

from ._cleanup import WriteLog
from ._overwrite import overwrite_policy
from ._transfer import (
    BoundedPool,
    Multipart,
    Stopped,
    grace_after,
    off_main_thread,
    put_object,
    streamed_part_size,
)
from ._upload import UploadOutcome, UploadRequest, abandon

__all__ = ["ARCHIVE_CONTENT_TYPE", "ArchiveUpload"]

_log = logging.getLogger(__name__)

ARCHIVE_CONTENT_TYPE = "application/gzip"
_ARCHIVE_PARTS_IN_FLIGHT = 4


class _PartSink:
    """The archive's compressed bytes, cut into parts and uploaded while more arrive.

    Parts grow as the stream goes on (``_transfer.streamed_part_size``), so an archive
    of any size fits S3's 10,000-part limit. After a failure every further write is
    refused, so unwinding (tarfile flushes its buffer on the way out) cannot start new
    requests.
    """

    def __init__(self, request: UploadRequest, content_type: str) -> None:
        self.to, self.key, self.content_type = request.to, request.key, content_type
        self.create_only = False  # set by the overwrite policy before the first write
        settings = request.settings
        self.base_part_size = settings.part_size
        self.log = request.new_log()
        self.buffer: list[bytes] = []  # joined once per part: one copy of every byte
        self.buffered = 0
        self.multipart: Multipart | None = None
        self.number = 0
        self.failed = False
        in_flight = max(1, min(settings.concurrency, _ARCHIVE_PARTS_IN_FLIGHT))
        self.pool = BoundedPool(in_flight, limit=in_flight)

    @property
    def part_size(self) -> int:
        return streamed_part_size(self.base_part_size, self.number)

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
                self.to, self.log, self.key, self.content_type, create_only=self.create_only
            )
        self.number += 1
        upload, number = self.multipart, self.number
        self.pool.submit(lambda: upload.upload(number, part))

    def finish(self) -> str | None:
        if self.multipart is None:  # small: one PutObject, checked by the server where it can
            data = b"".join(self.buffer)
            return put_object(
                self.to, self.log, self.key, data, self.content_type, create_only=self.create_only
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

    ``content_type`` is the archive's (default ``application/gzip``).
    """

    def __init__(self, request: UploadRequest, content_type: str | None = None) -> None:
        self.sink = _PartSink(request, content_type or ARCHIVE_CONTENT_TYPE)
        self.policy = overwrite_policy(request.overwrite, request.to, self.sink.log, request.key)
        self.sink.create_only = self.policy.create_only
        self.settings = request.settings
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
        _log.debug("archive upload to %s", self.sink.to.url(self.sink.key))
        try:
            summary, version = off_main_thread(
                lambda: self._stream(entries), self._stop, "publisher-s3-archive"
            )
        except BaseException as exc:
            self._stop()
            self.sink.pool.close(cancel=True, timeout=grace_after(exc))
            abandon(exc, self.log, self.sink.to.bucket, self.sink.key)
        return UploadOutcome(
            size=summary.size,
            checksum_sha256=summary.checksum_sha256,
            version_id=version,
            files=summary.files,
        )
