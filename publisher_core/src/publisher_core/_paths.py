"""The one rule for a relative path inside a result, shared by publish and ``get``.

``scan_tree`` (publish), ``get``'s item paths and the member names of archives ``get``
extracts are all judged by :func:`path_problem`, so a tree that publishes can always be
fetched and ``get`` never writes a name publish would have refused. A path is accepted
when:

- it is relative (not empty, no leading ``/``) and its ``/``-separated segments are
  neither empty nor ``.`` or ``..``;
- it is valid UTF-8 and holds no control character (C0, DEL, C1, U+2028, U+2029) and no
  backslash (a path separator on Windows, refused on every system alike);
- each segment is at most :data:`MAX_SEGMENT_BYTES` UTF-8 bytes, the whole path at most
  :data:`MAX_PATH_BYTES`, with at most :data:`MAX_PATH_DEPTH` segments.
"""

from __future__ import annotations

import errno
import os
from typing import Final

from ._errors import quoted
from ._keys import _CONTROL

__all__ = [
    "MAX_PATH_BYTES",
    "MAX_PATH_DEPTH",
    "MAX_SEGMENT_BYTES",
    "make_dirs",
    "path_problem",
    "shown_path",
]

MAX_SEGMENT_BYTES: Final = 255
"""UTF-8 bytes in one segment of a result path, at most (``NAME_MAX`` on Linux)."""

MAX_PATH_BYTES: Final = 4095
"""UTF-8 bytes in a whole relative result path, at most (``PATH_MAX`` less its NUL)."""

MAX_PATH_DEPTH: Final = 256
"""Segments in a result path, at most: a file 256 levels down, or 255 directories."""


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a relative path of a result, or None when it can.

    The reason reads after the path and a colon (``'x.txt': name contains a control
    character ...``); show the path with :func:`shown_path`. The work is linear in the
    length of ``path``, however deep it is.
    """
    if not path:
        return "path is empty"
    if path.startswith("/"):
        return "path is absolute (starts with '/')"
    segments = path.split("/")
    if any(s in ("", ".", "..") for s in segments):
        return "path has an empty, '.' or '..' segment"
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    if _CONTROL.search(path):
        return (
            "name contains a control character (a newline, tab or similar), "
            "which a key or a restored file name cannot hold safely"
        )
    if "\\" in path:
        return (
            "name contains a backslash, a path separator on Windows, which a key or a "
            "restored file name cannot hold safely"
        )
    if len(segments) > MAX_PATH_DEPTH:
        return f"path is {len(segments)} levels deep; the limit is {MAX_PATH_DEPTH}"
    if size > MAX_PATH_BYTES:
        return f"path is {size} UTF-8 bytes; the limit is {MAX_PATH_BYTES}"
    for segment in segments:
        length = len(segment.encode("utf-8"))
        if length > MAX_SEGMENT_BYTES:
            return (
                f"name {quoted(segment, 40)} is {length} UTF-8 bytes; "
                f"the limit is {MAX_SEGMENT_BYTES}"
            )
    return None


def shown_path(path: str) -> str:
    """``path`` quoted for a message, bounded; as bytes when it is not valid UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return quoted(path.encode("utf-8", "surrogateescape"))
    return quoted(path)


def make_dirs(root: str | os.PathLike[str], path: str) -> None:
    """Create every directory of relative ``path`` inside ``root``, without recursion.

    ``path`` (possibly empty) has passed :func:`path_problem`. Existing directories are
    kept; anything else where a directory is needed raises :class:`NotADirectoryError`
    naming the part of ``path`` in the way. (``os.makedirs`` and ``Path.mkdir`` recurse
    once per level.)
    """
    current = os.fspath(root)
    done: list[str] = []
    for segment in path.split("/") if path else []:
        current = os.path.join(current, segment)
        done.append(segment)
        try:
            os.mkdir(current)
        except FileExistsError:
            if os.path.islink(current) or not os.path.isdir(current):
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", "/".join(done)) from None
