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
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import urlsplit

import attrs

from ._budget import Budget
from ._checksums import sha256_b64
from ._crt import RUNTIME_MAX_SIZE, HostUnsuited, RuntimeFiles, TooLong, Unsuited
from ._errors import DownloadError, IntegrityError
from ._models import DownloadItem, redact_url
from ._retry import RetryPolicy
from ._transport import TransientError, Transport

__all__ = ["RUNTIME_PER_WORKER", "Cancelled", "fetch_item", "fetch_items"]

_log = logging.getLogger(__name__)
_CHUNK = 1 << 20
RUNTIME_PER_WORKER: Final = 4
"""Requests the runtime keeps in flight per worker thread of urllib3's (its cost no thread).

Against the null sink at 20 ms per request, 20,000 small files took 10.5 s with 64 in
flight, 7.7 s with 128 and 6.3 s with 256 (rclone copy, 64 transfers: 9.0 s); without
latency, as long with 64 or 256 (docs/performance.md)."""
_POLL = 0.5  # seconds between looks at the cancel flag while the runtime's requests run
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class Cancelled(Exception):
    """Another download failed (or get was interrupted): stop this one."""


class _Mismatch(TransientError):
    """Bytes that do not match the record: worth another attempt, an IntegrityError last."""


def _pause(seconds: float, cancel: threading.Event) -> None:
    """Wait ``seconds`` between attempts, or less once ``cancel`` is set (tests replace it)."""
    cancel.wait(seconds)


def _verdict(item: DownloadItem, size: int, digest: bytes) -> bool:
    """Whether the SHA-256 was checked; raises :class:`_Mismatch` for bytes off the record."""
    if item.size is not None and size != item.size:
        if size > item.size:
            raise _Mismatch(f"more bytes than the recorded size {item.size}; refusing it")
        raise _Mismatch(f"got {size} bytes, the result recorded {item.size}")
    if item.checksum_sha256 is None:
        return False
    actual = sha256_b64(digest)
    if actual != item.checksum_sha256:
        raise _Mismatch(
            f"SHA-256 is {actual}, the result recorded {item.checksum_sha256}; "
            "the stored bytes were changed or corrupted"
        )
    return True


def _attempt(
    item: DownloadItem,
    out: BinaryIO,
    view: memoryview,
    transport: Transport,
    cancel: threading.Event,
    budget: Budget | None,
) -> tuple[bool, int]:
    """One download of ``item`` into ``out``, verified; see :func:`fetch_item`.

    Never reads more than one byte past a recorded size, and counts every byte against
    ``budget`` before writing it.
    """
    digest = hashlib.sha256()
    size = 0
    with transport.open(item.url) as source:
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
    return _verdict(item, size, digest.digest()), size


def _check_file(item: DownloadItem, path: Path) -> tuple[bool, int]:
    """(SHA-256 checked, bytes) of the file the runtime wrote for ``item``; or _Mismatch."""
    size = item.size or 0
    with open(path, "rb") as written:
        data = written.read(size + 2)  # at most size + 1 (the range asked for)
    return _verdict(item, len(data), hashlib.sha256(data).digest()), len(data)


