"""The downloader behind ``publisher get``: fetch, verify, extract safely, then move in place.

Every item is fetched (``file``, ``http``, ``https``) into a staging directory beside the
target and checked against its recorded size and SHA-256 before anything is extracted.
Archives are extracted by ``extract_archive`` (no absolute paths, no ``..``, no links
leading out, no devices). Only a tree that fully checked out is renamed to the
target; on any failure the staging directory is removed and the target is untouched.

HTTP(S) downloads are retried, from scratch, when another attempt may succeed: HTTP 429,
500, 502, 503 and 504, refused or reset connections, timeouts, and bodies that are cut
short, too long or whose SHA-256 is wrong. Waits grow exponentially with full jitter, or
follow the server's ``Retry-After``. Other 4xx statuses (an expired URL's 403, a 404) fail
at once. When one file fails for good the others stop at their next chunk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
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
from ._extract import extract_archive, format_size
from ._models import DownloadItem, ResultDescription, redact_url

__all__ = ["GetReport", "check_url", "download", "parse_size", "safe_relative_path"]

_log = logging.getLogger(__name__)
_CHUNK = 1 << 20
DEFAULT_TIMEOUT = 60.0
"""Seconds ``get`` waits on a silent connection or read before the attempt fails."""
DEFAULT_ATTEMPTS = 5
"""Tries per HTTP(S) download."""
# Full-jitter exponential backoff: before attempt n+1, a uniform wait in
# [0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**(n-1))] seconds, or Retry-After (capped).
_BACKOFF_BASE = 0.25
_BACKOFF_CAP = 20.0
_RETRY_AFTER_CAP = 20.0
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_SIZE_UNITS = {
    **{"": 0, "b": 0, "k": 1, "kib": 1, "m": 2, "mib": 2},
    **{"g": 3, "gib": 3, "t": 4, "tib": 4},
}
_SIZE = re.compile(r"\s*(\d*)(?:\.(\d*))?\s*([a-z]*)\s*", re.IGNORECASE | re.ASCII)


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


def parse_size(text: str) -> int:
    """Bytes from a size such as ``1048576``, ``500M``, ``1.5G`` or ``2 TiB``.

    A number of bytes, or a number with a binary suffix K, M, G or T (also KiB, MiB, GiB,
    TiB; any case; 1K = 1024). Fractions are rounded down to whole bytes. Raises
    :class:`ValueError` naming ``text`` and the accepted forms.
    """
    match = _SIZE.fullmatch(text)
    unit = _SIZE_UNITS.get(match.group(3).lower()) if match else None
    if match is None or unit is None or not (match.group(1) or match.group(2)):
        raise ValueError(
            f"{text!r} is not a size: expected a number of bytes, or a number with a binary "
            "suffix K, M, G or T (or KiB, MiB, GiB, TiB; any case), e.g. 500M or 1.5G"
        )
    whole, fraction = match.group(1) or "0", match.group(2) or ""
    if len(whole) + len(fraction) > 30:
        raise ValueError(f"{text!r} is not a size: more than 30 digits")
    scale = int(10 ** len(fraction))
    return (int(whole) * scale + int(fraction or "0")) * int(1024**unit) // scale


class _Transient(Exception):
    """A failure another attempt may fix: what went wrong, safe to show."""

    def __init__(
        self, reason: str, *, integrity: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.integrity = integrity
        self.retry_after = retry_after


class _Cancelled(Exception):
    """Another download failed (or get was interrupted): stop this one."""


def _pause(seconds: float, cancel: threading.Event) -> None:
    """Wait ``seconds`` between attempts, or less once ``cancel`` is set (tests replace it)."""
    cancel.wait(seconds)


def _backoff(attempt: int) -> float:
    """The wait after failed attempt ``attempt`` (1, 2, ...): exponential, full jitter."""
    ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (capped), None if absent or an HTTP date."""
    value = (value or "").strip()
    if not value.isascii() or not value.isdigit():
        return None
    return min(float(value), _RETRY_AFTER_CAP)


def _safe_text(text: str, url: str) -> str | None:
    """``text`` unless it may quote ``url``'s query string or user info."""
    parts = urlsplit(url)
    secrets = [parts.query, parts.username or "", parts.password or ""]
    return None if any(s and s in text for s in secrets) else text


