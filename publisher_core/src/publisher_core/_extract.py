"""Extracting an untrusted ``.tar.gz`` so that nothing lands or points outside the target.

The checks here do not rely on resolving paths on disk (``os.path.realpath`` can be fooled
by over-long link chains): every member is judged from the archive's own names.

- Names are relative, with no ``..``; ``./`` prefixes are dropped; duplicates are refused.
- Names then pass the result path rule publish applies
  (:func:`~publisher_core._paths.path_problem`): no backslash or control character, valid
  UTF-8, bounded length and depth.
- No member may be written below a symlink, a file or a hard link of the same archive,
  nor replace a directory that earlier members were written into.
- Symlinks point inside the tree, relatively, and never through another symlink.
- Hard links point to a regular file extracted earlier.
- Only files, directories and links: devices and FIFOs are refused.

tarfile's ``data`` filter runs as well, for what it adds (modes, ownership).

Decompression bombs are refused twice over, with :class:`DownloadError`: by the sizes the
members *declare* (a running total, checked before each member is written) and by the
bytes *actually* decompressed (tar headers, padding, pax records and anything after the
end-of-archive marker included, with a small allowance for tar's own overhead). After the
tar ends the stream is read to its end, so that the gzip trailer (CRC-32 and length) is
checked: tarfile alone stops at the end-of-archive marker and never looks at it.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO

from ._errors import DownloadError, UnsafePathError
from ._paths import path_problem, shown_path
from ._sizes import format_size, format_sizes

__all__ = ["extract_archive", "format_size", "tar_overhead"]  # format_size: its old home

# What tar may add to the content: end-of-archive blocks, padding to a record (10 KiB),
# the read-ahead of tarfile's stream buffer, and one member's headers before it is seen.
_TAR_SLACK = 1 << 20
# Per member seen: its header, a pax or GNU long-name header, padding; plus its names twice
# (a pax record and a long-name block may both carry them).
_MEMBER_SLACK = 4096
_CHUNK = 1 << 20
_TRAILER_ERRORS = ("CRC check failed", "Incorrect length of data produced")


def tar_overhead() -> int:
    """Bytes tar may add to an archive's content: what a limit on content allows on top.

    The allowance extraction gives the decompressed stream, and ``get`` the compressed
    download (an archive of many small or empty files is larger than its content).
    """
    return _TAR_SLACK


def _walk(base: list[str], target: str, symlinks: dict[str, str] | None) -> bool:
    """Whether ``target`` seen from directory ``base`` stays inside the tree.

    With ``symlinks``, also refuse a path that goes through one of them.
    """
    parts = list(base)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return False
            parts.pop()
            continue
        parts.append(part)
        if symlinks is not None and "/".join(parts) in symlinks:
            return False
    return True


class _ArchiveChecker:
    def __init__(self) -> None:
        self.names: set[str] = set()
        self.files: set[str] = set()
        self.symlinks: dict[str, str] = {}
        self.directories: set[str] = set()

    def refuse(self, name: str, why: str) -> UnsafePathError:
        return UnsafePathError(f"archive entry {shown_path(name)} {why}; refusing the archive")

    def check(self, member: tarfile.TarInfo) -> str | None:
        """The normalised name of an acceptable member, None for the root entry."""
        name = member.name
        if name.startswith("/"):
            raise self.refuse(name, "has an absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.refuse(name, "contains '..'")
        if not parts:
            return None
        norm = "/".join(parts)
        problem = path_problem(norm)
        if problem is not None:
            raise UnsafePathError(
                f"archive entry {shown_path(name)}: {problem}; refusing the archive"
            )
        if norm in self.names:
            raise self.refuse(name, "appears twice")
        end = -1
        while (end := norm.find("/", end + 1)) != -1:
            prefix = norm[:end]
            if prefix in self.symlinks:
                raise self.refuse(
                    name, f"would be written through the symlink {shown_path(prefix)}"
                )
            if prefix in self.files:
                raise self.refuse(
                    name,
                    f"would be written through {shown_path(prefix)}, which is not a directory "
                    "(a file or hard link earlier in the archive)",
                )
        if not member.isdir() and norm in self.directories:
            raise self.refuse(
                name, "would replace the directory of the same name that earlier entries are in"
            )
        if member.issym():
            target = member.linkname
            if not target or target.startswith("/"):
                raise self.refuse(name, f"is a symlink to the absolute path {target!r}")
            if not _walk(parts[:-1], target, None):
                raise self.refuse(name, f"is a symlink leading out of the result ({target!r})")
            self.symlinks[norm] = target
        elif member.islnk():
            linked = "/".join(p for p in member.linkname.split("/") if p not in ("", "."))
            if linked not in self.files:
                raise self.refuse(
                    name, f"is a hard link to {shown_path(member.linkname)}, not a file before it"
                )
            self.files.add(norm)
        elif member.isreg():
            self.files.add(norm)
        elif not member.isdir():
            raise self.refuse(name, "is a device, FIFO or other special file")
        self.names.add(norm)
        end = -1
        while (end := norm.find("/", end + 1)) != -1:
            self.directories.add(norm[:end])
        return norm

    def finish(self) -> None:
        """Refuse symlinks whose target goes through another symlink (a possible escape)."""
        for name, target in self.symlinks.items():
            if not _walk(name.split("/")[:-1], target, self.symlinks):
                raise self.refuse(name, f"is a symlink through another symlink ({target!r})")


class _Limited(io.BufferedIOBase):
    """A read-only view of a decompressed stream that counts the bytes it hands out.

    More than ``limit`` bytes in total raise :class:`DownloadError`; the caller raises
    ``limit`` as it goes (each tar member earns an allowance for its headers).
    """

    def __init__(self, raw: BinaryIO, max_bytes: int | None, note: str) -> None:
        super().__init__()
        self._source = raw
        self.max_bytes = max_bytes
        self.limit = None if max_bytes is None else max_bytes + tar_overhead()
        self.note = note
        self.count = 0

    def readable(self) -> bool:
        """Yes."""
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes, and never more than one chunk at once."""
        data = self._source.read(size if size is not None and 0 <= size <= _CHUNK else _CHUNK)
        self.count += len(data)
        if self.limit is not None and self.count > self.limit:
            raise DownloadError(
                f"archive decompresses to more than {format_size(self.limit)}, over the "
                f"limit of {format_size(self.max_bytes or 0)} ({self.note}) plus tar's "
                "overhead; refusing a possible decompression bomb"
            )
        return data