def fetch_item(
    item: DownloadItem,
    dest: Path,
    *,
    transport: Transport,
    policy: RetryPolicy,
    cancel: threading.Event | None = None,
    budget: Budget | None = None,
    failed: TransientError | None = None,
) -> tuple[bool, int]:
    """Download ``item`` to the new file ``dest`` and verify it; (SHA-256 checked, bytes).

    An HTTP(S) item is tried as ``policy`` says, each time from scratch; a ``file`` item
    once. ``failed``: the first attempt was made elsewhere (by the runtime) and failed
    so; it counts as attempt 1, and the next one follows the policy's pause.

    Raises :class:`IntegrityError` when the last attempt got bytes that do not match
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
                if number == 1 and failed is not None:
                    raise failed
                return _attempt(item, out, view, transport, cancel, budget)
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

    Small items the runtime may carry (:meth:`Transport.runtime_for`) are started from
    this thread, ``workers`` times :data:`RUNTIME_PER_WORKER` in flight, their bodies
    written to their files by the runtime and checked here; the rest, and every item
    whose runtime attempt failed (from its second attempt on, or from its first when
    nothing was sent), go to ``workers`` threads over urllib3. The first failure stops
    the others, and is the one raised.
    """
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    futures: dict[int, Future[tuple[bool, int]]] = {}
    done: dict[int, tuple[bool, int]] = {}

    def fetch(item: DownloadItem, failed: TransientError | None) -> tuple[bool, int]:
        try:
            return fetch_item(
                item,
                tree / item.path,
                transport=transport,
                policy=policy,
                cancel=cancel,
                budget=budget,
                failed=failed,
            )
        except BaseException:
            cancel.set()
            raise

    def hand_over(number: int, failed: TransientError | None = None) -> Future[tuple[bool, int]]:
        futures[number] = pool.submit(fetch, items[number], failed)
        return futures[number]

    try:
        _run_small(items, tree, transport, workers, budget, cancel, done, hand_over)
        wait(futures.values(), return_when=FIRST_EXCEPTION)
    except BaseException:  # a final failure, Ctrl-C, SIGTERM: stop the rest at their next chunk
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=cancel.is_set())
    for future in futures.values():  # the first real failure, not a download it cancelled
        error = None if future.cancelled() else future.exception()
        if error is not None and not isinstance(error, Cancelled):
            raise error
    return [done[n] if n in done else futures[n].result() for n in range(len(items))]


def _suits_runtime(item: DownloadItem) -> bool:
    return item.size is not None and 0 < item.size <= RUNTIME_MAX_SIZE


def _run_small(
    items: Sequence[DownloadItem],
    tree: Path,
    transport: Transport,
    workers: int,
    budget: Budget,
    cancel: threading.Event,
    done: dict[int, tuple[bool, int]],
    hand_over: Callable[..., Future[tuple[bool, int]]],
) -> None:
    """Start every item the runtime may carry, check what it wrote; hand over the rest.

    Each such item's recorded size is taken from ``budget`` before its request is sent
    (the runtime writes at most one byte more), and its file is created here, new
    (``O_EXCL``), before the runtime writes into it. Returns once none is in flight.
    """
    runtime: RuntimeFiles | None = None

    def settle(ended: list[tuple[int, BaseException | None]]) -> None:
        for number, failure in ended:
            item = items[number]
            path = tree / item.path
            if failure is None:
                try:
                    done[number] = _check_file(item, path)
                    continue
                except _Mismatch as mismatch:
                    failure = mismatch
            elif isinstance(failure, TooLong):
                failure = _Mismatch(f"more bytes than the recorded size {item.size}; refusing it")
            budget.give_back(item.size or 0)
            path.unlink()
            if isinstance(failure, HostUnsuited):
                transport.avoid(urlsplit(item.url))
                hand_over(number)
            elif isinstance(failure, Unsuited):
                hand_over(number)
            elif isinstance(failure, TransientError):
                hand_over(number, failure)
            else:
                raise failure

    try:
        for number, item in enumerate(items):
            if cancel.is_set():
                return
            parts = urlsplit(item.url)
            carrier = transport.runtime_for(parts) if _suits_runtime(item) else None
            if carrier is None:
                handed = hand_over(number)
                if _suits_runtime(item) and transport.awaits_tls(parts):
                    wait([handed])  # urllib3 verifies the host first; then the runtime goes
                continue
            runtime = carrier
            while len(runtime) >= workers * RUNTIME_PER_WORKER and not cancel.is_set():
                settle(runtime.collect(wait=_POLL))
            path = tree / item.path
            budget.take(item.size or 0, item)
            os.close(os.open(path, _NEW_FILE, 0o666))
            runtime.start(number, item.url, parts, str(path), item.size or 0)
            settle(runtime.collect())
        while runtime is not None and len(runtime) and not cancel.is_set():
            settle(runtime.collect(wait=_POLL))
    finally:
        if runtime is not None:
            runtime.abandon()
