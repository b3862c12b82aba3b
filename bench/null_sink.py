"""A loopback S3 "null sink": answers the S3 calls a publisher makes and discards bodies.

It measures the client, not a store: PutObject, CreateMultipartUpload, UploadPart,
CompleteMultipartUpload, AbortMultipartUpload, DeleteObjects and HeadBucket are answered
with well-formed replies; bodies are read and dropped. ``Expect: 100-continue`` is
honoured (botocore otherwise waits a second per body). ``--latency`` adds a delay per
request to model a remote region.

    python bench/null_sink.py --port 0 --latency 0.02
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit


class NullSinkHandler(http.server.BaseHTTPRequestHandler):
    """One S3 request; the server's ``latency`` seconds are slept before answering."""

    protocol_version = "HTTP/1.1"
    server: NullSinkServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _drain(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        digest = hashlib.md5(usedforsecurity=False)
        left = length
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
            self.server.bytes_received += len(chunk)
        return digest.hexdigest().encode()

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        if self.server.latency:
            time.sleep(self.server.latency)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "application/xml")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self._reply(200, headers={"x-amz-bucket-region": "us-east-1"})

    def do_PUT(self) -> None:
        etag = self._drain()
        self.server.requests += 1
        self._reply(200, headers={"ETag": f'"{etag.decode()}"'})

    def do_POST(self) -> None:
        self._drain()
        self.server.requests += 1
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        if "uploads" in query:
            body = (
                "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                f"<UploadId>{uuid.uuid4().hex}</UploadId></InitiateMultipartUploadResult>"
            )
        elif "delete" in query:
            body = "<DeleteResult></DeleteResult>"
        else:
            body = (
                "<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                '<ETag>"done-1"</ETag></CompleteMultipartUploadResult>'
            )
        self._reply(200, body.encode())

    def do_DELETE(self) -> None:
        self._drain()
        self._reply(204)

    def do_GET(self) -> None:
        self._reply(404, b"<Error><Code>NoSuchKey</Code></Error>")


class NullSinkServer(http.server.ThreadingHTTPServer):
    """The server; ``requests`` and ``bytes_received`` count what it was sent."""

    daemon_threads = True

    def __init__(self, port: int = 0, latency: float = 0.0) -> None:
        super().__init__(("127.0.0.1", port), NullSinkHandler)
        self.latency = latency
        self.requests = 0
        self.bytes_received = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> NullSinkServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    args = parser.parse_args()
    server = NullSinkServer(args.port, args.latency)
    print(server.endpoint, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
