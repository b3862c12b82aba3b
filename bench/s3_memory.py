"""Peak memory and temporary files of S3 publishing, to the null sink or a real Ceph RGW.

Checks the S3 issue's goals: a 300 MiB result in archive mode streams with peak RSS under
200 MiB and writes no temporary file; a 5,000-file directory publishes concurrently.
Each publish runs in a fresh process so its peak RSS is its own; the baseline is the
same process importing boto3 and the publisher without publishing.

    .venv/bin/python bench/s3_memory.py [--mib 300] [--files 5000] [--ceph]

``--ceph`` publishes to a Ceph RGW started with scripts/ceph-rgw.sh instead of the
loopback null sink (an end-to-end figure; the server shares the machine's two cores).
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

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ceph-rgw.sh"
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


class Target:
    """Where to publish: an endpoint and the credentials for it."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str) -> None:
        self.endpoint, self.access_key, self.secret_key = endpoint, access_key, secret_key

    def run(self, spec: dict[str, object] | None, source: Path, tmpdir: Path) -> dict[str, float]:
        env = {
            **os.environ,
            "TMPDIR": str(tmpdir),
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
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


def start_ceph(directory: Path) -> Target:
    import boto3
    from botocore.config import Config

    subprocess.run(["bash", str(SCRIPT), "start", str(directory)], check=True)
    env = dict(line.split("=", 1) for line in (directory / "env").read_text().splitlines())
    target = Target(env["S3_ENDPOINT"], env["S3_ACCESS_KEY"], env["S3_SECRET_KEY"])
    boto3.client(
        "s3",
        endpoint_url=target.endpoint,
        region_name="us-east-1",
        aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key,
        config=Config(s3={"addressing_style": "path"}),
    ).create_bucket(Bucket="bench")
    return target


def measure(args: argparse.Namespace, base: Path, target: Target, server: str) -> None:
    big = make_text_tree(base / "big", args.mib * 2**20)
    small = make_small_files(base / "small", args.files)
    tmpdir = base / "tmp"
    tmpdir.mkdir()
    baseline = target.run(None, big, tmpdir)
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
            "Endpoint": target.endpoint,
        }
        measured = target.run(spec, source, tmpdir)
        rows.append((label, measured, len(list(tmpdir.iterdir()))))
    print(
        f"server: {server}; baseline (python + boto3 + publisher imported): "
        f"{baseline['peak_rss_mib']:.0f} MiB"
    )
    header = ("seconds", "peak RSS", "vs base", "rate", "tmp files")
    print(f"{'scenario':40} " + " ".join(f"{h:>10}" for h in header))
    for (label, measured, leftovers), amount, unit in zip(
        rows, (args.mib, args.files), ("MiB/s", "files/s"), strict=True
    ):
        ratio = measured["peak_rss_mib"] / baseline["peak_rss_mib"]
        rate = f"{amount / measured['seconds']:.0f} {unit}"
        print(
            f"{label:40} {measured['seconds']:10.2f} {measured['peak_rss_mib']:9.0f}M "
            f"{ratio:9.2f}x {rate:>10} {leftovers:10d}"
        )
    archive_rss = rows[0][1]["peak_rss_mib"]
    verdict = "within" if archive_rss < 200 else "OVER"
    print(
        f"archive peak RSS {archive_rss:.0f} MiB: {verdict} the 200 MiB goal; "
        f"temporary files left in TMPDIR: {rows[0][2]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=300)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--ceph", action="store_true", help="publish to a real Ceph RGW")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        base = Path(work)
        if not args.ceph:
            sink = NullSinkServer().start()
            measure(args, base, Target(sink.endpoint, "bench", "bench-secret"), "null sink")
            return
        target = start_ceph(base / "ceph")
        try:
            measure(args, base, target, "Ceph RGW")
        finally:
            subprocess.run(["bash", str(SCRIPT), "stop", str(base / "ceph")], check=False)


if __name__ == "__main__":
    started = time.time()
    main()
    print(f"(ran in {time.time() - started:.0f} s)")
