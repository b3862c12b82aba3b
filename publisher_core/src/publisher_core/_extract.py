"""Extracting an untrusted ``.tar.gz`` so that nothing lands or points outside the target.

The checks here do not rely on resolving paths on disk (``os.path.realpath`` can be fooled
by over-long link chains): every member is judged from the archive's own names.

- Names are relative, with no ``..``; ``./`` prefixes are dropped; duplicates are refused.
- No member may be written below a symlink or a file of the same archive.
- Symlinks point inside the tree, relatively, and never through another symlink.
- Hard links point to a regular file extracted earlier.
- Only files, directories and links: devices and FIFOs are refused.

tarfile's ``data`` filter runs as well, for what it adds (modes, ownership).
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path
from typing import BinaryIO

from ._errors import DownloadError, UnsafePathError

__all__ = ["extract_archive"]


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

    def refuse(self, name: str, why: str) -> UnsafePathError:
        return UnsafePathError(f"archive entry {name!r} {why}; refusing the archive")

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
        if norm in self.names:
            raise self.refuse(name, "appears twice")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self.symlinks or prefix in self.files:
                raise self.refuse(name, f"would be written through the link or file {prefix!r}")
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
                    name, f"is a hard link to {member.linkname!r}, not a file before it"
                )
        elif member.isreg():
            self.files.add(norm)
        elif not member.isdir():
            raise self.refuse(name, "is a device, FIFO or other special file")
        self.names.add(norm)
        return norm

    def finish(self) -> None:
        """Refuse symlinks whose target goes through another symlink (a possible escape)."""
        for name, target in self.symlinks.items():
            if not _walk(name.split("/")[:-1], target, self.symlinks):
                raise self.refuse(name, f"is a symlink through another symlink ({target!r})")


def extract_archive(archive: Path, tree: Path) -> tuple[int, int]:
    """Extract ``archive`` into the empty directory ``tree``; return (files, bytes).

    Raises :class:`UnsafePathError` for a hostile member (``tree`` may then hold part of
    the archive: callers extract into a staging directory) and :class:`DownloadError` for
    an archive that cannot be read.
    """
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is None:  # Python < 3.10.12 / 3.11.4
        raise DownloadError("extracting archives safely needs Python 3.10.12 or 3.11.4 or newer")
    checker = _ArchiveChecker()
    files = size = 0
    unreadable: tuple[type[Exception], ...] = (
        tarfile.TarError,
        EOFError,
        OSError,
        *_inflate_errors(),
    )
    try:
        with _gunzip(archive) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                norm = checker.check(member)
                if norm is None:
                    continue
                member.name = norm
                try:
                    safe = data_filter(member, str(tree))
                except tarfile.FilterError as exc:
                    raise UnsafePathError(f"archive entry {member.name!r}: {exc}") from None
                tar.extract(safe, tree, set_attrs=True, filter="fully_trusted")
                if safe.isfile():
                    files += 1
                    size += safe.size
        checker.finish()
    except UnsafePathError:
        raise
    except unreadable as exc:
        raise DownloadError(f"archive is not a readable .tar.gz: {exc}") from None
    return files, size


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
        import gzip

        return gzip.open(archive, "rb")  # type: ignore[return-value]
    stream: BinaryIO = igzip_threaded.open(archive, "rb", threads=1)  # type: ignore[no-untyped-call]
    return stream
