"""A loopback S3 "null sink": answers the S3 calls a publisher makes and discards bodies.

It measures the client, not a store: PutObject, CreateMultipartUpload, UploadPart,
CompleteMultipartUpload, AbortMultipartUpload, DeleteObjects and HeadBucket are answered
with well-formed replies; bodies are read and dropped. ``Expect: 100-continue`` is
honoured (botocore otherwise waits a second per body). ``--latency`` adds a delay before
each reply to model a remote region (one round trip per request).

With ``--keep`` it keeps what it is sent in memory and also answers GetObject (with
``Range``), HeadObject and ListObjectsV2, so downloads can be measured the same way.
Paths are path-style (``/BUCKET/KEY``); signatures are not checked.

    python bench/null_sink.py --port 0 --latency 0.02 [--keep]
"""

from __future__ import annotations

import argparse
import http.server
import itertools
import re
import threading
import time
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

_CHUNK = 1 << 20
_LIST_PAGE = 1000
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_DATE = "2026-01-01T00:00:00.000Z"


class NullSinkHandler(http.server.BaseHTTPRequestHandler):
    """One S3 request; the server's ``latency`` seconds are slept before answering."""

    protocol_version = "HTTP/1.1"
    server: NullSinkServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        """(bucket, key, query) of a path-style request."""
        parts = urlsplit(self.path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        return unquote(bucket), unquote(key), parse_qs(parts.query, keep_blank_values=True)

    def _body(self) -> bytes | None:
        """Read the request body: kept (and returned) in ``--keep`` mode, else discarded."""
        left = int(self.headers.get("Content-Length") or 0)
        kept: list[bytes] | None = [] if self.server.keep else None
        while left:
            chunk = self.rfile.read(min(left, _CHUNK))
            if not chunk:
                break
            if kept is not None:
                kept.append(chunk)
            left -= len(chunk)
        self.server.count(int(self.headers.get("Content-Length") or 0))
        return b"".join(kept) if kept is not None else None

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        if self.server.latency:
            time.sleep(self.server.latency)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        if body and "Content-Type" not in (headers or {}):
            self.send_header("Content-Type", "application/xml")
        self.end_headers()
        if body and self.command != "HEAD":
            view = memoryview(body)
            for start in range(0, len(body), _CHUNK):
                self.wfile.write(view[start : start + _CHUNK])

    def _missing(self, key: str) -> None:
        body = f"<Error><Code>NoSuchKey</Code><Key>{escape(key)}</Key></Error>".encode()
        self._reply(404, b"" if self.command == "HEAD" else body)

    def do_HEAD(self) -> None:
        bucket, key, _ = self._target()
        if not key:
            self._reply(200, headers={"x-amz-bucket-region": "us-east-1"})
            return
        data = self.server.objects.get(f"{bucket}/{key}")
        if data is None:
            self._missing(key)
            return
        self._reply(200, headers=_object_headers(data))

    def do_PUT(self) -> None:
        bucket, key, query = self._target()
        body = self._body()
        etag = f'"{next(self.server.etags):032x}"'
        if body is not None:
            if "uploadId" in query:
                number = int(query["partNumber"][0])
                self.server.parts.setdefault(query["uploadId"][0], {})[number] = body
            else:
                self.server.objects[f"{bucket}/{key}"] = body
        self._reply(200, headers={"ETag": etag})

    def do_POST(self) -> None:
        bucket, key, query = self._target()
        self._body()
        if "uploads" in query:
            upload = f"{next(self.server.etags):032x}"
            self.server.parts[upload] = {}
            body = (
                f"<InitiateMultipartUploadResult><Bucket>{escape(bucket)}</Bucket>"
                f"<Key>{escape(key)}</Key><UploadId>{upload}</UploadId>"
                "</InitiateMultipartUploadResult>"
            )
        elif "delete" in query:
            body = "<DeleteResult></DeleteResult>"
        else:
            parts = self.server.parts.pop(query.get("uploadId", [""])[0], {})
            if self.server.keep:
                self.server.objects[f"{bucket}/{key}"] = b"".join(parts[n] for n in sorted(parts))
            body = (
                f"<CompleteMultipartUploadResult><Bucket>{escape(bucket)}</Bucket>"
                f'<Key>{escape(key)}</Key><ETag>"done-{len(parts)}"</ETag>'
                "</CompleteMultipartUploadResult>"
            )
        self._reply(200, body.encode())

    def do_DELETE(self) -> None:
        bucket, key, query = self._target()
        self._body()
        if "uploadId" in query:
            self.server.parts.pop(query["uploadId"][0], None)
        else:
            self.server.objects.pop(f"{bucket}/{key}", None)
        self._reply(204)

    def do_GET(self) -> None:
        bucket, key, query = self._target()
        self.server.count(0)
        if not key and query.get("list-type") == ["2"]:
            self._reply(200, self._listing(bucket, query))
            return
        data = self.server.objects.get(f"{bucket}/{key}")
        if data is None:
            self._missing(key)
            return
        headers = _object_headers(data)
        wanted = _RANGE.match(self.headers.get("Range", ""))
        if wanted and (wanted[1] or wanted[2]):
            if wanted[1]:
                first = int(wanted[1])
                last = min(int(wanted[2]) if wanted[2] else len(data) - 1, len(data) - 1)
            else:
                first, last = max(0, len(data) - int(wanted[2])), len(data) - 1
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            headers["Content-Length"] = str(last - first + 1)
            self._reply(206, data[first : last + 1], headers)
            return
        self._reply(200, data, headers)

    def _listing(self, bucket: str, query: dict[str, list[str]]) -> bytes:
        prefix = query.get("prefix", [""])[0]
        after = query.get("continuation-token", query.get("start-after", [""]))[0]
        url = query.get("encoding-type") == ["url"]
        keys = sorted(
            k[len(bucket) + 1 :]
            for k in self.server.objects
            if k.startswith(f"{bucket}/{prefix}") and k[len(bucket) + 1 :] > after
        )
        page, more = keys[:_LIST_PAGE], len(keys) > _LIST_PAGE
        shown = (lambda k: quote(k, safe="/")) if url else escape
        contents = "".join(
            f"<Contents><Key>{shown(k)}</Key><LastModified>{_DATE}</LastModified>"
            f'<ETag>"{len(self.server.objects[f"{bucket}/{k}"]):032x}"</ETag>'
            f"<Size>{len(self.server.objects[f'{bucket}/{k}'])}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            for k in page
        )
        token = f"<NextContinuationToken>{escape(page[-1])}</NextContinuationToken>" if more else ""
        return (
            '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult '
            'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{escape(bucket)}</Name><Prefix>{shown(prefix)}</Prefix>"
            f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{_LIST_PAGE}</MaxKeys>"
            f"{'<EncodingType>url</EncodingType>' if url else ''}"
            f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{token}{contents}"
            "</ListBucketResult>"
        ).encode()


def _object_headers(data: bytes) -> dict[str, str]:
    return {
        "Content-Length": str(len(data)),
        "Content-Type": "application/octet-stream",
        "ETag": f'"{len(data):032x}"',
        "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT",
        "Accept-Ranges": "bytes",
    }


class NullSinkServer(http.server.ThreadingHTTPServer):
    """The server; ``requests`` and ``bytes_received`` count what it was sent."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int = 0, latency: float = 0.0, *, keep: bool = False) -> None:
        super().__init__(("127.0.0.1", port), NullSinkHandler)
        self.latency = latency
        self.keep = keep
        self.requests = 0
        self.bytes_received = 0
        self.objects: dict[str, bytes] = {}
        self.parts: dict[str, dict[int, bytes]] = {}
        self.etags = itertools.count(1)
        self._lock = threading.Lock()

    def count(self, received: int) -> None:
        """Count one request and the body bytes it carried."""
        with self._lock:
            self.requests += 1
            self.bytes_received += received

    @property
    def endpoint(self) -> str:
        """The ``http://127.0.0.1:PORT`` URL clients use."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> NullSinkServer:
        """Serve from a daemon thread; returns the server."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--keep", action="store_true", help="keep objects; answer GET and list")
    args = parser.parse_args()
    server = NullSinkServer(args.port, args.latency, keep=args.keep)
    print(server.endpoint, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