def extract_archive(
    archive: Path,
    tree: Path,
    *,
    max_bytes: int | None = None,
    limit_note: str = "publisher get --max-size",
) -> tuple[int, int]:
    """Extract ``archive`` into the empty directory ``tree``; return (files, bytes).

    ``max_bytes`` limits the content: both the sizes the members declare and the bytes
    the archive decompresses to (less a small allowance for tar's headers and padding);
    ``limit_note`` says in an error where that limit came from. None means no limit.

    Raises :class:`UnsafePathError` for a hostile member (``tree`` may then hold part of
    the archive: callers extract into a staging directory) and :class:`DownloadError` for
    an archive that cannot be read, whose gzip trailer (CRC-32, length) is wrong, or that
    is over ``max_bytes`` (a decompression bomb).
    """
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:  # Python < 3.10.12 / 3.11.4
        raise DownloadError("extracting archives safely needs Python 3.10.12 or 3.11.4 or newer")
    checker = _ArchiveChecker()
    files = size = declared = 0
    unreadable: tuple[type[Exception], ...] = (
        tarfile.TarError,
        EOFError,
        OSError,
        *_inflate_errors(),
    )
    try:
        with _gunzip(archive) as raw:
            stream = _Limited(raw, max_bytes, limit_note)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    if stream.limit is not None:
                        names = len(_raw(member.name)) + len(_raw(member.linkname))
                        stream.limit += _MEMBER_SLACK + 2 * names
                    norm = checker.check(member)
                    if norm is None:
                        continue
                    if member.isreg():
                        declared += member.size
                        if max_bytes is not None and declared > max_bytes:
                            size_, limit_ = format_sizes(declared, max_bytes)
                            raise DownloadError(
                                f"archive declares {size_} of content (up to entry {norm!r}), "
                                f"over the limit of {limit_} ({limit_note}); "
                                "refusing a possible decompression bomb"
                            )
                    member.name = norm
                    try:
                        safe = data_filter(member, str(tree))
                    except tarfile.FilterError as exc:
                        raise UnsafePathError(f"archive entry {member.name!r}: {exc}") from None
                    try:
                        tar.extract(safe, tree, set_attrs=True, filter="fully_trusted")
                    except OSError as exc:
                        if exc.errno is None:  # the stream's (gzip's BadGzipFile): below
                            raise
                        raise DownloadError(
                            f"extracting archive entry {shown_path(norm)} failed: {exc.strerror}"
                        ) from None
                    if safe.isfile():
                        files += 1
                        size += safe.size
            checker.finish()
            # tarfile stopped at the end-of-archive marker: read on to the gzip trailer,
            # which is where a wrong CRC-32 or length is noticed (within the same limit).
            while stream.read(_CHUNK):
                pass
    except DownloadError:  # UnsafePathError, and the limits
        raise
    except gzip.BadGzipFile as exc:
        if str(exc).startswith(_TRAILER_ERRORS):
            raise DownloadError(
                f"archive is corrupt: its gzip trailer does not match the decompressed "
                f"data ({exc}); refusing it"
            ) from None
        raise DownloadError(f"archive is not a readable .tar.gz: {exc}") from None
    except unreadable as exc:
        raise DownloadError(f"archive is not a readable .tar.gz: {exc}") from None
    return files, size


def _raw(name: str) -> bytes:
    """A member name as the bytes it was read from (tarfile decodes with surrogateescape)."""
    return name.encode("utf-8", "surrogateescape")


def _inflate_errors() -> tuple[type[Exception], ...]:
    """What the decompressors raise for corrupt data: zlib's error, and ISA-L's if present."""
    try:
        from isal import isal_zlib
    except ImportError:
        return (zlib.error,)
    isal_error: type[Exception] = isal_zlib.error  # type: ignore[assignment]  # stub says instance
    return (zlib.error, isal_error)


def _gunzip(archive: Path) -> BinaryIO:
    """``archive`` decompressed as a stream.

    ISA-L in a background thread when it is installed (two to three times zlib's speed,
    overlapped with writing the files), else the standard library.
    """
    try:
        from isal import igzip_threaded
    except ImportError:
        return gzip.open(archive, "rb")  # type: ignore[return-value]
    stream: BinaryIO = igzip_threaded.open(archive, "rb", threads=1)  # type: ignore[no-untyped-call]
    return stream
