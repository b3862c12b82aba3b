"""The downloader behind ``publisher get``: fetch, verify, extract safely, then move in place.

Every item is fetched (``file``, ``http``, ``https``) into a staging directory beside the
target and checked against its recorded size and SHA-256 before anything is extracted.
Archives are extracted by ``extract_archive`` (no absolute paths, no ``..``, no links
leading out, no devices). Only a tree that fully checked out is renamed to the
target; on any failure the staging directory is removed and the target is untouched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import attrs

from ._archive import sha256_b64
from ._errors import (
    DownloadError,
    IntegrityError,
    PublisherError,
    SpecError,
    TargetExistsError,
    UnsafePathError,
)
from ._extract import extract_archive
from ._models import DownloadItem, ResultDescription, redact_url

__all__ = ["GetReport", "check_url", "download", "safe_relative_path"]

_log = logging.getLogger(__name__)
_CHUNK = 1 << 20
_TIMEOUT = 60.0


@attrs.frozen(kw_only=True)
class GetReport:
    """What ``get`` put where, and how much of it was verified by SHA-256."""

    target: Path
    files: int
    bytes: int
    verified: int
    unverified: int


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
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise SpecError(
            f"URL {redact_url(url)} contains spaces or control characters", what="description"
        )


def safe_relative_path(path: str) -> str:
    """``path`` if it is a relative POSIX path that stays inside its root, else an error."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise UnsafePathError(f"item path {path!r} is not a plain relative path; refusing it")
    return path


@contextmanager
def _open_url(url: str, timeout: float) -> Iterator[BinaryIO]:
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme == "file":
        try:
            with open(unquote(parts.path), "rb") as handle:
                yield handle
        except FileNotFoundError:
            raise DownloadError(f"{shown}: no such file") from None
        return
    import http.client  # only `get` over HTTP pays for http.client and ssl
    import urllib.error
    import urllib.request

    try:  # check_url admitted only file, http and https
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as exc:
        exc.close()
        raise DownloadError(f"GET {shown} failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DownloadError(f"GET {shown} failed: {exc.reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        # Their messages may quote the URL, query string included: name only the type.
        raise DownloadError(f"GET {shown} failed: {type(exc).__name__}") from None
    with response:
        yield response


def _fetch(item: DownloadItem, dest: Path, timeout: float) -> tuple[bool, int]:
    """Download ``item`` to ``dest`` and verify it.

    Returns whether SHA-256 was checked, and the number of bytes.
    """
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    shown = redact_url(item.url)
    _log.debug("fetching %s -> %s", shown, item.path)
    with _open_url(item.url, timeout) as source, open(dest, "xb") as out:
        while True:
            try:
                n = source.readinto(view)  # type: ignore[attr-defined]
            except OSError as exc:
                raise DownloadError(f"reading {shown} failed after {size} bytes: {exc}") from None
            if not n:
                break
            size += n
            if item.size is not None and size > item.size:
                raise IntegrityError(
                    f"{item.path}: more bytes than the recorded size {item.size}; refusing it"
                )
            digest.update(view[:n])
            out.write(view[:n])
    if item.size is not None and size != item.size:
        raise IntegrityError(f"{item.path}: got {size} bytes, the result recorded {item.size}")
    if item.checksum_sha256 is None:
        return False, size
    actual = sha256_b64(digest.digest())
    if actual != item.checksum_sha256:
        raise IntegrityError(
            f"{item.path}: SHA-256 is {actual}, the result recorded {item.checksum_sha256}; "
            "the stored bytes were changed or corrupted"
        )
    return True, size


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise TargetExistsError(f"{target} exists and is not a directory; choose another -o DIR")
    if target.is_dir() and any(target.iterdir()):
        raise TargetExistsError(f"{target} exists and is not empty; choose another -o DIR")


def download(
    description: ResultDescription,
    target: Path,
    *,
    workers: int = 8,
    timeout: float = _TIMEOUT,
    now: datetime | None = None,
) -> GetReport:
    """Rebuild the result of ``description`` in ``target``, verified, or change nothing.

    Raises :class:`TargetExistsError` for a non-empty target, :class:`IntegrityError` for
    bytes that do not match the record, :class:`UnsafePathError` for paths that would
    escape the target, and :class:`DownloadError` for anything else that failed.
    """
    target = Path(os.path.abspath(target))
    _check_target(target)
    now = now or datetime.now(timezone.utc)
    seen: set[str] = set()
    for item in description.items:
        check_url(item.url)
        if not item.archive:
            if item.path in seen:
                raise UnsafePathError(f"item path {item.path!r} appears twice; refusing it")
            seen.add(item.path)
        if item.expires is not None and item.expires <= now:
            raise DownloadError(
                f"the download URL for {item.path!r} expired at {item.expires.isoformat()}; "
                "run 'publisher describe' again for fresh URLs"
            )
        if not item.archive:
            safe_relative_path(item.path)
    for directory in description.directories:
        safe_relative_path(directory.rstrip("/"))

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.get-", dir=target.parent))
    _log.debug("get: %d items into %s via %s", len(description.items), target, staging)
    try:
        tree = staging / "tree"
        tree.mkdir()
        files = [i for i in description.items if not i.archive]
        archives = [i for i in description.items if i.archive]
        for directory in description.directories:
            (tree / directory).mkdir(parents=True, exist_ok=True)
        for item in files:
            (tree / item.path).parent.mkdir(parents=True, exist_ok=True)
        verified = unverified = total = 0
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for checked, size in pool.map(lambda i: _fetch(i, tree / i.path, timeout), files):
                verified, unverified = verified + checked, unverified + (not checked)
                total += size
        count = len(files)
        for index, item in enumerate(archives):
            local = staging / f"archive-{index}.tar.gz"
            checked, _ = _fetch(item, local, timeout)
            verified, unverified = verified + checked, unverified + (not checked)
            extracted_files, extracted_bytes = extract_archive(local, tree)
            local.unlink()
            count += extracted_files
            total += extracted_bytes
        _check_target(target)
        if target.exists():
            target.rmdir()
        os.rename(tree, target)
    except PublisherError:
        raise
    except OSError as exc:  # a file where a directory is needed, a full disk, ...
        where = f" ({exc.filename})" if exc.filename else ""
        raise DownloadError(f"rebuilding the result failed: {exc.strerror or exc}{where}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return GetReport(
        target=target, files=count, bytes=total, verified=verified, unverified=unverified
    )