def _network_error(exc: BaseException, url: str, timeout: float) -> _Transient | str:
    """What an exception from urllib or http.client means: retryable or a final reason.

    Never quotes the exception's own message, which may contain the URL.
    """
    import http.client

    if isinstance(exc, TimeoutError):
        return _Transient(f"timed out after {timeout:g} s")
    if isinstance(exc, http.client.RemoteDisconnected):
        return _Transient("the server closed the connection without a response")
    if isinstance(exc, ConnectionError):
        return _Transient(_safe_text(exc.strerror or "", url) or type(exc).__name__)
    if isinstance(exc, socket.gaierror):
        reason = _safe_text(exc.strerror or "", url) or "name resolution failed"
        return _Transient(reason) if exc.errno == socket.EAI_AGAIN else reason
    if isinstance(exc, http.client.IncompleteRead):
        return _Transient(f"the connection closed after {len(exc.partial)} bytes of the body")
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, http.client.InvalidURL):
        return _Transient(f"malformed HTTP response ({type(exc).__name__})")
    if isinstance(exc, OSError) and exc.strerror:
        return _safe_text(exc.strerror, url) or type(exc).__name__
    return type(exc).__name__


@contextmanager
def _open_url(url: str, timeout: float) -> Iterator[BinaryIO]:
    """The body of ``url``; raises :class:`_Transient` for what a retry may fix."""
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
        try:
            reason = f"HTTP {exc.code} {_safe_text(str(exc.reason), url) or ''}".rstrip()
            if exc.code in _RETRY_STATUSES:
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
                raise _Transient(reason, retry_after=retry_after) from None
        finally:
            exc.close()
        raise DownloadError(f"GET {shown} failed: {reason}") from None
    except urllib.error.URLError as exc:
        cause: BaseException | str = exc.reason
        if isinstance(cause, str):
            cause = _safe_text(cause, url) or "URLError"
        outcome = cause if isinstance(cause, str) else _network_error(cause, url, timeout)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        outcome = _network_error(exc, url, timeout)
    else:
        with response:
            yield response
        return
    if isinstance(outcome, _Transient):
        raise outcome
    raise DownloadError(f"GET {shown} failed: {outcome}")


def _attempt(
    item: DownloadItem, out: BinaryIO, view: memoryview, timeout: float, cancel: threading.Event
) -> tuple[bool, int]:
    """One download of ``item`` into ``out``, verified; see :func:`_fetch`."""
    digest = hashlib.sha256()
    size = 0
    read_errors: tuple[type[Exception], ...] = (OSError,)
    if urlsplit(item.url).scheme != "file":
        import http.client

        read_errors = (OSError, http.client.HTTPException)
    with _open_url(item.url, timeout) as source:
        while True:
            if cancel.is_set():
                raise _Cancelled
            try:
                n = source.readinto(view)  # type: ignore[attr-defined]
            except read_errors as exc:  # any of them, mid-body, is worth another attempt
                outcome = _network_error(exc, item.url, timeout)
                why = outcome.reason if isinstance(outcome, _Transient) else outcome
                raise _Transient(f"{why} while reading the body") from None
            if not n:
                break
            size += n
            if item.size is not None and size > item.size:
                raise _Transient(
                    f"more bytes than the recorded size {item.size}; refusing it", integrity=True
                )
            digest.update(view[:n])
            out.write(view[:n])
        missing = getattr(source, "length", None)  # an HTTP body shorter than its header
    if missing:
        raise _Transient(f"the connection closed {missing} bytes short of the Content-Length")
    if item.size is not None and size != item.size:
        raise _Transient(f"got {size} bytes, the result recorded {item.size}", integrity=True)
    if item.checksum_sha256 is None:
        return False, size
    actual = sha256_b64(digest.digest())
    if actual != item.checksum_sha256:
        raise _Transient(
            f"SHA-256 is {actual}, the result recorded {item.checksum_sha256}; "
            "the stored bytes were changed or corrupted",
            integrity=True,
        )
    return True, size


