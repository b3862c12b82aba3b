"""Directory mode: every file of a result as its own object under the key, then the manifest.

Each file goes up as ``KEY + path`` (:class:`FileUploads`), from a thread pool sharing
one client, with a bounded number of files in flight; a file smaller than one part is
one PutObject, a larger one a multipart upload whose parts go up several at once
(``_transfer.PartSender``: the file is read and hashed in order, only the sending is
parallel, and the parts in flight across all files are bounded). Many small files are
shared with helper processes (``_helpers``), which upload their shares the same way.
The manifest is written last, so a reader never takes an incomplete result for one
(:class:`DirectoryUpload`). The first failure stops the rest, and everything written is
removed (``_upload.abandon``).

The work runs off the main thread (``_transfer.off_main_thread``): an interrupt asks it
to stop, waits up to ``INTERRUPT_GRACE`` seconds for the requests in flight to return
(so that clean-up knows everything they created), then cleans up and re-raises.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import mimetypes
from typing import TYPE_CHECKING, BinaryIO

from publisher_core import (
    Manifest,
    ManifestFile,
    PublishError,
    TreeEntry,
    empty_directories,
    manifest_key,
    open_entry,
    read_entry,
    sha256_b64,
    sha256_of,
)

from ._cleanup import CleanupLog
from ._client import describe_client_error
from ._crt import CrtPuts, crt_puts
from ._helpers import Helper, helper_count, helper_job
from ._overwrite import overwrite_policy
from ._spec import MIB, S3Settings
from ._transfer import (
    BoundedPool,
    Destination,
    Multipart,
    PartSender,
    Stopped,
    grace_after,
    off_main_thread,
    part_size_for,
    put_object,
)
from ._upload import UploadOutcome, UploadRequest, abandon

if TYPE_CHECKING:
    from botocore.session import Session

__all__ = ["DirectoryUpload", "FileUploads"]

_log = logging.getLogger(__name__)

PARTS_IN_FLIGHT = 3
"""Parts in flight at once across all the files of a publish (at most ``concurrency``).

