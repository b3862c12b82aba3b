"""Downloading items into files, each checked against its record as its bytes arrive.

Every byte is counted against the result's :class:`~publisher_core._budget.Budget` before
it is written; no item is read more than one byte past its recorded size; at the end its
size and SHA-256 must match the record. An HTTP(S) item is tried again, from scratch, as
the :class:`~publisher_core.RetryPolicy` says, when another attempt may succeed: a failure
the transport calls transient (HTTP 429, 500, 502, 503 and 504, refused or reset
connections, timeouts, ...) or bytes that are cut short, too long or whose SHA-256 is
wrong. Other 4xx statuses (an expired URL's 403, a 404) fail at once; a ``file`` item is
read once. Many items are fetched at once; when one fails for good the others stop at
their next chunk.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import attrs

from ._budget import Budget
from ._checksums import sha256_b64
from ._errors import DownloadError, IntegrityError
from ._models import DownloadItem, redact_url
from ._retry import RetryPolicy
from ._transport import RUNTIME_MAX_SIZE, TransientError, Transport

__all__ = ["Cancelled", "fetch_item", "fetch_items"]

_log = logging.getLogger(__name__)
_CHUNK = 1 << 20


class Cancelled(Exception):
    """Another download failed (or get was interrupted): stop this one."""


class _Mismatch(TransientError):
    """Bytes that do not match the record: worth another attempt, an IntegrityError last."""


def _pause(seconds: float, cancel: threading.Event) -> None:
    """Wait ``seconds`` between attempts, or less once ``cancel`` is set (tests replace it)."""
    cancel.wait(seconds)


def _attempt(
    item: DownloadItem,
    out: BinaryIO,
    view: memoryview,
    transport: Transport,
    cancel: threading.Event,
    budget: Budget | None,
    first: bool,
) -> tuple[bool, int]:
    """One download of ``item`` into ``out``, verified; see :func:`fetch_item`.

    Never reads more than one byte past a recorded size, and counts every byte against
    ``budget`` before writing it. The ``first`` attempt of a small item may go through
    the AWS Common Runtime; every retry goes through urllib3.
    """
    digest = hashlib.sha256()
    size = 0
    small = item.size if first and item.size is not None and item.size <= RUNTIME_MAX_SIZE else None
    with transport.open(item.url, small=small) as source:
        while True:
            if cancel.is_set():
                raise Cancelled
            want = len(view) if item.size is None else min(len(view), item.size - size + 1)
            n = source.readinto(view[:want])
            if not n:
                break
            size += n
            if item.size is not None and size > item.size:
                raise _Mismatch(f"more bytes than the recorded size {item.size}; refusing it")
            if budget is not None:
                budget.take(n, item)
            digest.update(view[:n])
            out.write(view[:n])
        missing = source.length  # an HTTP body shorter than its header
    if missing:
        raise TransientError(f"the connection closed {missing} bytes short of the Content-Length")
    if item.size is not None and size != item.size:
        raise _Mismatch(f"got {size} bytes, the result recorded {item.size}")
    if item.checksum_sha256 is None:
        return False, size
    actual = sha256_b64(digest.digest())
    if actual != item.checksum_sha256:
        raise _Mismatch(
            f"SHA-256 is {actual}, the result recorded {item.checksum_sha256}; "
            "the stored bytes were changed or corrupted"
        )
    return True, size


def fetch_item(
    item: DownloadItem,
    dest: Path,
    *,
    transport: Transport,
    policy: RetryPolicy,
    cancel: threading.Event | None = None,
    budget: Budget | None = None,
) -> tuple[bool, int]:
    """Download ``item`` to the new file ``dest`` and verify it; (SHA-256 checked, bytes).

    An HTTP(S) item is tried as ``policy`` says, each time from scratch; a ``file`` item
    once. Raises :class:`IntegrityError` when the last attempt got bytes that do not match
    the record, :class:`DownloadError` for any other failure (going over ``budget``
    included, which is never retried), and :class:`Cancelled` once ``cancel`` is set.
    """
    cancel = cancel or threading.Event()
    shown = redact_url(item.url)
    local = urlsplit(item.url).scheme == "file"
    if local:
        policy = attrs.evolve(policy, attempts=1)
    tries = policy.attempts
    # A small file's buffer is its size and the byte that would say it is too long: a
    # megabyte zeroed for each of thousands of small files costs more than fetching them.
    view = memoryview(bytearray(_CHUNK if item.size is None else min(_CHUNK, item.size + 1)))
    _log.debug("fetching %s -> %s", shown, item.path)
    with open(dest, "xb") as out:

        def attempt(number: int) -> tuple[bool, int]:
            if number > 1:
                if budget is not None:
                    budget.give_back(out.tell())
                out.seek(0)
                out.truncate()
            try:
                return _attempt(item, out, view, transport, cancel, budget, number == 1)
            except DownloadError as exc:  # one that no retry fixes, e.g. HTTP 403 or 404
                if number == 1:
                    raise
                raise type(exc)(f"{exc} (on attempt {number} of {tries})") from None

        def retrying(failure: TransientError, failures: int, delay: float) -> None:
            _log.debug(
                "GET %s: %s; attempt %d of %d in %.2f s",
                shown,
                failure.reason,
                failures + 1,
                tries,
                delay,
            )

        def pause(seconds: float) -> None:
            _pause(seconds, cancel)
            if cancel.is_set():
                raise Cancelled

        try:
            return policy.run(
                attempt,
                retry_on=TransientError,
                retry_after=lambda failure: failure.retry_after,
                on_retry=retrying,
                sleep=pause,
            )
        except TransientError as failure:
            error = IntegrityError if isinstance(failure, _Mismatch) else DownloadError
            if local:
                where = item.path if error is IntegrityError else f"reading {shown} failed"
                raise error(f"{where}: {failure.reason}") from None
            plural = "s" if tries > 1 else ""
            raise error(
                f"GET {shown} failed after {tries} attempt{plural}: {failure.reason}"
            ) from None


def fetch_items(
    items: Sequence[DownloadItem],
    tree: Path,
    *,
    transport: Transport,
    policy: RetryPolicy,
    workers: int,
    budget: Budget,
) -> list[tuple[bool, int]]:
    """Fetch ``items`` to their paths below ``tree``, ``workers`` at once; as fetch_item.

    The first failure stops the others, and is the one raised.
    """
    cancel = threading.Event()

    def fetch(item: DownloadItem) -> tuple[bool, int]:
        try:
            return fetch_item(
                item,
                tree / item.path,
                transport=transport,
                policy=policy,
                cancel=cancel,
                budget=budget,
            )
        except BaseException:
            cancel.set()
            raise

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    futures = []
    try:
        futures = [pool.submit(fetch, item) for item in items]
        wait(futures, return_when=FIRST_EXCEPTION)
    except BaseException:  # Ctrl-C, SIGTERM: stop the downloads at their next chunk
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=cancel.is_set())
    for future in futures:  # the first real failure, not a download it cancelled
        error = None if future.cancelled() else future.exception()
        if error is not None and not isinstance(error, Cancelled):
            raise error
    return [future.result() for future in futures]
