"""Streaming a result tree into one ``.tar.gz``: tar -> gzip -> SHA-256 -> sink, one pass.

Nothing is staged on disk: the caller's sink receives the compressed bytes as they are
produced, and the summary carries the size and the base64 SHA-256 of exactly those bytes.
Archives are reproducible: entries in path order, integer mtimes, no owner names, a gzip
header without a timestamp.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import attrs

from ._checksums import sha256_b64
from ._errors import PublishError
from ._tree import TreeEntry, open_entry

if TYPE_CHECKING:  # imported where used: list and validate never need tarfile
    import tarfile

__all__ = [
    "ArchiveSummary",
    "BinarySink",
    "GzipFactory",
    "GzipStream",
    "HashingSink",
    "write_archive",
    "zlib_gzip",
]


class BinarySink(Protocol):
    """Anything with a ``write(bytes)`` method: a file, a socket writer, an upload stream."""

    def write(self, data: bytes, /) -> object:
        """Write all of ``data``."""


class HashingSink:
    """Counts and hashes what passes through to ``sink``."""

    def __init__(self, sink: BinarySink) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        """Hash, count and forward ``data``."""
        self._hash.update(data)
        self.size += len(data)
        self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        """Flush ``sink`` if it can be flushed (buffered writers call this)."""
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()

    @property
    def checksum_sha256(self) -> str:
        """Base64 SHA-256 of everything written so far."""
        return sha256_b64(self._hash.digest())


class GzipStream(Protocol):
    """A writable gzip stream: ``write`` uncompressed bytes, ``close`` ends the member."""

    def write(self, data: bytes | memoryview, /) -> object:
        """Compress ``data`` (which may be reused by the caller once this returns)."""

    def close(self) -> None:
        """Finish the gzip member and write what is left to the sink."""


GzipFactory = Callable[[BinarySink, int], GzipStream]
"""``(sink, level) -> GzipStream``: how :func:`write_archive` compresses.

The default, :func:`zlib_gzip`, compresses in the calling thread with the standard
library. A faster one writes the same format (for instance ISA-L's threaded writer, which
the S3 publisher uses); it must write a header without a timestamp or file name so that
archives stay reproducible.
"""


class _ZlibGzip:
    def __init__(self, sink: BinarySink, level: int) -> None:
        self._sink = sink
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)

    def write(self, data: bytes | memoryview, /) -> int:
        out = self._compressor.compress(data)
        if out:
            self._sink.write(out)
        return len(data)

    def close(self) -> None:
        self._sink.write(self._compressor.flush())


def zlib_gzip(sink: BinarySink, level: int) -> GzipStream:
    """A gzip stream over ``sink`` using the standard library's zlib (one member, no mtime)."""
    return _ZlibGzip(sink, level)


@attrs.frozen(kw_only=True)
class ArchiveSummary:
    """What was written: compressed size and SHA-256, and the input it came from."""

    size: int
    checksum_sha256: str
    files: int
    input_bytes: int


_BLOCK = 512
_RECORD = 20 * _BLOCK  # what GNU tar and tarfile pad an archive to
_READ = 1 << 20


def _tarinfo(entry: TreeEntry, size: int) -> tarfile.TarInfo:
    """The tar member of ``entry``: integer mtime, no owner names."""
    import tarfile

    info = tarfile.TarInfo(entry.path)
    info.mtime = entry.mtime
    info.mode = entry.mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link or ""
    else:
        info.size = size
    return info


def _header(entry: TreeEntry, size: int) -> bytes:
    """The POSIX pax header block(s) of ``entry``, as ``tarfile`` writes them."""
    import tarfile

    return _tarinfo(entry, size).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class _TarStream:
    """Writes a tar stream: headers from ``tarfile``, file bytes copied in large reads."""

    def __init__(self, out: GzipStream) -> None:
        self.out = out
        self.written = 0
        self.buffer = bytearray(_READ)

    def _write(self, data: bytes | memoryview) -> None:
        self.out.write(data)
        self.written += len(data)

    def add(self, entry: TreeEntry) -> int:
        """Add one entry; for a file, return the number of bytes archived."""
        if entry.kind != "file":
            self._write(_header(entry, 0))
            return 0
        with open_entry(entry) as handle:
            size = os.fstat(handle.fileno()).st_size
            self._write(_header(entry, size))
            view = memoryview(self.buffer)
            left = size
            while left:
                n = handle.readinto(view[: min(left, _READ)])  # type: ignore[attr-defined]
                if not n:
                    raise PublishError(
                        f"{entry.path}: shrank while publishing; nothing was published"
                    )
                self._write(view[:n])
                left -= n
        if size % _BLOCK:
            self._write(bytes(_BLOCK - size % _BLOCK))
        return size

    def close(self) -> None:
        """Write the end-of-archive blocks and pad to a whole record."""
        end = 2 * _BLOCK
        end += -(self.written + end) % _RECORD
        self._write(bytes(end))


def write_archive(
    entries: list[TreeEntry],
    sink: BinarySink,
    *,
    level: int = 6,
    gzip: GzipFactory = zlib_gzip,
) -> ArchiveSummary:
    """Write ``entries`` as a gzip-compressed tar to ``sink`` and summarise what was written.

    ``gzip`` picks the compressor (see :data:`GzipFactory`); ``level`` is its level. The
    tar is POSIX pax, entries in the given order, integer mtimes, no owner names.

    A file is archived with the size it has when opened; if it is shorter when read, the
    publish fails rather than store a corrupt archive, and bytes appended after the
    open are not archived.
    """
    hashing = HashingSink(sink)
    gz = gzip(hashing, level)
    tar = _TarStream(gz)
    files = 0
    input_bytes = 0
    for entry in entries:
        input_bytes += tar.add(entry)
        files += entry.kind == "file"
    tar.close()
    gz.close()
    return ArchiveSummary(
        size=hashing.size,
        checksum_sha256=hashing.checksum_sha256,
        files=files,
        input_bytes=input_bytes,
    )