One large file alone goes up about as fast as several (its next part is read while
others are sent), and files in flight add no parts: they wait for room
(``_transfer.PartSender``). A file whose parts are in flight sends nothing itself, so
requests in flight stay within ``concurrency - 1 + 3``: the client's connection pool
(``_client``: ``concurrency + 2``).
"""
PART_MEMORY = 64 * MIB
"""Bytes of parts in flight at once, whatever the part size (a larger part goes alone)."""


class FileUploads:
    """Files uploaded as ``key + path``; the first failure stops all.

    Files of a part size or more go up from a bounded thread pool (botocore), as do small
    ones unless ``crt`` is given: then small files are read here, one after another, and
    sent through the AWS Common Runtime, many at once (``_crt``). A large file's parts
    are sent by ``parts`` (:meth:`_send_parts`), at most :data:`PARTS_IN_FLIGHT` and
    :data:`PART_MEMORY` bytes of them at once across all files. Every request is
    reported to ``log`` before it is sent: the publish's own clean-up log, or in a helper
    process one that forwards to its parent's.
    """

    def __init__(
        self,
        to: Destination,
        log: CleanupLog,
        key: str,
        settings: S3Settings,
        crt: CrtPuts | None = None,
    ) -> None:
        self.to, self.log, self.key, self.settings = to, log, key, settings
        self.crt = crt
        workers = settings.concurrency
        self.pool = BoundedPool(workers, limit=2 * workers)
        parts = min(workers, PARTS_IN_FLIGHT)
        self.parts = PartSender(self.pool, parts=parts, memory=PART_MEMORY)

    def _file(self, entry: TreeEntry) -> ManifestFile:
        key = self.key + entry.path
        try:
            return self._upload_file(entry, key)
        except (Stopped, PublishError):
            raise
        except Exception as exc:  # name the object that failed, not just the prefix
            raise PublishError(describe_client_error(exc, self.to.bucket, key)) from exc

    def _upload_file(self, entry: TreeEntry, key: str) -> ManifestFile:
        if self.pool.stop.is_set():
            raise Stopped
        content_type = mimetypes.guess_type(entry.path)[0] or "application/octet-stream"
        part_size = part_size_for(entry.size, self.settings.part_size)
        upload: Multipart | None = None
        version: str | None = None
        with open_entry(entry) as handle:
            if entry.size < part_size:
                data = handle.read(part_size)
                checksum = sha256_of(data)
                version = put_object(self.to, self.log, key, data, content_type)
            else:
                upload = Multipart(self.to, self.log, key, content_type)
                checksum = self._send_parts(upload, handle, entry.size, part_size)
            size = handle.tell() + len(handle.read(1))  # one byte more: a file that grew
        if size != entry.size:
            raise PublishError(
                f"{entry.path}: changed size while publishing; nothing was published"
            )
        if upload is not None:
            version = upload.complete()
        return ManifestFile(
            path=entry.path,
            size=size,
            checksum_sha256=checksum,
            version_id=version,
        )

    def _send_parts(
        self, upload: Multipart, handle: BinaryIO, expected: int, part_size: int
    ) -> str:
        """Send the file as parts of ``upload``, several at once; return its SHA-256.

        ``self.parts`` reads the parts in file order, one at a time, and sends them; each
        is hashed as it is read, so the digest is the whole file's. ``expected`` is the
        file's size, which makes the number of parts.
        """
        digest = hashlib.sha256()

        def read_part() -> bytes:
            data = handle.read(part_size)
            digest.update(data)
            return data

        self.parts.send(upload, read_part, -(-expected // part_size), part_size)
        return sha256_b64(digest.digest())

    def upload(self, files: list[TreeEntry]) -> list[ManifestFile]:
        """Upload ``files``; the first failure stops the rest."""
        small: list[TreeEntry] = []
        for entry in files:
            if self.crt is not None and entry.size < self.settings.part_size:
                small.append(entry)
            else:
                self.pool.submit(functools.partial(self._file, entry))
        done = self._send_small(small) if small else []
        done += self.pool.results()
        self.close(cancel=False)
        return done

    def close(self, *, cancel: bool, timeout: float | None = None) -> None:
        """Shut the threads down; with ``cancel`` drop queued files and stop running ones.

        Waits for the files still going up (each waits for its parts), at most ``timeout``
        seconds if given.
        """
        self.pool.close(cancel=cancel, timeout=timeout)
        self.parts.close()

    def _send_small(self, files: list[TreeEntry]) -> list[ManifestFile]:
        """Read each file here and send it through the runtime; wait for them all."""
        assert self.crt is not None
        done: list[ManifestFile] = []
        try:
            for entry in files:
                if self.pool.stop.is_set():
                    break
                data = read_entry(entry)
                key = self.key + entry.path
                checksum = sha256_of(data)
                content_type = mimetypes.guess_type(entry.path)[0] or "application/octet-stream"
                self.log.writing(key)
                sent = functools.partial(self._sent, entry, key, checksum, done)
                self.crt.put(key, data, checksum, content_type, sent)
        except Exception as exc:
            self.pool.fail(exc)  # the pool's uploads stop too
            raise
        finally:
            if self.pool.stop.is_set():
                self.crt.stop()  # no retries; what is in flight ends (the watcher bounds it)
            self.crt.drain()
        return done

    def _sent(
        self,
        entry: TreeEntry,
        key: str,
        checksum: str,
        done: list[ManifestFile],
        version: str | None,
        error: BaseException | None,
    ) -> None:
        """What the runtime reports for one file (called on its threads)."""
        if error is not None:
            self.log.not_written(key, error)
            self.pool.fail(PublishError(describe_client_error(error, self.to.bucket, key)))
            return
        self.log.written(key, version)
        done.append(  # list.append is atomic
            ManifestFile(
                path=entry.path, size=entry.size, checksum_sha256=checksum, version_id=version
            )
        )


class DirectoryUpload:
    """Directory mode: every file under ``key``, then the manifest, or nothing at all.

    Many small files are shared with helper processes (see ``_helpers``), which sign
    with the credentials of ``session`` (the one the destination's client was made from;
    without it they take the default chain) and write with the same object attributes;
    ``expected_bucket_owner`` is what the client was told to send (helpers tell theirs).
    """

    def __init__(
        self,
        request: UploadRequest,
        *,
        expected_bucket_owner: str | None = None,
        session: Session | None = None,
    ) -> None:
        self.to, self.key, self.settings = request.to, request.key, request.settings
        self.overwrite = request.overwrite
        self.expected_bucket_owner = expected_bucket_owner  # passed on to helper processes
        self.session = session  # its credentials are passed on to helper processes
        self.log = request.new_log()
        self.files = FileUploads(self.to, self.log, self.key, self.settings)
        self.pool = self.files.pool

    def _start_runtime(self, files: list[TreeEntry]) -> bool:
        """Send the small files through the AWS Common Runtime where it can carry them."""
        if not any(e.size < self.settings.part_size for e in files):
            return False
        self.files.crt = crt_puts(self.to, self.session, self.settings, self.expected_bucket_owner)
        return self.files.crt is not None

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
        job = helper_job(self.to, self.session, self.key, self.settings, self.expected_bucket_owner)
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
            "directory upload to %s with %d workers",
            self.to.url(self.key),
            self.settings.concurrency,
        )
        helpers: list[Helper] = []
        try:
            return off_main_thread(
                lambda: self._upload(entries, helpers), self.pool.stop.set, "publisher-s3-directory"
            )
        except BaseException as exc:
            self.files.close(cancel=True, timeout=grace_after(exc))
            if self.files.crt is not None:  # what is still in flight ends before clean-up
                self.files.crt.stop()
                if not self.files.crt.drain(grace_after(exc)):
                    self.files.crt.cancel()  # past the grace period: cut off, then clean up
                    self.files.crt.drain(grace_after(exc))
            for helper in list(helpers):
                helper.stop()  # everything a helper reported is in the log before clean-up
            abandon(exc, self.log, self.to.bucket, self.key)
        finally:
            if self.files.crt is not None:
                self.files.crt.close()

    def _upload(self, entries: list[TreeEntry], helpers: list[Helper]) -> UploadOutcome:
        policy = overwrite_policy(self.overwrite, self.to, self.log, self.key)
        policy.before()
        files = [e for e in entries if e.kind == "file"]
        kept = files if self._start_runtime(files) else self._start_helpers(files, helpers)
        done = self.files.upload(kept)
        for helper in helpers:
            done += helper.finish()
        if self.pool.stop.is_set():
            raise Stopped
        manifest = Manifest.build(done, empty_directories(entries))
        data = manifest.to_bytes()
        where = manifest_key(self.key)
        version = put_object(
            self.to, self.log, where, data, "application/json", create_only=policy.create_only
        )
        policy.after({self.key + f.path for f in done})
        return UploadOutcome(
            size=manifest.total_size,
            checksum_sha256=sha256_of(data),
            version_id=version,
            files=len(done),
            manifest_key=where,
        )
