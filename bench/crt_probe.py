"""The "limit" rows of B and D2: the small-file tree sent or fetched by the AWS Common Runtime.

    python bench/crt_probe.py DIR ENDPOINT BUCKET PREFIX [--in-flight 512] [--region us-east-1]
    python bench/crt_probe.py DIR ENDPOINT BUCKET PREFIX --get OUT [--in-flight 64]

Every file under DIR becomes the object ``PREFIX + its relative path``: it is read into
memory and sent as one ``awscrt.s3.S3Client.make_request(type=PUT_OBJECT)`` (the C client
that ``boto3[crt]`` uses), ``--in-flight`` requests at a time, each with a SHA-256 checksum
header (``S3ChecksumConfig(algorithm=SHA256, location=HEADER)``). Requests are SigV4-signed
for service s3 with static credentials from ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, path-style (``/BUCKET/KEY``) with the endpoint's host and port
as the Host header; an ``http://`` endpoint turns TLS off. There is no listing, no manifest
and no retry policy of ours: what is left is the floor a Python program can reach for
one-object-per-file uploads on this machine.

With ``--get OUT`` it fetches instead: for every file under DIR, a GET of the object
``PREFIX + its relative path`` (``S3RequestType.GET_OBJECT``, signed the same way), 256 in
flight, whose body the runtime writes to a new file at the same relative path under OUT
(created with ``O_EXCL`` first, its directories made before; ``recv_filepath``); once it
is done, the file is read back and compared with DIR's file. That is the floor for
``get`` of a directory of small files: no description, no staging, no retry policy.

Every request must succeed with a 2xx status (and, with ``--get``, the same bytes);
otherwise the first failures go to stderr and the exit status is 1.
"""

from __future__ import annotations

import argparse
import io
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _client(endpoint: str, region: str) -> tuple[Any, SplitResult]:
    """The runtime's S3 client for ``endpoint``, signing with the environment's keys.

    Its throughput target (the runtime sizes its connection pool from it) and its
    event-loop threads are the publisher's (``publisher_s3._crt``).
    """
    from awscrt.auth import AwsCredentialsProvider
    from awscrt.s3 import S3Client, S3RequestTlsMode, create_default_s3_signing_config

    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise SystemExit(f"not an http(s) endpoint: {endpoint}")
    credentials = AwsCredentialsProvider.new_static(
        os.environ.get("AWS_ACCESS_KEY_ID", "BENCHACCESSKEY"),
        os.environ.get("AWS_SECRET_ACCESS_KEY", "bench-secret-key"),
    )
    from awscrt.io import ClientBootstrap, DefaultHostResolver, EventLoopGroup

    from publisher_core._crt import THROUGHPUT_TARGET_GBPS, event_loop_threads

    loops = EventLoopGroup(event_loop_threads())
    client = S3Client(
        bootstrap=ClientBootstrap(loops, DefaultHostResolver(loops)),
        region=region,
        tls_mode=S3RequestTlsMode.DISABLED if url.scheme == "http" else S3RequestTlsMode.ENABLED,
        signing_config=create_default_s3_signing_config(
            region=region, credential_provider=credentials
        ),
        throughput_target_gbps=THROUGHPUT_TARGET_GBPS,
    )
    return client, url


