"""The downloader behind ``publisher get``: fetch, verify, extract safely, then move in place.

Every item is fetched (``file``, ``http``, ``https``) into a staging directory beside the
target and checked against its recorded size and SHA-256 before anything is extracted.
Item paths (and archive members) must pass the result path rule of
:func:`~publisher_core._paths.path_problem`, the rule publish applies too. What is
downloaded counts, as it arrives, against one limit for the whole result (``max_bytes``,
by default the free space): an item without a recorded size cannot fill the disk, and no
item is read past its recorded size.
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

from . import _extract
from ._archive import sha256_b64
from ._errors import (
    DownloadError,
    IntegrityError,
    PublisherError,
    SpecError,
    TargetExistsError,
    UnsafePathError,
    quoted,
)
from ._extract import extract_archive, format_size
from ._models import DownloadItem, ResultDescription, redact_url
from ._paths import make_dirs, path_problem, shown_path

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
    """``path`` if it is a result path publish could have written, else an error.

    That is the rule of :func:`~publisher_core._paths.path_problem`: relative, inside its
    root, no backslash or control character, bounded in length and depth. Raises
    :class:`UnsafePathError` naming the path and the reason.
    """
    problem = path_problem(path)
    if problem is not None:
        raise UnsafePathError(f"item path {shown_path(path)}: {problem}; refusing it")
    return path


def _sizes(size: int, limit: int) -> tuple[str, str]:
    """``size`` and ``limit`` for people, in bytes when they would read alike."""
    shown, limit_shown = format_size(size), format_size(limit)
    if shown == limit_shown:
        return f"{size} bytes", f"{limit} bytes"
    return shown, limit_shown


class _Budget:
    """The bytes one ``get`` may still write, shared by every download as bytes arrive.

    ``limit`` is ``max_bytes`` or the free space; ``note`` says which, for the error. A
    compressed archive may go over it by tar's allowance (an archive of many small or
    empty files is larger than its content); once extracted it counts its content instead.
    """

    def __init__(self, limit: int, note: str) -> None:
        self.limit = limit
        self.note = note
        self.used = 0
        self._lock = threading.Lock()

    def take(self, count: int, item: DownloadItem) -> None:
        """Count ``count`` more bytes of ``item``, or refuse them if over the limit."""
        slack = _extract._TAR_SLACK if item.archive else 0
        with self._lock:
            if self.used + count > self.limit + slack:
                overhead = f" plus {format_size(slack)} for tar's overhead" if slack else ""
                raise DownloadError(
                    f"downloading {quoted(item.path)} went over the limit of "
                    f"{format_size(self.limit)} for the whole result ({self.note}){overhead}; "
                    "refusing it"
                )
            self.used += count

    def give_back(self, count: int) -> None:
        """Forget ``count`` bytes: a failed attempt's, or an archive's once extracted."""
        with self._lock:
            self.used -= count


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
    item: DownloadItem,
    out: BinaryIO,
    view: memoryview,
    timeout: float,
    cancel: threading.Event,
    budget: _Budget | None,
) -> tuple[bool, int]:
    """One download of ``item`` into ``out``, verified; see :func:`_fetch`.

    Never reads more than one byte past a recorded size, and counts every byte against
    ``budget`` before writing it.
    """
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
            want = len(view) if item.size is None else min(len(view), item.size - size + 1)
            try:
                n = source.readinto(view[:want])  # type: ignore[attr-defined]
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
            if budget is not None:
                budget.take(n, item)
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
    budget: _Budget | None = None,
) -> tuple[bool, int]:
    """Download ``item`` to ``dest`` and verify it; return (SHA-256 checked, bytes).

    An HTTP(S) item is tried up to ``attempts`` times, each time from scratch; a ``file``
    item once. Raises :class:`IntegrityError` when the last attempt got bytes that do not
    match the record and :class:`DownloadError` for any other failure, going over
    ``budget`` included (which is never retried).
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
                if budget is not None:
                    budget.give_back(out.tell())
                out.seek(0)
                out.truncate()
            try:
                return _attempt(item, out, view, timeout, cancel, budget)
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
    files: list[DownloadItem],
    tree: Path,
    workers: int,
    timeout: float,
    attempts: int,
    budget: _Budget,
) -> list[tuple[bool, int]]:
    """Fetch ``files`` into ``tree`` concurrently; the first failure stops the others."""
    cancel = threading.Event()

    def fetch(item: DownloadItem) -> tuple[bool, int]:
        try:
            return _fetch(
                item,
                tree / item.path,
                timeout=timeout,
                attempts=attempts,
                cancel=cancel,
                budget=budget,
            )
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
    limits what the result may take, in all: the bytes of every item as they arrive (an
    archive's until it is extracted), and the content extracted from archives, declared
    and actually decompressed; by default it is the free space of the file system that
    holds the target.

    Raises :class:`TargetExistsError` for a non-empty target, :class:`IntegrityError` for
    bytes that do not match the record (after the last attempt), :class:`UnsafePathError`
    for paths that would escape the target or that publish would refuse, and
    :class:`DownloadError` for anything else that failed, a result over ``max_bytes`` or an
    archive with a corrupt gzip trailer included. ``ValueError`` for ``timeout``,
    ``attempts`` or ``max_bytes`` out of range.
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
    _check_items(description, now)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.get-", dir=target.parent))
    _log.debug("get: %d items into %s via %s", len(description.items), target, staging)
    try:
        if max_bytes is None:
            free = f"the free space beside {target}; see publisher get --max-size"
            budget = _Budget(shutil.disk_usage(staging).free, free)
        else:
            budget = _Budget(max_bytes, "publisher get --max-size")
        files = [i for i in description.items if not i.archive]
        archives = [i for i in description.items if i.archive]
        _check_declared(files, budget)
        tree = staging / "tree"
        tree.mkdir()
        for directory in description.directories:
            make_dirs(tree, directory.rstrip("/"))
        for item in files:
            make_dirs(tree, item.path.rpartition("/")[0])
        verified = unverified = total = 0
        for checked, size in _fetch_all(files, tree, workers, timeout, attempts, budget):
            verified, unverified = verified + checked, unverified + (not checked)
            total += size
        count = len(files)
        for index, item in enumerate(archives):
            local = staging / f"archive-{index}.tar.gz"
            checked, fetched = _fetch(
                item, local, timeout=timeout, attempts=attempts, budget=budget
            )
            verified, unverified = verified + checked, unverified + (not checked)
            if max_bytes is None:
                limit = shutil.disk_usage(staging).free
                note = budget.note
            else:
                limit = max(0, max_bytes - (budget.used - fetched))
                note = budget.note
                if budget.used > fetched:
                    note += f", less {format_size(budget.used - fetched)} already downloaded"
            extracted_files, extracted_bytes = extract_archive(
                local, tree, max_bytes=limit, limit_note=note
            )
            local.unlink()
            budget.give_back(fetched - extracted_bytes)
            count += extracted_files
            total += extracted_bytes
        _check_target(target)
        if target.exists():
            target.rmdir()
        os.rename(tree, target)
    except PublisherError:
        raise
    except OSError as exc:  # a full disk, a target's path over the system's limit, ...
        where = f" ({exc.filename})" if exc.filename else ""
        raise DownloadError(f"rebuilding the result failed: {exc.strerror or exc}{where}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return GetReport(
        target=target, files=count, bytes=total, verified=verified, unverified=unverified
    )


def _check_items(description: ResultDescription, now: datetime) -> None:
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


def _check_declared(files: list[DownloadItem], budget: _Budget) -> None:
    """Refuse files whose recorded sizes alone take the result over ``budget``."""
    declared = 0
    for item in files:
        declared += item.size or 0
        if declared > budget.limit:
            size, limit = _sizes(declared, budget.limit)
            raise DownloadError(
                f"the items record {size} in all (up to {quoted(item.path)}), over the "
                f"limit of {limit} ({budget.note}); refusing the result"
            )
