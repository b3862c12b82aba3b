"""A loopback S3 "null sink": answers the S3 calls a publisher makes and discards bodies.

It measures the client, not a store, so it is built to cost as little CPU as possible: one
asyncio event loop, a hand-rolled HTTP/1.1 parser, bodies counted and dropped as they
arrive. PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
AbortMultipartUpload, DeleteObjects and HeadBucket get well-formed replies.
``Expect: 100-continue`` is honoured. ``--latency`` delays each reply (without blocking
other connections) to model a remote region: one round trip per request.

With ``--keep`` it keeps what it is sent in memory and also answers GetObject (with
``Range``), HeadObject and ListObjectsV2, so downloads can be measured the same way. A kept
single-part object's ETag is then the MD5 of its bytes, as S3's is (so a client that checks
MD5s against ETags, like rclone, can); a multipart object's ETag ends in ``-N``. The listing
is flat: no ``delimiter`` (rclone needs ``--fast-list`` and ``list_version = 2``).
Paths are path-style (``/BUCKET/KEY``); signatures are not checked.

    python bench/null_sink.py --port 0 --latency 0.02 [--keep]

It prints its endpoint (``http://127.0.0.1:PORT``) on the first line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import re
import signal
from email.utils import formatdate
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

_CHUNK = 1 << 20
_LIST_PAGE = 1000
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_DATE = "2026-01-01T00:00:00.000Z"
_REASONS = {200: "OK", 204: "No Content", 206: "Partial Content", 404: "Not Found"}


class Store:
    """What the sink remembers (in ``--keep`` mode) and how it answers each request."""

    def __init__(self, *, keep: bool) -> None:
        self.keep = keep
        self.objects: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}  # of the kept objects, quoted
        self.parts: dict[str, dict[int, bytes]] = {}
        self.ids = itertools.count(1)

    def answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request; ``body`` is None when it was dropped."""
        parts = urlsplit(target)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        bucket, key = unquote(bucket), unquote(key)
        query = parse_qs(parts.query, keep_blank_values=True)
        name = f"{bucket}/{key}"
        if method == "PUT":
            etag = f'"{next(self.ids):032x}"'
            if body is not None:
                if "uploadId" in query:
                    number = int(query["partNumber"][0])
                    self.parts.setdefault(query["uploadId"][0], {})[number] = body
                else:
                    etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
                    self.objects[name] = body
                    self.etags[name] = etag
            return 200, {"ETag": etag}, b""
        if method == "POST":
            return 200, {}, self._post(bucket, key, query)
        if method == "DELETE":
            if "uploadId" in query:
                self.parts.pop(query["uploadId"][0], None)
            else:
                self.objects.pop(name, None)
                self.etags.pop(name, None)
            return 204, {}, b""
        if method == "HEAD" and not key:
            return 200, {"x-amz-bucket-region": "us-east-1"}, b""
        if method == "GET" and not key and query.get("list-type") == ["2"]:
            return 200, {}, self._listing(bucket, query)
        data = self.objects.get(name)
        if data is None:
            return (
                404,
                {},
                f"<Error><Code>NoSuchKey</Code><Key>{escape(key)}</Key></Error>".encode(),
            )
        found = {
            "Content-Type": "application/octet-stream",
            "ETag": self.etags[name],
            "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT",
            "Accept-Ranges": "bytes",
        }
        wanted = _RANGE.match(headers.get("range", ""))
        if method == "GET" and wanted and (wanted[1] or wanted[2]):
            if wanted[1]:
                first = int(wanted[1])
                last = min(int(wanted[2]) if wanted[2] else len(data) - 1, len(data) - 1)
            else:
                first, last = max(0, len(data) - int(wanted[2])), len(data) - 1
            found["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            return 206, found, data[first : last + 1]
        return 200, found, data

    def _post(self, bucket: str, key: str, query: dict[str, list[str]]) -> bytes:
        if "uploads" in query:
            upload = f"{next(self.ids):032x}"
            self.parts[upload] = {}
            body = (
                f"<InitiateMultipartUploadResult><Bucket>{escape(bucket)}</Bucket>"
                f"<Key>{escape(key)}</Key><UploadId>{upload}</UploadId>"
                "</InitiateMultipartUploadResult>"
            )
        elif "delete" in query:
            body = "<DeleteResult></DeleteResult>"
        else:
            parts = self.parts.pop(query.get("uploadId", [""])[0], {})
            etag = f'"done-{len(parts)}"'
            if self.keep:
                self.objects[f"{bucket}/{key}"] = b"".join(parts[n] for n in sorted(parts))
                self.etags[f"{bucket}/{key}"] = etag
            body = (
                f"<CompleteMultipartUploadResult><Bucket>{escape(bucket)}</Bucket>"
                f"<Key>{escape(key)}</Key><ETag>{etag}</ETag>"
                "</CompleteMultipartUploadResult>"
            )
        return body.encode()

    def _listing(self, bucket: str, query: dict[str, list[str]]) -> bytes:
        prefix = query.get("prefix", [""])[0]
        after = query.get("continuation-token", query.get("start-after", [""]))[0]
        url = query.get("encoding-type") == ["url"]
        start = len(bucket) + 1
        keys = sorted(
            k[start:]
            for k in self.objects
            if k.startswith(f"{bucket}/{prefix}") and k[start:] > after
        )
        page, more = keys[:_LIST_PAGE], len(keys) > _LIST_PAGE
        shown = (lambda k: quote(k, safe="/")) if url else escape
        contents = "".join(
            f"<Contents><Key>{shown(k)}</Key><LastModified>{_DATE}</LastModified>"
            f"<ETag>{self.etags[f'{bucket}/{k}']}</ETag>"
            f"<Size>{len(self.objects[f'{bucket}/{k}'])}</Size>"
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


class _Connection(asyncio.Protocol):
    """One client connection: parse requests, drop or keep bodies, answer in order."""

    def __init__(self, store: Store, latency: float) -> None:
        self.store, self.latency = store, latency
        self.buffer = bytearray()
        self.request: tuple[str, str, dict[str, str]] | None = None
        self.left = 0  # body bytes still to come
        self.body: list[bytes] | None = None
        self.sending: memoryview | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.request is not None and self.left:  # in a body
            take = min(self.left, len(data))
            if self.body is not None:
                self.body.append(data[:take] if take < len(data) else data)
            self.left -= take
            data = data[take:]
            if self.left == 0:
                self._complete()
            if not data:
                return
        self.buffer += data
        self._parse()

    def _parse(self) -> None:
        while self.request is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            del self.buffer[: end + 4]
            method, target, _ = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.request = (method, target, headers)
            self.left = int(headers.get("content-length") or 0)
            self.body = [] if self.store.keep and method in ("PUT", "POST") else None
            if headers.get("expect", "").lower() == "100-continue":
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            take = min(self.left, len(self.buffer))
            if take:
                if self.body is not None:
                    self.body.append(bytes(self.buffer[:take]))
                del self.buffer[:take]
                self.left -= take
            if self.left == 0:
                self._complete()
            else:
                return

    def _complete(self) -> None:
        assert self.request is not None
        method, target, headers = self.request
        body = b"".join(self.body) if self.body is not None else None
        status, reply_headers, reply = self.store.answer(method, target, headers, body)
        self.request, self.body = None, None
        if self.latency:
            asyncio.get_running_loop().call_later(
                self.latency, self._send, method, status, reply_headers, reply
            )
        else:
            self._send(method, status, reply_headers, reply)
        if self.buffer:
            self._parse()

    def _send(self, method: str, status: int, headers: dict[str, str], body: bytes) -> None:
        if self.transport.is_closing():
            return
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}",
            f"Date: {formatdate(usegmt=True)}",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        if body and "Content-Type" not in headers:
            lines.append("Content-Type: application/xml")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if body and method != "HEAD":
            self.sending = memoryview(body)
            self._push()

    def _push(self) -> None:
        while self.sending is not None and not self.paused:
            self.transport.write(self.sending[:_CHUNK])
            self.sending = self.sending[_CHUNK:] or None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._push()


async def serve(port: int, latency: float, keep: bool) -> None:
    """Serve until SIGTERM or SIGINT, printing the endpoint first."""
    store = Store(keep=keep)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(store, latency), "127.0.0.1", port, backlog=256
    )
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--keep", action="store_true", help="keep objects; answer GET and list")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency, args.keep))


if __name__ == "__main__":
    main()