def upload(
    root: Path, endpoint: str, bucket: str, prefix: str, *, in_flight: int, region: str
) -> list[str]:
    """PUT every file under ``root``; the failures, one line each (empty: all succeeded)."""
    from awscrt.http import HttpHeaders, HttpRequest
    from awscrt.s3 import (
        S3ChecksumAlgorithm,
        S3ChecksumConfig,
        S3ChecksumLocation,
        S3RequestType,
    )

    client, url = _client(endpoint, region)
    checksum = S3ChecksumConfig(
        algorithm=S3ChecksumAlgorithm.SHA256, location=S3ChecksumLocation.HEADER
    )
    base = url.path.rstrip("/")
    slots = threading.BoundedSemaphore(in_flight)
    lock = threading.Lock()
    pending: dict[int, object] = {}  # the live requests, kept referenced until done
    failures: list[str] = []
    finished = threading.Condition(lock)
    done = 0

    def on_done(
        number: int,
        key: str,
        error: Exception | None = None,
        status_code: int | None = None,
        **_: object,
    ) -> None:
        nonlocal done
        with lock:
            pending.pop(number, None)
            if error is not None or status_code is None or not 200 <= status_code < 300:
                failures.append(f"{key}: status {status_code}, {error!r}")
            done += 1
            finished.notify_all()
        slots.release()

    files = _files(root)
    for number, path in enumerate(files):
        key = prefix + path.relative_to(root).as_posix()
        body = path.read_bytes()
        request = HttpRequest(
            "PUT",
            f"{base}/{quote(bucket, safe='')}/{quote(key, safe='/~')}",
            HttpHeaders([("Host", url.netloc), ("Content-Length", str(len(body)))]),
            io.BytesIO(body),
        )
        slots.acquire()
        with lock:
            pending[number] = client.make_request(
                type=S3RequestType.PUT_OBJECT,
                request=request,
                checksum_config=checksum,
                on_done=lambda n=number, k=key, **kwargs: on_done(n, k, **kwargs),
            )
    with lock:
        finished.wait_for(lambda: done == len(files))
    return failures


def download(
    root: Path, out: Path, endpoint: str, bucket: str, prefix: str, *, in_flight: int, region: str
) -> list[str]:
    """GET every file of ``root`` into ``out``, checked; the failures (empty: all good)."""
    from awscrt.http import HttpHeaders, HttpRequest
    from awscrt.s3 import S3RequestType

    client, url = _client(endpoint, region)
    base = url.path.rstrip("/")
    files = _files(root)
    for folder in sorted({p.parent.relative_to(root) for p in files}):
        (out / folder).mkdir(parents=True, exist_ok=True)
    finished: queue.SimpleQueue[tuple[int, Exception | None]] = queue.SimpleQueue()
    live: dict[int, object] = {}  # the requests in flight, kept referenced until done
    failures: list[str] = []
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL

    def check(number: int, error: Exception | None) -> None:
        del live[number]
        path = files[number]
        relative = path.relative_to(root).as_posix()
        if error is not None:
            failures.append(f"{relative}: {error!r}")
        elif (out / relative).read_bytes() != path.read_bytes():
            failures.append(f"{relative}: differs from {path}")

    for number, path in enumerate(files):
        relative = path.relative_to(root).as_posix()
        target = out / relative
        os.close(os.open(target, flags, 0o666))
        request = HttpRequest(
            "GET",
            f"{base}/{quote(bucket, safe='')}/{quote(prefix + relative, safe='/~')}",
            HttpHeaders([("Host", url.netloc)]),
        )
        while len(live) >= in_flight:
            check(*finished.get())
        live[number] = client.make_request(
            type=S3RequestType.GET_OBJECT,
            request=request,
            recv_filepath=str(target),
            on_done=lambda n=number, error=None, **_: finished.put((n, error)),
        )
    while live:
        check(*finished.get())
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("endpoint")
    parser.add_argument("bucket")
    parser.add_argument("prefix")
    parser.add_argument("--in-flight", type=int, help="requests at a time (512; --get: 256)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--get", type=Path, metavar="OUT", help="fetch into OUT instead")
    args = parser.parse_args()
    where = (args.endpoint, args.bucket, args.prefix)
    if args.get is not None:
        failures = download(
            args.root, args.get, *where, in_flight=args.in_flight or 256, region=args.region
        )
    else:
        failures = upload(args.root, *where, in_flight=args.in_flight or 512, region=args.region)
    if failures:
        print(f"crt_probe: {len(failures)} request(s) failed:", file=sys.stderr)
        for line in failures[:10]:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
