"""Small downloads written straight to files by the AWS Common Runtime, for ``get``.

urllib3 and http.client spend about half a millisecond of CPU, under the interpreter lock,
on every request, and a thread that waits for each reply hands the lock around on every
chunk; for a directory of 20,000 small files that is most of what ``get`` does. The
runtime's S3 client (``awscrt.s3.S3Client``, the engine behind ``boto3[crt]``) sends the
request, parses the reply and writes the body to its file in C, on its own event-loop
threads: Python only starts each request and hears once that it ended. One thread drives
:class:`RuntimeFiles`, with many requests in flight (:func:`._fetch.fetch_items`).
Connections are kept open per host and reused. The URLs are pre-signed: nothing is
signed here, and the runtime retries nothing (the retry policy of ``get`` does).

Each request asks for ``Range: bytes=0-SIZE``, one byte past the recorded size: the
runtime sizes its buffer for that range and refuses a longer reply, so it never holds or
writes more than ``SIZE + 1`` bytes, and a too-long object shows as a file one byte too
long. Only what suits it comes here: an ``http`` or ``https`` download whose recorded size
is at least 1 byte (an empty object has no byte 0) and at most :data:`RUNTIME_MAX_SIZE`,
when no proxy applies (the runtime reads no ``*_proxy`` variable) and, for ``https``, once
the host has answered urllib3 over a connection the standard library verified.

How a request ended (:meth:`RuntimeFiles.collect`):

- ``None``: a 2xx reply, its body in the file (the caller checks size and SHA-256);
- :class:`Unsuited`: a redirect, for urllib3 to follow; :class:`HostUnsuited`: no
  connection could be made, or the host ignores ``Range`` (that host's requests stay
  with urllib3). Nothing was kept, so urllib3 makes the same attempt;
- :class:`._retry.TransientError`: what another attempt may fix (429, 5xx, throttling, a
  broken connection, a reply silent past the timeout; :class:`TooLong`, a body past the
  range);
- :class:`DownloadError`: the rest (403, 404, ...), named by the status's reason phrase.
"""

from __future__ import annotations

import http.client
import os
import queue
import time
from collections import deque
from typing import Any, Final
from urllib.parse import SplitResult

from ._errors import DownloadError
from ._models import redact_url
from ._retry import RETRY_STATUSES, TransientError, retry_after_seconds

__all__ = [
    "CONNECT_WAIT",
    "RUNTIME_MAX_SIZE",
    "THROUGHPUT_TARGET_GBPS",
    "HostUnsuited",
    "RuntimeFiles",
    "TooLong",
    "Unsuited",
    "event_loop_threads",
]

RUNTIME_MAX_SIZE: Final = 1 << 20
"""Downloads of up to this many bytes (recorded) may go through the runtime."""

CONNECT_WAIT: Final = 10.0
"""Seconds at most to wait for the runtime's connection (see :class:`HostUnsuited`)."""

