"""Peak memory and temporary files of S3 publishing, against the loopback null sink.

Checks the S3 issue's goals: a 300 MiB result in archive mode streams with peak RSS under
200 MiB and writes no temporary file; a 5,000-file directory publishes concurrently.
Each publish runs in a fresh process so its peak RSS is its own; the baseline is the
same process importing boto3 and the publisher without publishing.

    .venv/bin/python bench/s3_memory.py [--mib 300] [--files 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from data import make_small_files, make_text_tree
from null_sink import NullSinkServer

CHILD = """
import json, resource, sys, time
import boto3, publisher_core, publisher_s3
spec, source = json.loads(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
if spec is not None:
    publisher_core.publish(spec, source)
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(spec: dict[str, object] | None, source: Path, tmpdir: Path) -> dict[str, float]:
    env = {
        **os.environ,
        "TMPDIR": str(tmpdir),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec), str(source)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=300)
    parser.add_argument("--files", type=int, default=5000)
    args = parser.parse_args()
    sink = NullSinkServer().start()
    with tempfile.TemporaryDirectory() as work:
        base = Path(work)
        big = make_text_tree(base / "big", args.mib * 2**20)
        small = make_small_files(base / "small", args.files)
        tmpdir = base / "tmp"
        tmpdir.mkdir()
        baseline = run_child(None, big, tmpdir)
        rows = []
        for label, source, compress in (
            (f"archive, {args.mib} MiB text", big, True),
            (f"directory, {args.files} files of 2-8 KiB", small, False),
        ):
            spec = {
                "Type": "s3",
                "Bucket": "bench",
                "Key": "r",
                "Compress": compress,
                "Endpoint": sink.endpoint,
            }
            before = sink.requests
            measured = run_child(spec, source, tmpdir)
            leftovers = list(tmpdir.iterdir())
            rows.append((label, measured, sink.requests - before, len(leftovers)))
    print(f"baseline (python + boto3 + publisher imported): {baseline['peak_rss_mib']:.0f} MiB")
    header = ("seconds", "peak RSS", "vs base", "requests", "tmp files")
    print(f"{'scenario':40} " + " ".join(f"{h:>9}" for h in header))
    for label, measured, requests, leftovers in rows:
        ratio = measured["peak_rss_mib"] / baseline["peak_rss_mib"]
        print(
            f"{label:40} {measured['seconds']:8.2f} {measured['peak_rss_mib']:8.0f}M "
            f"{ratio:7.2f}x {requests:9d} {leftovers:9d}"
        )
    archive_rss = rows[0][1]["peak_rss_mib"]
    print(
        f"archive peak RSS {archive_rss:.0f} MiB: "
        f"{'OK' if archive_rss < 200 else 'OVER'} the 200 MiB goal; "
        f"temporary files: {rows[0][3]}"
    )


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"(ran in {time.time() - started:.0f} s)")
