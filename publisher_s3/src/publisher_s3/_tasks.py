"""Running upload work: off the main thread, and in a bounded pool that stops at the first failure.

An interrupt (Ctrl-C, SIGTERM) is raised by Python in the main thread, wherever it is.
Work run by :func:`off_main_thread` is never there, so an interrupt never lands inside a
request (whose effect the clean-up would then not know) or inside ISA-L's compressor
queues (which it could leave waiting forever for a lost block).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["INTERRUPT_GRACE", "BoundedPool", "Stopped", "off_main_thread"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

INTERRUPT_GRACE = 5.0
"""Seconds an interrupted publish waits for its requests in flight before cleaning up."""


class Stopped(Exception):
    """Another task failed first; this one stops without an error of its own."""


def off_main_thread(work: Callable[[], T], stop: Callable[[], None], name: str) -> T:
    """Run ``work`` in a thread and wait for it; the result, or the first failure.

    An interrupt while waiting calls ``stop`` and waits up to ``INTERRUPT_GRACE``
    seconds for ``work`` to end (its requests in flight return, so what they created is
    in the clean-up log), then re-raises. The thread is a daemon: one stuck in a request
    past the grace period does not keep the process alive.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the waiting thread
            failure.append(exc)
        finally:
            done.set()

    # An Event, not Thread.join: on Python 3.11 an interrupt raised inside join() can
    # leave the thread marked as finished while it still runs; clean-up then raced the
    # request in flight (the signal test on Ceph left the archive in 1 run of 2).
    threading.Thread(target=target, name=name, daemon=True).start()
    try:
        while not done.wait(0.5):  # interruptible: a signal's exception is raised here
            pass
    except BaseException:
        stop()
        if not done.wait(INTERRUPT_GRACE):
            _log.debug("%s still has a request in flight; cleaning up anyway", name)
        raise
    if failure:
        raise failure[0]
    return outcome[0]


class BoundedPool:
    """A thread pool that blocks the producer once ``limit`` tasks are pending.

    The first failure is kept and ``stop`` is set, so producers and running tasks end
    early instead of uploading the rest of a result that will be removed anyway.
    """

    def __init__(self, workers: int, limit: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publisher-s3")
        self.slots = threading.BoundedSemaphore(limit)
        self.futures: list[Future[Any]] = []
        self.failure: BaseException | None = None
        self.stop = threading.Event()

    def _done(self, future: Future[Any]) -> None:
        if not future.cancelled():
            error = future.exception()
            if error is not None and not isinstance(error, Stopped) and self.failure is None:
                self.failure = error
                self.stop.set()
        self.slots.release()

    def submit(self, task: Callable[[], Any]) -> None:
        """Run ``task``, waiting for a free slot; re-raise an earlier task's failure first."""
        self.slots.acquire()
        if self.failure is not None or self.stop.is_set():
            self.slots.release()
            raise self.failure or Stopped()
        future = self.pool.submit(task)
        future.add_done_callback(self._done)
        self.futures.append(future)

    def fail(self, error: BaseException) -> None:
        """Record a failure from outside the pool (a helper process): stop the rest."""
        if self.failure is None:
            self.failure = error
        self.stop.set()

    def results(self) -> list[Any]:
        """Wait for every task; raise the first real failure."""
        for future in self.futures:
            future.exception()  # wait
        if self.failure is not None:
            raise self.failure
        return [f.result() for f in self.futures]

    def close(self, *, cancel: bool, timeout: float | None = None) -> None:
        """Shut down; with ``cancel`` drop queued tasks and tell running ones to stop.

        Waits for the tasks still running, at most ``timeout`` seconds if given.
        """
        if cancel:
            self.stop.set()
        self.pool.shutdown(wait=False, cancel_futures=cancel)
        concurrent.futures.wait(self.futures, timeout=timeout)