THROUGHPUT_TARGET_GBPS: Final = 100.0
"""The runtime's throughput target, from which it sizes its connection pool.

At its default (10 Gbps) the pool, not the requests in flight, bounded 20,000 small
uploads (docs/performance.md)."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# The runtime's names for failing to reach a host at all (nothing was sent), and for a
# host that is no S3: one that ignores Range (its 200 has no Content-Range) or sends no ETag.
_HOST_UNSUITED = frozenset(
    {
        "AWS_ERROR_S3_MISSING_CONTENT_RANGE_HEADER",
        "AWS_ERROR_S3_MISSING_ETAG",
        "AWS_ERROR_S3_INVALID_CONTENT_RANGE_HEADER",
        "AWS_IO_SOCKET_CONNECTION_REFUSED",
        "AWS_IO_SOCKET_TIMEOUT",
        "AWS_IO_SOCKET_NO_ROUTE_TO_HOST",
        "AWS_IO_SOCKET_NETWORK_DOWN",
        "AWS_IO_DNS_INVALID_NAME",
        "AWS_IO_DNS_QUERY_FAILED",
        "AWS_IO_DNS_NO_ADDRESS_FOR_HOST",
    }
)


def event_loop_threads() -> int:
    """Threads for the runtime's event loops: one per two CPUs, at least one.

    Every request calls back into Python (headers, progress, completion) on an event-loop
    thread, which waits for the interpreter lock while the reading thread holds it. On two
    CPUs one loop thread published 20,000 small files 6-8% faster than the runtime's
    default of one per CPU, and four or eight were 20% slower (docs/performance.md).
    """
    return max(1, (os.cpu_count() or 2) // 2)


class Unsuited(Exception):
    """Not for the runtime (a redirect): urllib3 makes this attempt."""


class HostUnsuited(Unsuited):
    """The runtime cannot serve this host: urllib3 makes this attempt and the host's rest.

    Either no connection could be made (nothing was sent), or the host answers unlike S3:
    it ignored ``Range`` (no ``Content-Range``) or sent no ``ETag``; the runtime kept none
    of that reply. A TLS certificate
    the runtime does not trust can leave its connection hanging until the wait runs out
    instead of failing (awscrt 0.38), so the wait is short, and https hosts come here
    only once urllib3 has been answered by them.
    """


class TooLong(TransientError):
    """The reply ran past the range asked for (the recorded size and one byte): refused."""


def _trust_store(options: Any) -> None:
    """``SSL_CERT_FILE``/``SSL_CERT_DIR`` replace the system's CAs, as in the stdlib."""
    ca_file = os.environ.get("SSL_CERT_FILE") or None
    ca_dir = os.environ.get("SSL_CERT_DIR") or None
    if ca_file or ca_dir:
        options.override_default_trust_store_from_path(ca_dirpath=ca_dir, ca_filepath=ca_file)


