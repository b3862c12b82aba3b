"""Small downloads over the AWS Common Runtime's HTTP client, for ``get`` of many files.

urllib3 and http.client spend about half a millisecond of CPU, under the interpreter lock,
on every request; for a directory of 20,000 small files that is most of what ``get``
does. The runtime (``awscrt``, the engine behind ``boto3[crt]``) sends the request and
parses the reply in C on its own event-loop threads. :class:`RuntimeGets` keeps its
connections open per host and reuses them, as :class:`._transport.Transport` does with
urllib3's. The URLs are pre-signed: nothing is signed here.

Only what suits it comes here: the first attempt of an ``http`` or ``https`` download
whose size is recorded and small, when no proxy applies (the runtime reads no ``*_proxy``
variable) and, for ``https``, once the host has answered urllib3 over a connection the
standard library verified. The reply is held in memory, at most one byte past the recorded size (the
connection is closed once a body runs past it), and handed over whole. A connection that
cannot be made (:class:`Unreachable`: that host's requests stay with urllib3) and a
redirect are handed back to urllib3 (:class:`Unsuited`) for the same attempt, so the
store sees one request either way (a reply with neither a Content-Length
nor chunks, which S3 never sends, is asked for again there); every retry goes through
urllib3. A
status other than 2xx means what it means there (:data:`._retry.RETRY_STATUSES` are
retried, with their ``Retry-After``; any other is final), named by its standard reason
phrase.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from typing import Any, Final
from urllib.parse import SplitResult

from ._errors import DownloadError
from ._models import redact_url
from ._retry import RETRY_STATUSES, TransientError, retry_after_seconds

__all__ = [
    "CONNECT_WAIT",
    "RUNTIME_MAX_SIZE",
    "RuntimeBody",
    "RuntimeGets",
    "Unreachable",
    "Unsuited",
]

RUNTIME_MAX_SIZE: Final = 1 << 20
"""Downloads of up to this many bytes (recorded) may go through the runtime."""

CONNECT_WAIT: Final = 10.0
"""Seconds at most to wait for the runtime's connection (see :class:`Unreachable`)."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Unsuited(Exception):
    """Not for the runtime (a redirect, an unframed body): urllib3 makes this attempt."""


class Unreachable(Unsuited):
    """The runtime could not connect to the host: urllib3 makes this attempt and the rest.

    Nothing was sent. A TLS certificate the runtime does not trust can leave its
    connection hanging until the wait runs out instead of failing (awscrt 0.38), so the
    wait is short, and https hosts come here only once urllib3 has been answered by them.
    """


class RuntimeBody:
    """A whole reply body, held in memory, read like :class:`._transport.Body`."""

    def __init__(self, data: bytes, missing: int | None) -> None:
        self._view = memoryview(data)
        self._at = 0
        self._missing = missing

    @property
    def length(self) -> int | None:
        """Bytes of the ``Content-Length`` that never arrived, once the body is read."""
        return self._missing if self._at >= len(self._view) else None

    def readinto(self, buffer: memoryview, /) -> int:
        """Copy the next bytes into ``buffer``; 0 at the end."""
        count = min(len(buffer), len(self._view) - self._at)
        buffer[:count] = self._view[self._at : self._at + count]
        self._at += count
        return count


class _Reply:
    """One exchange as the runtime's callbacks deliver it (on its event-loop threads)."""

    __slots__ = (
        "chunks",
        "connection",
        "done",
        "headers",
        "limit",
        "over",
        "seen",
        "size",
        "status",
    )

    def __init__(self, limit: int, connection: Any) -> None:
        self.limit = limit
        self.connection = connection
        self.size = 0
        self.over = False  # the body ran past the limit: the connection was closed
        self.chunks: list[bytes] = []
        self.headers: dict[str, str] = {}
        self.status = 0
        self.seen = time.monotonic()  # when the runtime last delivered something
        self.done = threading.Event()

    def on_response(self, status_code: int, headers: list[tuple[str, str]], **_: Any) -> None:
        self.status = status_code
        self.headers = {name.lower(): value for name, value in headers}
        self.seen = time.monotonic()

    def on_body(self, chunk: bytes, **_: Any) -> None:
        self.seen = time.monotonic()
        if not 200 <= self.status < 300:
            return  # an error's body: the status says what went wrong
        room = self.limit - self.size
        if room > 0:
            self.chunks.append(bytes(chunk[:room]))
            self.size += min(room, len(chunk))
        if len(chunk) > room and not self.over:
            self.over = True  # no need for the rest: one byte past the record refuses it
            self.connection.close()

    def finished(self, _: object) -> None:
        self.done.set()