def _fetch(
    item: DownloadItem,
    dest: Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    attempts: int = DEFAULT_ATTEMPTS,
    cancel: threading.Event | None = None,
) -> tuple[bool, int]:
    """Download ``item`` to ``dest`` and verify it; return (SHA-256 checked, bytes).

    An HTTP(S) item is tried up to ``attempts`` times, each time from scratch; a ``file``
    item once. Raises :class:`IntegrityError` when the last attempt got bytes that do not
    match the record and :class:`DownloadError` for any other failure.
    """
    cancel = cancel or threading.Event()
    shown = redact_url(item.url)
    local = urlsplit(item.url).scheme == "file"
    tries = 1 if local else max(1, attempts)
    view = memoryview(bytearray(_CHUNK))
    _log.debug("fetching %s -> %s", shown, item.path)
    with open(dest, "xb") as out:
        for attempt in range(1, tries + 1):
            if attempt > 1:
                out.seek(0)
                out.truncate()
            try:
                return _attempt(item, out, view, timeout, cancel)
            except DownloadError as exc:  # one that no retry fixes, e.g. HTTP 403 or 404
                if attempt == 1:
                    raise
                raise type(exc)(f"{exc} (on attempt {attempt} of {tries})") from None
            except _Transient as failure:
                error = IntegrityError if failure.integrity else DownloadError
                if local:
                    where = item.path if failure.integrity else f"reading {shown} failed"
                    raise error(f"{where}: {failure.reason}") from None
                if attempt == tries:
                    plural = "s" if tries > 1 else ""
                    raise error(
                        f"GET {shown} failed after {tries} attempt{plural}: {failure.reason}"
                    ) from None
                delay = failure.retry_after
                delay = _backoff(attempt) if delay is None else delay
                _log.debug(
                    "GET %s: %s; attempt %d of %d in %.2f s",
                    shown,
                    failure.reason,
                    attempt + 1,
                    tries,
                    delay,
                )
                _pause(delay, cancel)
                if cancel.is_set():
                    raise _Cancelled from None
    raise AssertionError("unreachable")


def _fetch_all(
    files: list[DownloadItem], tree: Path, workers: int, timeout: float, attempts: int
) -> list[tuple[bool, int]]:
    """Fetch ``files`` into ``tree`` concurrently; the first failure stops the others."""
    cancel = threading.Event()

    def fetch(item: DownloadItem) -> tuple[bool, int]:
        try:
            return _fetch(item, tree / item.path, timeout=timeout, attempts=attempts, cancel=cancel)
        except BaseException:
            cancel.set()
            raise

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    futures = []
    try:
        futures = [pool.submit(fetch, item) for item in files]
        wait(futures, return_when=FIRST_EXCEPTION)
    except BaseException:  # Ctrl-C, SIGTERM: stop the downloads at their next chunk
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=cancel.is_set())
    for future in futures:  # the first real failure, not a download it cancelled
        error = None if future.cancelled() else future.exception()
        if error is not None and not isinstance(error, _Cancelled):
            raise error
    return [future.result() for future in futures]


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
    timeout: float = DEFAULT_TIMEOUT,
    attempts: int = DEFAULT_ATTEMPTS,
    max_bytes: int | None = None,
    now: datetime | None = None,
) -> GetReport:
    """Rebuild the result of ``description`` in ``target``, verified, or change nothing.

    ``timeout`` (seconds) bounds each connection and each read. An HTTP(S) item is tried
    up to ``attempts`` times (see the module's notes on what is retried). ``max_bytes``
    limits the content extracted from archives, declared and actually decompressed, in
    all; by default it is the free space of the file system that holds the target.

    Raises :class:`TargetExistsError` for a non-empty target, :class:`IntegrityError` for
    bytes that do not match the record (after the last attempt), :class:`UnsafePathError`
    for paths that would escape the target, and :class:`DownloadError` for anything else
    that failed, an archive over ``max_bytes`` or with a corrupt gzip trailer included.
    ``ValueError`` for ``timeout``, ``attempts`` or ``max_bytes`` out of range.
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be more than 0 seconds, not {timeout}")
    if attempts < 1:
        raise ValueError(f"attempts must be 1 or more, not {attempts}")
    if max_bytes is not None and max_bytes < 0:
        raise ValueError(f"max_bytes must be 0 or more, not {max_bytes}")
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
        for checked, size in _fetch_all(files, tree, workers, timeout, attempts):
            verified, unverified = verified + checked, unverified + (not checked)
            total += size
        count = len(files)
        extracted = 0
        for index, item in enumerate(archives):
            local = staging / f"archive-{index}.tar.gz"
            checked, _ = _fetch(item, local, timeout=timeout, attempts=attempts)
            verified, unverified = verified + checked, unverified + (not checked)
            if max_bytes is None:
                limit = shutil.disk_usage(staging).free
                note = f"the free space beside {target}; see publisher get --max-size"
            else:
                limit = max(0, max_bytes - extracted)
                note = "publisher get --max-size"
                if extracted:
                    note += f", less {format_size(extracted)} from earlier archives"
            extracted_files, extracted_bytes = extract_archive(
                local, tree, max_bytes=limit, limit_note=note
            )
            local.unlink()
            count += extracted_files
            extracted += extracted_bytes
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