class RuntimeFiles:
    """GETs into files, many in flight, started and collected by one thread.

    :meth:`start` sends a request and returns at once; :meth:`collect` returns how the
    finished ones ended, cancelling any whose reply has not ended ``timeout`` seconds
    after it was sent (bodies here are at most :data:`RUNTIME_MAX_SIZE`). :meth:`close`
    cancels what is still in flight and waits until the runtime has let go of every
    file. Raises ImportError when ``awscrt`` is not installed.
    """

    def __init__(self, *, timeout: float) -> None:
        from awscrt import http as crt_http
        from awscrt import io as crt_io
        from awscrt import s3 as crt_s3

        self._http, self._io, self._s3 = crt_http, crt_io, crt_s3
        self.timeout = timeout
        self._loops = crt_io.EventLoopGroup(event_loop_threads())
        self._bootstrap = crt_io.ClientBootstrap(
            self._loops, crt_io.DefaultHostResolver(self._loops)
        )
        self._clients: dict[str, Any] = {}
        self._finished: queue.SimpleQueue[tuple[int, Any, int | None, list[Any] | None]] = (
            queue.SimpleQueue()
        )
        self._live: dict[int, Any] = {}  # number -> the runtime's request, kept referenced
        self._urls: dict[int, str] = {}
        self._order: deque[tuple[float, int]] = deque()  # (deadline, number), in start order
        self._late: set[int] = set()  # cancelled for silence

    def __repr__(self) -> str:
        return f"RuntimeFiles(timeout={self.timeout:g}, in_flight={len(self._live)})"

    def __len__(self) -> int:
        """Requests started and not yet collected."""
        return len(self._live)

    def _client(self, scheme: str) -> Any:
        """The runtime's S3 client for ``scheme`` (TLS on or off), made once."""
        client = self._clients.get(scheme)
        if client is None:
            s3 = self._s3
            tls = None
            if scheme == "https":
                options = self._io.TlsContextOptions()
                _trust_store(options)
                tls = self._io.ClientTlsContext(options).new_connection_options()
            client = s3.S3Client(
                bootstrap=self._bootstrap,
                region="us-east-1",  # nothing is signed: the region is not used
                tls_mode=s3.S3RequestTlsMode.ENABLED if tls else s3.S3RequestTlsMode.DISABLED,
                tls_connection_options=tls,
                throughput_target_gbps=THROUGHPUT_TARGET_GBPS,
                retry_config=s3.S3RetryConfig(retry_mode=s3.S3RetryMode.NONE),
                connect_timeout_ms=max(1, int(min(self.timeout, CONNECT_WAIT) * 1000)),
            )
            self._clients[scheme] = client
        return client

    def start(self, number: int, url: str, parts: SplitResult, path: str, size: int) -> None:
        """Send ``GET url`` for ``size`` bytes, its body going to the existing file ``path``."""
        target = url[url.index("//") + 2 + len(parts.netloc) :].partition("#")[0] or "/"
        host = parts.netloc.rpartition("@")[2]
        request = self._http.HttpRequest(
            "GET",
            target,
            self._http.HttpHeaders([("Host", host), ("Range", f"bytes=0-{size}")]),
        )
        finished = self._finished

        def on_done(
            error: BaseException | None = None,
            status_code: int | None = None,
            error_headers: list[Any] | None = None,
            **_: Any,
        ) -> None:
            finished.put((number, error, status_code, error_headers))

        self._live[number] = self._client(parts.scheme).make_request(
            type=self._s3.S3RequestType.GET_OBJECT,
            request=request,
            recv_filepath=path,
            on_done=on_done,
        )
        self._urls[number] = url
        self._order.append((time.monotonic() + self.timeout, number))

    def collect(self, wait: float = 0.0) -> list[tuple[int, BaseException | None]]:
        """The requests that ended, each with None (its body in its file) or its failure.

        Waits up to ``wait`` seconds for the first one, and no longer than the next
        request's deadline.
        """
        self._cancel_late()
        if self._order:
            wait = min(wait, max(0.0, self._order[0][0] - time.monotonic()))
        ended: list[tuple[int, BaseException | None]] = []
        try:
            item = self._finished.get(timeout=wait) if wait > 0 else self._finished.get_nowait()
            while True:
                ended.append(self._outcome(*item))
                item = self._finished.get_nowait()
        except queue.Empty:
            pass
        return ended

    def _cancel_late(self) -> None:
        now = time.monotonic()
        while self._order and self._order[0][0] <= now:
            _, number = self._order.popleft()
            request = self._live.get(number)
            if request is not None:
                self._late.add(number)
                request.cancel()

    def _outcome(
        self, number: int, error: Any, status: int | None, headers: list[Any] | None
    ) -> tuple[int, BaseException | None]:
        self._live.pop(number, None)
        url = self._urls.pop(number)
        late = number in self._late
        self._late.discard(number)
        if error is None:
            return number, None
        if late:
            return number, TransientError(f"timed out after {self.timeout:g} s")
        if status is not None:
            if status in _REDIRECTS:
                return number, Unsuited()
            reason = f"HTTP {status} {http.client.responses.get(status, '')}".rstrip()
            if status in RETRY_STATUSES:
                hint = dict((k.lower(), v) for k, v in headers or ()).get("retry-after")
                return number, TransientError(reason, retry_after=retry_after_seconds(hint))
            return number, DownloadError(f"GET {redact_url(url)} failed: {reason}")
        name = getattr(error, "name", "") or type(error).__name__
        if name in _HOST_UNSUITED or name.startswith("AWS_IO_TLS"):
            return number, HostUnsuited(name)
        if name == "AWS_ERROR_DEST_COPY_TOO_SMALL":
            return number, TooLong("the reply ran past the range asked for")
        return number, TransientError(f"the request failed ({name})")

    def abandon(self) -> None:
        """Cancel what is in flight and wait until the runtime has let go of its files."""
        for request in list(self._live.values()):
            request.cancel()
        while self._live:
            number, *_ = self._finished.get()
            self._live.pop(number, None)
            self._urls.pop(number, None)
        self._order.clear()
        self._late.clear()

    def close(self) -> None:
        """:meth:`abandon`, then let go of the clients and their connections."""
        self.abandon()
        self._clients.clear()
