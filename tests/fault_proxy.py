"""A fault-injecting HTTP proxy for the tests: between a client and a real S3 server.

The proxy listens on 127.0.0.1 only and forwards each request to the upstream server
unchanged (same method, target and headers, so SigV4 signatures stay valid), unless a
:class:`Fault` matches the request, in which case it misbehaves as a real store or
network does: an error status with an S3 XML body, a 200 carrying an XML error, a reset
connection, a stall, a truncated or corrupted body. Each fault fires a set number of
times (or always) and counts its hits.

It is bounded: at most ``MAX_CONNECTIONS`` client connections at once, every socket has a
timeout, stalls wake up when the proxy stops, and the proxy stops by itself after
``lifetime`` seconds even if a test forgets to.
"""

from __future__ import annotations

import http.client
import re
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import BinaryIO, Literal
from urllib.parse import urlsplit

MAX_CONNECTIONS = 64
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection"}
_LINE_LIMIT = 65536

Action = Literal[
    "status",  # answer ``status`` with an S3 XML error ``code`` (and Retry-After if set)
    "ok-error",  # forward, then answer 200 with an XML error body instead of the reply
    "reset-request",  # read half the request body, then reset the connection
    "reset-response",  # forward, send half the reply body, then reset the connection
    "stall",  # read the request, then say nothing for ``seconds`` and close
    "truncate",  # forward, send the full Content-Length but half the body, then close
    "corrupt",  # forward, flip bytes in the middle of the reply body
    "delay",  # wait ``seconds``, then forward normally
]


@dataclass
class Fault:
    """One misbehaviour for requests whose method and target match.

    ``target`` is a regular expression searched in the request target (path and query);
    ``times`` is how often the fault fires (None: always).
    """

    action: Action
    method: str | None = None
    target: str = ""
    times: int | None = 1
    status: int = 503
    code: str = "SlowDown"
    retry_after: int | None = None
    seconds: float = 0.0
    hits: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.target)

    def matches(self, method: str, target: str) -> bool:
        """Whether this fault applies to a request (and has hits left)."""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return self._pattern.search(target) is not None


def _error_xml(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>FAULTPROXY</RequestId></Error>"
    ).encode()


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset instead of an orderly shutdown."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Upstream:
    """The connection to the upstream server of one client connection, opened lazily."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._connection: http.client.HTTPConnection | None = None

    def connection(self) -> http.client.HTTPConnection:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _Closed(Exception):
    """The client connection is finished."""


class FaultProxy:
    """A loopback proxy to ``upstream`` (``http://host:port``) with injectable faults."""

    def __init__(self, upstream: str, *, lifetime: float = 900.0) -> None:
        parts = urlsplit(upstream)
        assert parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
        self.upstream = (parts.hostname, parts.port or 80)
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, str]] = []  # method, target, what happened
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                if not proxy._slots.acquire(timeout=30):
                    return
                try:
                    proxy._serve(self.request)
                finally:
                    proxy._slots.release()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    def start(self) -> FaultProxy:
        """Start serving (and the self-stop timer)."""
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving; stalled connections wake up and close."""
        self._stopping.set()
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def add(self, fault: Fault) -> Fault:
        """Arm ``fault`` (faults are tried in the order they were added)."""
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every fault and forget the request log."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def _take(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, target):
                    fault.hits += 1
                    return fault
        return None

    def _note(self, method: str, target: str, what: str) -> None:
        with self._lock:
            self.requests.append((method, target, what))

    # --- one client connection -------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        reader = sock.makefile("rb")
        upstream = _Upstream(*self.upstream)
        try:
            while not self._stopping.is_set():
                self._one(sock, reader, upstream)
        except (_Closed, OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            upstream.close()
            reader.close()
            with suppress(OSError):
                sock.close()

    def _one(self, sock: socket.socket, reader: BinaryIO, upstream: _Upstream) -> None:
        line = reader.readline(_LINE_LIMIT)
        if not line.strip():
            raise _Closed
        method, target, _version = line.decode("latin-1").split()
        headers: list[tuple[str, str]] = []
        while True:
            raw = reader.readline(_LINE_LIMIT)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, value = raw.decode("latin-1").split(":", 1)
            headers.append((name.strip(), value.strip()))
        lower = {name.lower(): value for name, value in headers}
        if lower.get("transfer-encoding", "").lower() == "chunked":
            raise _Closed  # none of our clients sends chunked requests
        length = int(lower.get("content-length", "0"))
        fault = self._take(method, target)
        action = fault.action if fault else "forward"
        self._note(method, target, action)
        continue_first = lower.get("expect", "").lower() == "100-continue"
        if continue_first:
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if fault and fault.action == "reset-request":
            reader.read(length // 2)
            _reset(sock)
            raise _Closed
        body = reader.read(length) if length else b""
        if len(body) != length:
            raise _Closed
        if fault and fault.action == "status":
            extra = [("Retry-After", str(fault.retry_after))] if fault.retry_after else []
            self._reply(sock, fault.status, _error_xml(fault.code, "injected by the proxy"), extra)
            return
        if fault and fault.action == "stall":
            self._stopping.wait(fault.seconds)
            raise _Closed
        if fault and fault.action == "delay":
            self._stopping.wait(fault.seconds)
        connection = upstream.connection()
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                connection.putheader(name, value)
        connection.endheaders(body or None)
        response = connection.getresponse()
        data = response.read()
        reply_headers = [
            (name, value)
            for name, value in response.getheaders()
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length"
        ]
        declared = response.getheader("Content-Length") if method == "HEAD" else None
        status, reason = response.status, response.reason
        if response.will_close:
            upstream.close()
        if fault and fault.action == "ok-error":
            data = _error_xml(fault.code, "injected by the proxy after success")
            reply_headers = [("Content-Type", "application/xml")]
            status, reason = 200, "OK"
        elif fault and fault.action == "corrupt" and data:
            middle = len(data) // 2
            data = (
                data[:middle]
                + bytes(b ^ 0xFF for b in data[middle : middle + 8])
                + (data[middle + 8 :])
            )
        elif fault and fault.action in ("truncate", "reset-response"):
            head = self._head(status, reason, reply_headers, str(len(data)))
            sock.sendall(head + data[: len(data) // 2])
            if fault.action == "reset-response":
                _reset(sock)
            raise _Closed
        size = declared if declared is not None else str(len(data))
        sock.sendall(self._head(status, reason, reply_headers, size) + data)

    @staticmethod
    def _head(status: int, reason: str, headers: list[tuple[str, str]], length: str) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers]
        lines.append(f"Content-Length: {length}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _reply(
        self, sock: socket.socket, status: int, body: bytes, extra: list[tuple[str, str]]
    ) -> None:
        reason = http.client.responses.get(status, "Error")
        headers = [("Content-Type", "application/xml"), *extra]
        sock.sendall(self._head(status, reason, headers, str(len(body))) + body)


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """A running :class:`FaultProxy` to ``upstream``, stopped on exit."""
    proxy = FaultProxy(upstream).start()
    try:
        yield proxy
    finally:
        proxy.stop()