def _trust_store(options: Any) -> None:
    """``SSL_CERT_FILE``/``SSL_CERT_DIR`` replace the system's CAs, as in the stdlib."""
    ca_file = os.environ.get("SSL_CERT_FILE") or None
    ca_dir = os.environ.get("SSL_CERT_DIR") or None
    if ca_file or ca_dir:
        options.override_default_trust_store_from_path(ca_dirpath=ca_dir, ca_filepath=ca_file)


class RuntimeGets:
    """GETs over the runtime's HTTP/1.1 connections, kept open per host; thread-safe.

    Raises ImportError when ``awscrt`` is not installed.
    """

    def __init__(self, *, connect_timeout: float) -> None:
        from awscrt import http as crt_http
        from awscrt import io as crt_io

        self._http, self._io = crt_http, crt_io
        self.connect_timeout = connect_timeout
        self._idle: dict[tuple[str, str, int], list[Any]] = {}
        self._tls: Any = None
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"RuntimeGets(connect_timeout={self.connect_timeout:g})"

    def close(self) -> None:
        """Close every idle connection; no more are kept."""
        with self._lock:
            self._closed = True
            idle = [c for connections in self._idle.values() for c in connections]
            self._idle.clear()
        for connection in idle:
            connection.close()

    def _connect(self, scheme: str, host: str, port: int) -> Any:
        """An open connection to ``host``: an idle one, else a new one (or Unreachable)."""
        key = (scheme, host, port)
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                connection = idle.pop()
                if connection.is_open():
                    return connection
        options = self._io.SocketOptions()
        wait = min(self.connect_timeout, CONNECT_WAIT)
        options.connect_timeout_ms = max(1, int(wait * 1000))
        tls = None
        if scheme == "https":
            with self._lock:
                if self._tls is None:
                    context_options = self._io.TlsContextOptions()
                    _trust_store(context_options)
                    self._tls = self._io.ClientTlsContext(context_options)
            tls = self._tls.new_connection_options()
            tls.set_server_name(host)
        try:
            return self._http.HttpClientConnection.new(
                host_name=host, port=port, socket_options=options, tls_connection_options=tls
            ).result(wait + 1)
        except Exception as exc:  # refused, unresolvable, TLS, ...: urllib3 says which
            raise Unreachable from exc

    def _release(self, key: tuple[str, str, int], connection: Any) -> None:
        with self._lock:
            if not self._closed and connection.is_open():
                self._idle.setdefault(key, []).append(connection)
                return
        connection.close()

    def get(self, url: str, parts: SplitResult, timeout: float, limit: int) -> RuntimeBody:
        """The body of ``GET url`` (at most ``limit`` bytes of it kept); see the module.

        Raises :class:`Unsuited` (:class:`Unreachable` when no connection could be made),
        :class:`._retry.TransientError` for what another attempt may fix (429, 5xx, a
        broken or silent connection) and :class:`DownloadError` for the rest (403, 404,
        ...). ``timeout`` is how long the
        connection may stay silent.
        """
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, host, port)
        connection = self._connect(*key)
        target = url[url.index("//") + 2 + len(parts.netloc) :].partition("#")[0] or "/"
        request = self._http.HttpRequest(
            "GET", target, self._http.HttpHeaders([("Host", parts.netloc)])
        )
        reply = _Reply(limit, connection)
        stream = connection.request(request, reply.on_response, reply.on_body)
        stream.completion_future.add_done_callback(reply.finished)
        stream.activate()
        while not reply.done.wait(max(0.0, reply.seen + timeout - time.monotonic())):
            if time.monotonic() - reply.seen >= timeout:
                connection.close()
                reply.done.wait()
                raise TransientError(f"timed out after {timeout:g} s")
        failure = stream.completion_future.exception()
        if reply.over:  # closed on purpose: what was kept says it is too long
            return RuntimeBody(b"".join(reply.chunks), None)
        if failure is not None:
            connection.close()
            name = getattr(failure, "name", "") or type(failure).__name__
            where = "while reading the body" if stream.response_status_code else "before a reply"
            raise TransientError(f"the connection failed {where} ({name})")
        framed = "content-length" in reply.headers or "chunked" in reply.headers.get(
            "transfer-encoding", ""
        )
        if not framed:  # a body that ends when the connection does: urllib3 reads those
            connection.close()
            raise Unsuited
        self._release(key, connection)
        status = stream.response_status_code
        if status is None:
            raise TransientError("the server closed the connection without a response")
        if status in _REDIRECTS:
            raise Unsuited
        if not 200 <= status < 300:
            reason = f"HTTP {status} {http.client.responses.get(status, '')}".rstrip()
            if status in RETRY_STATUSES:
                hint = retry_after_seconds(reply.headers.get("retry-after"))
                raise TransientError(reason, retry_after=hint)
            raise DownloadError(f"GET {redact_url(url)} failed: {reason}")
        declared = reply.headers.get("content-length", "")
        missing = int(declared) - reply.size if declared.isdigit() else 0
        return RuntimeBody(b"".join(reply.chunks), max(0, missing))
