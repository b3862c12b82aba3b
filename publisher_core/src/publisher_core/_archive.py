"""Streaming a result tree into one ``.tar.gz``: tar -> gzip -> SHA-256 -> sink, one pass.

Nothing is staged on disk: the caller's sink receives the compressed bytes as they are
produced, and the summary carries the size and the base64 SHA-256 of exactly those bytes.
Archives are reproducible: entries in path order, integer mtimes, no owner names, a gzip
header without a timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import attrs

from ._tree import TreeEntry, open_entry

if TYPE_CHECKING:
    import tarfile

__all__ = [
    "ArchiveSummary",
    "BinarySink",
    "Compressor",
    "CompressorFactory",
    "HashingSink",
    "sha256_b64",
    "write_archive",
]


class BinarySink(Protocol):
    """Anything with a ``write(bytes)`` method: a file, a socket writer, an upload stream."""

    def write(self, data: bytes, /) -> object:
        """Write all of ``data``."""


def sha256_b64(digest: bytes) -> str:
    """Base64 of a raw SHA-256 digest: the encoding S3 uses for ``x-amz-checksum-sha256``."""
    return base64.b64encode(digest).decode("ascii")


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

    @property
    def checksum_sha256(self) -> str:
        """Base64 SHA-256 of everything written so far."""
        return sha256_b64(self._hash.digest())


class Compressor(Protocol):
    """What ``zlib.compressobj`` returns (and ``isal.isal_zlib.compressobj`` too)."""

    def compress(self, data: bytes, /) -> bytes:
        """Compress ``data``; return what is ready."""

    def flush(self) -> bytes:
        """Finish the stream; return the rest."""


CompressorFactory = Callable[[int, int, int], Compressor]
"""``(level, method, wbits) -> Compressor``, like ``zlib.compressobj``."""


class _GzipSink:
    """A write-only gzip stream (one member, no mtime or file name in the header)."""

    def __init__(self, sink: BinarySink, level: int, factory: CompressorFactory) -> None:
        self._sink = sink
        self._compressor = factory(level, zlib.DEFLATED, 31)

    def write(self, data: bytes, /) -> int:
        out = self._compressor.compress(data)
        if out:
            self._sink.write(out)
        return len(data)

    def close(self) -> None:
        self._sink.write(self._compressor.flush())


@attrs.frozen(kw_only=True)
class ArchiveSummary:
    """What was written: compressed size and SHA-256, and the input it came from."""

    size: int
    checksum_sha256: str
    files: int
    input_bytes: int


def _tarinfo(entry: TreeEntry) -> tarfile.TarInfo:
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
        info.size = entry.size
    return info


def write_archive(
    entries: list[TreeEntry],
    sink: BinarySink,
    *,
    level: int = 6,
    compressobj: CompressorFactory = zlib.compressobj,
) -> ArchiveSummary:
    """Write ``entries`` as a gzip-compressed tar to ``sink`` and summarise what was written.

    ``compressobj`` picks the deflate implementation (a faster one such as ISA-L's
    ``isal_zlib.compressobj`` writes the same format); ``level`` is its level.

    A file is archived with the size it has when opened; if it is shorter when read, the
    publish fails rather than store a corrupt archive.
    """
    import tarfile  # not needed by list/validate; keep their start-up lean

    hashing = HashingSink(sink)
    gz = _GzipSink(hashing, level, compressobj)
    files = 0
    input_bytes = 0
    with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for entry in entries:
            if entry.kind != "file":
                tar.addfile(_tarinfo(entry))
                continue
            with open_entry(entry) as handle:
                size = os.fstat(handle.fileno()).st_size
                info = _tarinfo(attrs.evolve(entry, size=size))
                tar.addfile(info, handle)
            files += 1
            input_bytes += size
    gz.close()
    return ArchiveSummary(
        size=hashing.size,
        checksum_sha256=hashing.checksum_sha256,
        files=files,
        input_bytes=input_bytes,
    )
