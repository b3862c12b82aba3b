"""What the tests of get share: items and archives made by hand, loopback HTTP servers.

Plain helpers are imported; the fixtures ``served`` (a folder over HTTP), ``endless``
(bodies without end), ``flaky`` (a server that fails as it is told) and ``pauses`` (the
waits between attempts, recorded instead of slept) reach every test through
``pytest_plugins`` in ``conftest.py``.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import re
import socket
import struct
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from publisher_core import DownloadItem, ResultDescription, _fetch, download, sha256_b64


def item_for(
    path: Path, name: str, *, archive: bool = False, url: str | None = None
) -> DownloadItem:
    data = path.read_bytes()
    return DownloadItem(
        path=name,
        url=url or path.as_uri(),
        size=len(data),
        checksum_sha256=sha256_b64(hashlib.sha256(data).digest()),
        archive=archive,
    )


def tar_raw(
    members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT
) -> bytes:
    """An uncompressed tar, to be padded or compressed by hand."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    return gzip.compress(tar_raw(members))


def member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def listing(root: Path) -> list[str]:
    """Every path below ``root``: a failed get must leave this unchanged."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def refuse_archive(
    tmp_path: Path, data: bytes, error: type[Exception], **options: Any
) -> pytest.ExceptionInfo[Exception]:
    """Serve ``data`` as a verified archive; get must fail with exactly ``error``.

    The target must not appear and nothing may change anywhere under ``tmp_path``.
    """
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(data)
    item = item_for(archive, "r.tar.gz", archive=True)
    before = listing(tmp_path)
    with pytest.raises(error) as info:
        download(ResultDescription(type="t", name="r", items=(item,)), tmp_path / "out", **options)
    assert type(info.value) is error
    assert not (tmp_path / "out").exists()
    assert listing(tmp_path) == before
    return info


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A loopback HTTP server over a folder."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def endless() -> Iterator[str]:
    """A loopback HTTP server whose every body is zeros without end (no Content-Length)."""

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            chunk = bytes(64 * 1024)
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:  # the client stopped reading and hung up
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


ERROR_CODES = {
    403: "AccessDenied",
    404: "NoSuchKey",
    429: "SlowDown",
    500: "InternalError",
    503: "SlowDown",
}
"""The S3 error code in the body of each status (the runtime reads it)."""
REASONS = {
    403: "Forbidden",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Slow Down",
    504: "Gateway Timeout",
}


@dataclass
class Route:
    """What the server does for one path: ``script`` for the first requests, then ``then``.

    A fault is an HTTP status (``"503"``), ``reset``, ``stall`` (say nothing),
    ``stall-body`` (half the body, then nothing), ``cut`` (half the body, then close),
    ``short`` (a complete reply of half the body), ``corrupt`` (one byte flipped) or
    ``xml`` (a 200 with an XML error longer than the file); None serves the file.
    """

    data: bytes
    script: list[str]
    then: str | None = None
    retry_after: str | None = None


class FlakyServer:
    """A threaded loopback HTTP server over in-memory files, misbehaving as told."""

    def __init__(self, port: int = 0) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()  # wakes stalled handlers when the server stops
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = False  # server_close joins every handler

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up on a stalled reply

        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(
        self,
        name: str,
        data: bytes,
        script: list[str] | None = None,
        then: str | None = None,
        retry_after: str | None = None,
        archive: bool = False,
    ) -> DownloadItem:
        """Serve ``data`` at ``/name``; the item has a secret query string."""
        self.routes[f"/{name}"] = Route(data, list(script or []), then, retry_after)
        return DownloadItem(
            path=name,
            url=f"{self.base}/{name}?X-Amz-Signature=s3cr3t",
            size=len(data),
            checksum_sha256=sha256_b64(hashlib.sha256(data).digest()),
            archive=archive,
        )

    def serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        """Answer one GET as its route says."""
        path = urlsplit(handler.path).path
        with self.lock:
            self.requests[path] += 1
            route = self.routes.get(path)
            fault = None
            if route is not None:
                fault = route.script.pop(0) if route.script else route.then
        if route is None:
            self.reply(handler, 404, b"<Error><Code>NoSuchKey</Code></Error>")
            return
        data = route.data
        half = data[: len(data) // 2]
        if fault is None:
            self.reply_object(handler, data)
        elif fault.isdigit():
            headers = {"Retry-After": route.retry_after} if route.retry_after else {}
            code = ERROR_CODES.get(int(fault), "InternalError")
            body = f"<Error><Code>{code}</Code></Error>".encode()
            self.reply(handler, int(fault), body, headers)
        elif fault == "reset":
            linger = struct.pack("ii", 1, 0)  # close with a TCP RST
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            handler.close_connection = True
        elif fault == "stall":
            self.release.wait(30)
        elif fault in ("stall-body", "cut"):
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(half)
            if fault == "stall-body":
                self.release.wait(30)
        elif fault == "short":
            self.reply_object(handler, half)
        elif fault == "corrupt":
            self.reply_object(handler, bytes([data[0] ^ 1]) + data[1:])
        else:
            assert fault == "xml", fault
            error = b"<?xml version='1.0'?><Error><Code>InternalError</Code></Error>"
            self.reply_object(handler, error + b" " * len(data))

    @classmethod
    def reply_object(cls, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        """The object ``body`` as S3 sends it: with an ETag, ``Range: bytes=A-B`` honoured."""
        headers = {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range") or "")
        if not wanted or int(wanted[1]) >= len(body):
            cls.reply(handler, 200, body, headers)
            return
        first, last = int(wanted[1]), min(int(wanted[2] or len(body) - 1), len(body) - 1)
        headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
        cls.reply(handler, 206, body[first : last + 1], headers)

    @staticmethod
    def reply(
        handler: http.server.BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        """A complete reply with a Content-Length."""
        handler.send_response(status, REASONS.get(status))
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        """Wake stalled handlers, stop serving, and join every thread."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    """A loopback server that fails as each test tells it to."""
    server = FlakyServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between attempts, recorded instead of slept."""
    waits: list[float] = []

    def pause(seconds: float, cancel: threading.Event) -> None:
        waits.append(seconds)

    monkeypatch.setattr(_fetch, "_pause", pause)
    return waits


PAYLOAD = bytes(range(256)) * 300 + b"tail"
