"""What ``get`` refuses before it writes anything: a bad description, a target in use.

URLs must be ``file``, ``http`` or ``https``, well formed and not expired; item paths (and
empty directories) must pass the result path rule publish applies
(:func:`~publisher_core._paths.path_problem`), appear once, and never lead through another
item. Errors never quote a URL's query string.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import DownloadError, SpecError, TargetExistsError, UnsafePathError, quoted
from ._models import ResultDescription, redact_url
from ._paths import path_problem, shown_path

__all__ = ["check_description", "check_target", "check_url", "safe_relative_path"]

# Whitespace (str.isspace's, which \s matches in a str pattern) and control characters:
# one search instead of a test per character (a pre-signed URL is ~300 of them).
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")


def check_url(url: str) -> None:
    """Refuse a URL ``get`` cannot or must not fetch, without quoting its query string."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise SpecError(f"malformed URL {redact_url(url)}", what="description") from None
    if parts.scheme not in ("file", "http", "https"):
        raise SpecError(
            f"unsupported URL scheme {parts.scheme!r} in {redact_url(url)}; "
            "expected http, https or file",
            what="description",
        )
    if _SPACE_OR_CONTROL.search(url):
        raise SpecError(
            f"URL {redact_url(url)} contains spaces or control characters", what="description"
        )


def safe_relative_path(path: str) -> str:
    """``path`` if it is a result path publish could have written, else an error.

    That is the rule of :func:`~publisher_core._paths.path_problem`: relative, inside its
    root, no backslash or control character, bounded in length and depth. Raises
    :class:`UnsafePathError` naming the path and the reason.
    """
    problem = path_problem(path)
    if problem is not None:
        raise UnsafePathError(f"item path {shown_path(path)}: {problem}; refusing it")
    return path


def check_target(target: Path) -> None:
    """Refuse a target that is not a directory, or not an empty one."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise TargetExistsError(f"{target} exists and is not a directory; choose another -o DIR")
    if target.is_dir() and any(target.iterdir()):
        raise TargetExistsError(f"{target} exists and is not empty; choose another -o DIR")


def check_description(description: ResultDescription, now: datetime) -> None:
    """Refuse, before anything is written, items ``get`` cannot or must not fetch.

    Bad URLs, expired ones, paths publish would refuse, a path twice, and a path that
    would be written through another item (a file where a directory is needed).
    """
    seen: set[str] = set()
    for item in description.items:
        check_url(item.url)
        if item.expires is not None and item.expires <= now:
            raise DownloadError(
                f"the download URL for {quoted(item.path)} expired at "
                f"{item.expires.isoformat()}; run 'publisher describe' again for fresh URLs"
            )
        if not item.archive:
            safe_relative_path(item.path)
            if item.path in seen:
                raise UnsafePathError(
                    f"item path {shown_path(item.path)} appears twice; refusing it"
                )
            seen.add(item.path)
    directories = [d.rstrip("/") for d in description.directories]
    for directory in directories:
        safe_relative_path(directory)
        if directory in seen:
            raise UnsafePathError(
                f"directory {shown_path(directory)} is also a file item; refusing it"
            )
    for path in (*seen, *directories):
        for end, char in enumerate(path):
            if char == "/" and path[:end] in seen:
                raise UnsafePathError(
                    f"item path {shown_path(path)} would be written through "
                    f"{shown_path(path[:end])}, which is a file item, not a directory; "
                    "refusing it"
                )
