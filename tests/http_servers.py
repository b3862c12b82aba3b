"""Loopback HTTP(S) servers for the tests of get's transport: routes, counts, TLS, proxies."""

from __future__ import annotations

import hashlib
import http.server
import re
import shutil
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

SECRET = "X-Amz-Signature=s3cr3t"


@dataclass
class Route:
    """What the server answers at one path: a status, headers and a body."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    ranges: bool = True
    """Like S3: an ``ETag``, and a 200's ``Range: bytes=A-B`` answered with 206 and those
    bytes; False: neither."""


class Server(http.server.ThreadingHTTPServer):
    """A loopback HTTP/1.1 server (keep-alive) that counts connections and requests."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, list[Route]] = {}
        self.connections = 0
        self.requests: Counter[str] = Counter()
        self.targets: list[str] = []
        self.proxy_auth: list[str | None] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.base = f"{scheme}://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hung up mid-reply (the runtime cancels what it refuses)

    def get_request(self):
        request = super().get_request()
        with self.lock:
            self.connections += 1
        return request

    def add(self, path: str, *routes: Route) -> str:
        """Answer ``path`` with ``routes`` in turn (the last one for ever); its URL."""
        self.routes[path] = list(routes)
        return f"{self.base}{path}?{SECRET}"

    def answer(self, handler: Handler) -> None:
        target = handler.path  # absolute (http://host/path?query) when it came via a proxy
        path = urlsplit(target).path
        with self.lock:
            self.requests[path] += 1
            self.targets.append(target)
            self.proxy_auth.append(handler.headers.get("Proxy-Authorization"))
            routes = self.routes.get(path)
            route = (routes.pop(0) if len(routes) > 1 else routes[0]) if routes else None
        route = route or Route(404, b"<Error><Code>NoSuchKey</Code></Error>")
        status, body = route.status, route.body
        extra = {"ETag": f'"{hashlib.md5(body).hexdigest()}"'} if route.ranges else {}
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range") or "")
        if wanted and route.ranges and status == 200 and int(wanted[1]) < len(body):
            first = int(wanted[1])
            last = min(int(wanted[2] or len(body) - 1), len(body) - 1)
            status, body = 206, body[first : last + 1]
            extra["Content-Range"] = f"bytes {first}-{last}/{len(route.body)}"
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in {**route.headers, **extra}.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep the connection open between requests
    timeout = 10

    def do_GET(self) -> None:
        assert isinstance(self.server, Server)
        self.server.answer(self)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    """A keep-alive loopback HTTP server."""
    running = Server()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    command += " -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[Server]:
    """A keep-alive loopback HTTPS server with a self-signed certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    running = Server(tls=context)
    try:
        yield running
    finally:
        running.close()


def use_proxy(monkeypatch: pytest.MonkeyPatch, proxy: str, no_proxy: str = "") -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
