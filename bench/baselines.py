"""The Python baselines of the benchmark suite, each run as its own process by ``run.py``.

    python bench/baselines.py compress DIR [--level 1] [--threads 2]
        The compressor alone: read every file under DIR and gzip the bytes with ISA-L,
        the same codec and settings as the S3 publisher's archive mode, discarding the
        output. The floor for archive mode: no tar, no hashing, no network.
    python bench/baselines.py bacalhau-archive DIR ENDPOINT BUCKET KEY
        Bacalhau's archive algorithm: a tar.gz with the standard gzip (level 6, Go's
        default) written to a temporary file, then boto3's ``upload_file``.
    python bench/baselines.py bacalhau-dir DIR ENDPOINT BUCKET PREFIX
        Bacalhau's directory algorithm: a sequential ``put_object`` loop, one open file as
        the body of each request.

Credentials come from the environment (``run.py`` sets dummy ones for the null sink).
"""

from __future__ import annotations

import argparse
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def compress(root: Path, level: int, threads: int) -> None:
    """Read and gzip every file under ``root``; the output is discarded."""
    from isal import igzip_threaded

    class Discard:
        def write(self, data: bytes) -> int:
            return len(data)

        def flush(self) -> None:
            pass

    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with igzip_threaded.open(Discard(), "wb", compresslevel=level, threads=threads) as out:
        for path in _files(root):
            with open(path, "rb") as handle:
                while n := handle.readinto(buffer):
                    out.write(view[:n])


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def bacalhau_archive(root: Path, endpoint: str, bucket: str, key: str) -> None:
    """tar.gz (stdlib gzip, level 6) to a temporary file, then ``upload_file``."""
    client = _client(endpoint)
    handle, name = tempfile.mkstemp(suffix=".tar.gz")
    os.close(handle)
    try:
        with tarfile.open(name, "w:gz", compresslevel=6) as tar:
            tar.add(root, arcname=".")
        client.upload_file(name, bucket, key)
    finally:
        os.unlink(name)


def bacalhau_dir(root: Path, endpoint: str, bucket: str, prefix: str) -> None:
    """One ``put_object`` per file, in order, each with the open file as its body."""
    client = _client(endpoint)
    for path in _files(root):
        with open(path, "rb") as body:
            client.put_object(
                Bucket=bucket, Key=prefix + path.relative_to(root).as_posix(), Body=body
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("compress")
    one.add_argument("root", type=Path)
    one.add_argument("--level", type=int, default=1)
    one.add_argument("--threads", type=int, default=2)
    for name in ("bacalhau-archive", "bacalhau-dir"):
        sub = commands.add_parser(name)
        sub.add_argument("root", type=Path)
        sub.add_argument("endpoint")
        sub.add_argument("bucket")
        sub.add_argument("key")
    args = parser.parse_args()
    if args.command == "compress":
        compress(args.root, args.level, args.threads)
    elif args.command == "bacalhau-archive":
        bacalhau_archive(args.root, args.endpoint, args.bucket, args.key)
    else:
        bacalhau_dir(args.root, args.endpoint, args.bucket, args.key)


if __name__ == "__main__":
    main()
