"""Load test of the S3 publisher against a real Ceph RGW: many publishes at once, and races.

    make load-ceph                                  # the full run (16 publishers, 10 races)
    .venv/bin/python bench/s3_load.py               # the same
    .venv/bin/python bench/s3_load.py --quick       # a smoke run: 8 publishers, 4 races
    .venv/bin/python bench/s3_load.py --publishers 24 --rounds 20
    .venv/bin/python bench/s3_load.py --endpoint URL  # a running S3 server instead; takes
                                                    # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY

What it proves, on a real server (Ceph RGW of scripts/ceph-rgw.sh, started in a temp dir and
always stopped), with real ``publisher publish`` processes:

1. Concurrency. N publishers run at once as separate processes, to distinct keys, in both
   modes (directory and archive), over trees of many small files, a few medium ones and
   files above the 5 MiB part size (multipart), half in an unversioned and half in a
   versioned bucket, all with ``Overwrite: false``. Every record is then read back with
   ``get`` and compared byte for byte with its source tree (no result lost, none mixed with
   another), each directory prefix holds exactly its result's files, and nothing is left
   behind: no claim objects, no open multipart uploads, no object (or, in the versioned
   bucket, no object version) that no record names.
2. Races. For R rounds two publishers with ``Overwrite: false`` are released at the same
   moment (the CLI's entry point, held by a gate after start-up) towards the same fresh key
   with different trees, alternating directory and archive mode, every other pair of rounds
   with a file or archive above one part (multipart). In the
   unversioned bucket exactly one must win, the other exit with code 1 and say why, the
   winner's record must read back exactly the winner's tree and the key hold exactly the
   winner's objects. The same holds in the versioned bucket, where Ceph 16 ignores
   If-None-Match: there the publisher lets the oldest version of the claim decide. Those
   rounds are reported apart.

The script exits non-zero and names the failed checks if any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPT = ROOT / "scripts" / "ceph-rgw.sh"
BIN = Path(sys.executable).parent
KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
PART_SIZE = 5 * MIB  # the smallest part S3 allows: files and archives above it go multipart
LOSER_MESSAGES = ("Overwrite is false", "another publish")  # every loser's error says one
IGNORED_WARNING = "ignores If-None-Match"

# A racer: the real CLI entry point (what the console script runs), released by a gate once
# Python has started and imported the publisher, so that both racers reach the key together.
GATED_CLI = """\
import sys
import boto3, publisher_s3  # what a publish imports, before the start
from publisher_core.cli import run
open(sys.argv[1], "x").close()
sys.stdin.buffer.read(1)
sys.exit(run(sys.argv[2:]))
"""


@dataclass(frozen=True)
class Sizes:
    """How many publishers and rounds, and how big their trees are."""

    publishers: int = 16
    rounds: int = 10
    versioned_rounds: int = 4
    small_files: int = 200  # 1-8 KiB each
    medium_files: int = 4
    medium_bytes: int = 3 * MIB
    big_bytes: int = 16 * MIB  # one such file in the "large" trees (multipart)
    race_files: int = 40


QUICK = Sizes(
    publishers=8,
    rounds=4,
    versioned_rounds=2,
    small_files=60,
    medium_files=2,
    medium_bytes=1 * MIB,
    big_bytes=6 * MIB,
    race_files=20,
)

SHAPES = ("small", "medium", "large", "mixed")


# ---------------------------------------------------------------------------------------
# Data


def _text(rng: random.Random, size: int) -> bytes:
    """About ``size`` bytes of log-like text."""
    words = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "tau", "phi", "psi", "mu")
    lines = []
    total = 0
    while total < size:
        line = f"{rng.randrange(10**6)},{rng.random():.6f},{' '.join(rng.choices(words, k=5))}"
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()[:size]


def _write(path: Path, header: str, body: bytes) -> int:
    """Write ``header`` (which makes the file unique across trees) then ``body``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = f"{header}\n".encode() + body
    path.write_bytes(data)
    return len(data)


def _mostly_text(rng: random.Random, size: int) -> bytes:
    """``size`` bytes: a repeated text block with one random block in four."""
    block = _text(rng, 256 * KIB)
    chunks = []
    total = 0
    while total < size:
        chunk = rng.randbytes(len(block)) if rng.random() < 0.25 else block
        chunks.append(chunk[: size - total])
        total += len(chunks[-1])
    return b"".join(chunks)


def _small(root: Path, rng: random.Random, count: int, tag: str, prefix: str = "") -> int:
    """``count`` files of 1-8 KiB in directories of 50."""
    total = 0
    for index in range(count):
        path = root / f"{prefix}d{index // 50:02}" / f"{prefix}f{index:04}.txt"
        size = rng.randrange(1 * KIB, 8 * KIB)
        body = _text(rng, size) if index % 3 else rng.randbytes(size)
        total += _write(path, f"{tag}:{path.name}", body)
    return total


def make_tree(root: Path, shape: str, seed: int, sizes: Sizes) -> int:
    """A tree of one of the :data:`SHAPES`; its byte count. Every file is unique to ``seed``."""
    rng = random.Random(seed)
    tag = f"tree {seed} {shape}"
    root.mkdir(parents=True)
    total = 0
    if shape == "small":
        total += _small(root, rng, sizes.small_files, tag)
        (root / "empty" / "dir").mkdir(parents=True)  # empty directories come back too
    elif shape == "medium":
        total += _small(root, rng, 10, tag)
        for index in range(sizes.medium_files):
            path = root / "data" / f"part-{index:02}.csv"
            total += _write(path, f"{tag}:{path.name}", _mostly_text(rng, sizes.medium_bytes))
    elif shape == "large":
        total += _small(root, rng, 10, tag)
        for index in range(2):
            path = root / f"medium-{index}.log"
            total += _write(path, f"{tag}:{path.name}", _mostly_text(rng, sizes.medium_bytes))
        total += _write(root / "model.bin", tag, rng.randbytes(sizes.big_bytes))
    elif shape == "mixed":
        total += _small(root, rng, sizes.small_files // 2, tag)
        total += _write(root / "table.csv", tag, _mostly_text(rng, sizes.medium_bytes))
        # Just above one part: a multipart upload whose last part is small.
        total += _write(root / "blob.bin", tag, rng.randbytes(PART_SIZE + 512 * KIB))
        (root / "logs" / "none").mkdir(parents=True)
    else:
        raise ValueError(shape)
    return total


def make_racer(root: Path, seed: int, count: int, big: bool) -> int:
    """A racer's tree: its own file names, a shared name, and a multipart-sized file if ``big``."""
    rng = random.Random(seed)
    tag = f"racer {seed}"
    total = _small(root, rng, count, tag, prefix=f"s{seed}-")
    total += _write(root / "common.txt", tag, _text(rng, 2 * KIB))
    if big:
        total += _write(root / "big.bin", tag, rng.randbytes(PART_SIZE + 1 * MIB))
    return total


# ---------------------------------------------------------------------------------------
# Checks


@dataclass
class Checks:
    """Counters for the summary and the failures that make the run fail."""

    failures: list[str] = field(default_factory=list)
    lost: int = 0  # results (or files) that did not come back
    mixed: int = 0  # results that came back with files of another tree, or changed
    leftovers: int = 0  # objects, versions, claims or uploads no record accounts for
    files_checked: int = 0
    bytes_checked: int = 0
    objects_listed: int = 0
    multipart_objects: int = 0
    publishes_failed: int = 0  # phase 1 publishes that exited non-zero or printed no record

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"  FAIL: {message}", flush=True)


def _same_file(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(MIB), fb.read(MIB)
            if x != y:
                return False
            if not x:
                return True


def _entries(root: Path) -> tuple[dict[str, Path], set[str]]:
    files: dict[str, Path] = {}
    dirs: set[str] = set()
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_dir():
            dirs.add(rel)
        else:
            files[rel] = p
    return files, dirs


def get_and_compare(
    record: Mapping[str, Any], source: Path, target: Path, checks: Checks, what: str
) -> bool:
    """``get`` the record into ``target`` and compare with ``source``; whether all matched."""
    from publisher_core import get

    try:
        get(record, target)
    except Exception as exc:
        checks.lost += 1
        checks.fail(f"{what}: get failed: {type(exc).__name__}: {exc}")
        shutil.rmtree(target, ignore_errors=True)
        return False
    want_files, want_dirs = _entries(source)
    got_files, got_dirs = _entries(target)
    missing = sorted(want_files.keys() - got_files.keys()) + sorted(want_dirs - got_dirs)
    extra = sorted(got_files.keys() - want_files.keys()) + sorted(got_dirs - want_dirs)
    changed = sorted(
        rel
        for rel in want_files.keys() & got_files.keys()
        if not _same_file(want_files[rel], got_files[rel])
    )
    checks.files_checked += len(got_files)
    checks.bytes_checked += sum(p.stat().st_size for p in got_files.values())
    shutil.rmtree(target, ignore_errors=True)
    if missing:
        checks.lost += 1
        checks.fail(f"{what}: {len(missing)} entries did not come back, e.g. {missing[:3]}")
    if extra or changed:
        checks.mixed += 1
        checks.fail(
            f"{what}: mixed: {len(extra)} entries not in its tree (e.g. {extra[:3]}), "
            f"{len(changed)} files differ (e.g. {changed[:3]})"
        )
    return not (missing or extra or changed)


def list_keys(client: Any, bucket: str, prefix: str = "") -> dict[str, str]:
    """Key and ETag of each object under ``prefix`` (a multipart object's ETag has "-N")."""
    keys: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update({o["Key"]: o.get("ETag", "") for o in page.get("Contents", [])})
    return keys


def list_versions(client: Any, bucket: str, prefix: str = "") -> set[tuple[str, str, str]]:
    """(key, version, "version" or "marker") of everything under ``prefix``."""
    found: set[tuple[str, str, str]] = set()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        found |= {(v["Key"], v["VersionId"], "version") for v in page.get("Versions", [])}
        found |= {(m["Key"], m["VersionId"], "marker") for m in page.get("DeleteMarkers", [])}
    return found


def open_uploads(client: Any, bucket: str, prefix: str = "") -> list[str]:
    reply = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    return [u["Key"] for u in reply.get("Uploads", [])]


def expected_keys(record: Mapping[str, Any], source: Path) -> set[str]:
    """The objects a result is made of: its archive, or its files and manifest."""
    params = record["Params"]
    if params.get("Manifest"):
        files, _ = _entries(source)
        return {params["Key"] + rel for rel in files} | {params["Manifest"]}
    return {params["Key"]}


def pinned_versions(record: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(key, version) of every object a record in a versioned bucket pins."""
    from publisher_core import describe

    params = {name.lower(): value for name, value in record["Params"].items()}
    if not params.get("manifest"):
        return {(params["key"], str(params.get("versionid")))}
    pinned = {(params["manifest"], str(params.get("manifestversionid")))}
    for item in describe(record).items:
        version = parse_qs(urlsplit(item.url).query).get("versionId", ["None"])[0]
        pinned.add((params["key"] + item.path, version))
    return pinned


def check_bucket(
    client: Any,
    bucket: str,
    prefix: str,
    records: Sequence[tuple[Mapping[str, Any], Path]],
    versioned: bool,
    checks: Checks,
    what: str,
) -> None:
    """Under ``prefix``: exactly the records' objects (versions), no claim, no upload."""
    etags = list_keys(client, bucket, prefix)
    listed = set(etags)
    checks.objects_listed += len(listed)
    checks.multipart_objects += sum("-" in etag for etag in etags.values())
    wanted: set[str] = set()
    owners = Counter(record["Params"]["Key"] for record, _ in records)
    for record, source in records:
        wanted |= expected_keys(record, source)
        key = record["Params"]["Key"]
        # A prefix two racers both published to (versioned bucket) holds both results.
        if record["Params"].get("Manifest") and owners[key] == 1:
            under = {k for k in listed if k.startswith(key)}
            mine = expected_keys(record, source) - {record["Params"]["Manifest"]}
            if under != mine:
                checks.fail(
                    f"{what}: s3://{bucket}/{key} holds {len(under)} objects, its result "
                    f"{len(mine)} (extra {sorted(under - mine)[:3]}, "
                    f"missing {sorted(mine - under)[:3]})"
                )
    claims = sorted(k for k in listed if k.endswith(".claim"))
    stray = sorted(listed - wanted - set(claims))
    missing = sorted(wanted - listed)
    uploads = open_uploads(client, bucket, prefix)
    if claims:
        checks.leftovers += len(claims)
        checks.fail(f"{what}: claim objects left: {claims[:3]}")
    if stray:
        checks.leftovers += len(stray)
        checks.fail(f"{what}: {len(stray)} objects no record names, e.g. {stray[:3]}")
    if missing:
        checks.lost += len(missing)
        checks.fail(f"{what}: {len(missing)} objects of results are not listed: {missing[:3]}")
    if uploads:
        checks.leftovers += len(uploads)
        checks.fail(f"{what}: {len(uploads)} open multipart uploads: {uploads[:3]}")
    if versioned:
        pinned: set[tuple[str, str]] = set()
        for record, _ in records:
            pinned |= pinned_versions(record)
        versions = list_versions(client, bucket, prefix)
        unnamed = sorted((k, v, kind) for k, v, kind in versions if (k, v) not in pinned)
        if unnamed:
            checks.leftovers += len(unnamed)
            checks.fail(
                f"{what}: {len(unnamed)} object versions or delete markers no record pins, "
                f"e.g. {unnamed[:3]}"
            )


# ---------------------------------------------------------------------------------------
# Processes


_live: list[subprocess.Popen[bytes]] = []
"""Publishers started and not yet waited for: stopped (SIGTERM, then SIGKILL) on the way out."""


def _stop_live() -> None:
    for process in _live:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # a publish cleans up as after Ctrl-C
    for process in _live:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _live.clear()


@dataclass
class Run:
    """One publisher process and what it printed."""

    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    started: float
    ended: float = 0.0

    @property
    def code(self) -> int:
        code = self.process.returncode
        assert code is not None
        return code

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def record(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.stdout.read_text())
        return doc

    def errors(self) -> str:
        return self.stderr.read_text(errors="replace")


def start(
    name: str, command: list[str], env: Mapping[str, str], logs: Path, gated: bool = False
) -> Run:
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen(
            command,
            env=dict(env),
            stdin=subprocess.PIPE if gated else subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    _live.append(process)
    return Run(name, process, out, err, time.perf_counter())


def wait_all(runs: list[Run], timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    pending = list(runs)
    while pending:
        for run in list(pending):
            if run.process.poll() is not None:
                run.ended = time.perf_counter()
                pending.remove(run)
                _live.remove(run.process)
        if pending and time.perf_counter() > deadline:
            raise SystemExit(
                f"publishers still running after {timeout:.0f} s: "
                + ", ".join(r.name for r in pending)
            )
        time.sleep(0.01)


def publish_command(spec: Path, tree: Path) -> list[str]:
    return ["publish", str(spec), str(tree), "--output", "json"]


def write_spec(path: Path, endpoint: str, bucket: str, key: str, archive: bool) -> Path:
    spec = {
        "Type": "s3",
        "Bucket": bucket,
        "Key": key,
        "Compress": archive,
        "Endpoint": endpoint,
        "Overwrite": False,
    }
    path.write_text(json.dumps(spec, indent=1))
    return path


# ---------------------------------------------------------------------------------------
# The server


def memstore_bytes(planned: int) -> int:
    """The memstore cap for ``planned`` bytes of results.

    The cap counts each stored byte once (the OSD refuses writes at 95% of it); versions,
    RGW's own objects and data deleted but not yet garbage-collected (30 s here) take room
    too, hence 3x the data plus 512 MiB, at least the script's default 1 GiB, in whole
    256 MiB. The OSD's memory is about twice what it stores (measured on Ceph 16: 200 MiB
    of objects, 400 MiB of buffers) plus ~55 MiB.
    """
    wanted = 3 * planned + 512 * MIB
    return max(GIB, -(-wanted // (256 * MIB)) * 256 * MIB)


def _available_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * KIB
    return 0


def _rss(pid_file: Path) -> str:
    try:
        status = Path(f"/proc/{pid_file.read_text().strip()}/status").read_text()
    except (OSError, ValueError):
        return "unknown"
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    now = int(fields.get("VmRSS", "0 kB").split()[0]) // KIB
    peak = int(fields.get("VmHWM", "0 kB").split()[0]) // KIB
    return f"{now} MiB now, {peak} MiB peak"


def _stored(cluster: Path) -> str:
    """What the OSD's memstore holds now (its statfs): RGW's data and its own objects.

    (``ceph df`` shows nothing here: its figures come from a manager, which this cluster
    does not run.)
    """
    try:
        shown = subprocess.run(
            ["ceph", "-c", str(cluster / "ceph.conf"), "tell", "osd.0", "perf", "dump"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        stats = json.loads(shown.stdout)["osd"]
        used, total = int(stats["stat_bytes_used"]), int(stats["stat_bytes"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return "unknown"
    return f"{used / MIB:.0f} MiB of {total / MIB:.0f} MiB ({100 * used / max(total, 1):.0f}%)"


@dataclass
class Server:
    endpoint: str
    access_key: str
    secret_key: str
    cluster: Path | None = None  # our own Ceph RGW
    started_in: float = 0.0
    memstore: int = 0


@contextmanager
def ceph(work: Path, planned: int) -> Iterator[Server]:
    """A Ceph RGW of scripts/ceph-rgw.sh sized for ``planned`` bytes; always stopped."""
    cluster = work / "ceph"
    memstore = int(os.environ.get("CEPH_RGW_MEMSTORE_BYTES") or memstore_bytes(planned))
    available = _available_memory()
    print(
        f"starting Ceph RGW (memstore up to {memstore / GIB:.2f} GiB for "
        f"{planned / MIB:.0f} MiB of data; {available / GIB:.1f} GiB available) ...",
        flush=True,
    )
    if available and 2 * planned + 256 * MIB > available:
        print("  warning: the OSD may need more memory than is available", flush=True)
    began = time.perf_counter()
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", str(cluster)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "CEPH_RGW_MEMSTORE_BYTES": str(memstore)},
        )
        if started.returncode != 0:
            raise SystemExit(f"Ceph RGW did not start:\n{started.stderr[-3000:]}")
        env = dict(
            line.split("=", 1) for line in (cluster / "env").read_text().splitlines() if "=" in line
        )
        yield Server(
            env["S3_ENDPOINT"],
            env["S3_ACCESS_KEY"],
            env["S3_SECRET_KEY"],
            cluster,
            time.perf_counter() - began,
            memstore,
        )
    finally:
        if cluster.exists():
            subprocess.run(
                ["bash", str(SCRIPT), "stop", str(cluster)], capture_output=True, timeout=120
            )


@contextmanager
def given(endpoint: str) -> Iterator[Server]:
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        raise SystemExit("--endpoint needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set")
    yield Server(endpoint, access, secret)


def s3_client(server: Server) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def child_env(server: Server, work: Path, own_server: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PUBLISHER_S3_PART_SIZE": str(PART_SIZE),
            "TMPDIR": str(work / "tmp"),
        }
    )
    if own_server:  # nothing of the user's AWS set-up may reach our scratch server
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.pop(name, None)
    return env


def remove_bucket(client: Any, bucket: str) -> None:
    """Empty ``bucket`` (every version, marker and upload) and delete it; best effort."""
    try:
        for key in open_uploads(client, bucket):
            for upload in client.list_multipart_uploads(Bucket=bucket, Prefix=key)["Uploads"]:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
        found = sorted(list_versions(client, bucket))
        for start_at in range(0, len(found), 1000):
            batch = [{"Key": k, "VersionId": v} for k, v, _ in found[start_at : start_at + 1000]]
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch})
        client.delete_bucket(Bucket=bucket)
    except Exception as exc:
        print(f"  note: could not remove bucket {bucket}: {exc}", flush=True)


# ---------------------------------------------------------------------------------------
# Phases


@dataclass
class Plan:
    index: int
    shape: str
    archive: bool
    versioned: bool
    key: str
    tree: Path
    bytes: int

    @property
    def label(self) -> str:
        mode = "archive" if self.archive else "directory"
        bucket = "versioned" if self.versioned else "unversioned"
        return f"p{self.index:02} ({self.shape}, {mode}, {bucket})"


@dataclass
class Phase1:
    publishers: int = 0
    published: int = 0
    data_bytes: int = 0
    publish_wall: float = 0.0
    get_wall: float = 0.0
    durations: list[float] = field(default_factory=list)
    ignored_warnings: Counter[str] = field(default_factory=Counter)


def plan_publishers(work: Path, count: int, sizes: Sizes) -> list[Plan]:
    plans = []
    for index in range(count):
        shape = SHAPES[(index + index // 4) % len(SHAPES)]
        archive = index % 2 == 1
        versioned = (index // 2) % 2 == 1
        tree = work / "trees" / f"p{index:02}"
        size = make_tree(tree, shape, seed=1000 + index, sizes=sizes)
        key = f"load/p{index:02}" + ("" if archive else "/")
        plans.append(Plan(index, shape, archive, versioned, key, tree, size))
    return plans


def phase1(
    plans: list[Plan],
    server: Server,
    client: Any,
    buckets: Mapping[bool, str],
    env: Mapping[str, str],
    work: Path,
    checks: Checks,
) -> Phase1:
    stats = Phase1(publishers=len(plans), data_bytes=sum(p.bytes for p in plans))
    logs = work / "logs"
    specs = [
        write_spec(
            work / "specs" / f"p{p.index:02}.json",
            server.endpoint,
            buckets[p.versioned],
            p.key,
            p.archive,
        )
        for p in plans
    ]
    print(
        f"\nphase 1: {len(plans)} publishers at once "
        f"({stats.data_bytes / MIB:.0f} MiB, "
        f"{sum(len(_entries(p.tree)[0]) for p in plans)} files) ...",
        flush=True,
    )
    began = time.perf_counter()
    runs = [
        start(f"p{p.index:02}", [str(BIN / "publisher"), *publish_command(spec, p.tree)], env, logs)
        for p, spec in zip(plans, specs, strict=True)
    ]
    wait_all(runs, timeout=900)
    stats.publish_wall = time.perf_counter() - began
    stats.durations = [r.seconds for r in runs]
    print(
        f"  all exited in {stats.publish_wall:.1f} s (each took {min(stats.durations):.1f}-"
        f"{max(stats.durations):.1f} s, median {statistics.median(stats.durations):.1f} s)",
        flush=True,
    )
    records: dict[int, dict[str, Any]] = {}
    for plan, run in zip(plans, runs, strict=True):
        errors = run.errors()
        if IGNORED_WARNING in errors:
            stats.ignored_warnings["versioned" if plan.versioned else "unversioned"] += 1
        if run.code != 0:
            checks.publishes_failed += 1
            checks.fail(f"{plan.label}: publish exited {run.code}: {errors.strip()[-500:]}")
            continue
        try:
            records[plan.index] = run.record()
        except ValueError as exc:
            checks.publishes_failed += 1
            checks.fail(f"{plan.label}: no record on stdout ({exc})")
    stats.published = len(records)
    began = time.perf_counter()
    for plan in plans:
        if plan.index in records:
            get_and_compare(
                records[plan.index], plan.tree, work / "got" / plan.tree.name, checks, plan.label
            )
    stats.get_wall = time.perf_counter() - began
    print(
        f"  got {stats.published} results back in {stats.get_wall:.1f} s; "
        f"{checks.files_checked} files compared",
        flush=True,
    )
    for versioned, bucket in buckets.items():
        done = [
            (records[p.index], p.tree)
            for p in plans
            if p.versioned == versioned and p.index in records
        ]
        where = f"phase 1, {'versioned' if versioned else 'unversioned'} bucket"
        check_bucket(client, bucket, "load/", done, versioned, checks, where)
    return stats


@dataclass
class Races:
    rounds: int = 0
    one_winner: int = 0
    both_won: int = 0
    none_won: int = 0
    loser_codes: Counter[int] = field(default_factory=Counter)
    loser_stage: Counter[str] = field(default_factory=Counter)
    ignored_warnings: int = 0
    multipart_rounds: int = 0


def _stage(errors: str) -> str:
    if "holds its claim" in errors:
        return "claim refused"
    if "claimed it first" in errors:
        return "older claim version"
    if "already exists" in errors or "already holds" in errors:
        return "found the result"
    if "created by another" in errors:
        return "final write refused"
    return "other"


def race_round(
    number: int,
    versioned: bool,
    sizes: Sizes,
    server: Server,
    client: Any,
    bucket: str,
    env: Mapping[str, str],
    work: Path,
    checks: Checks,
    stats: Races,
) -> None:
    archive = number % 2 == 1
    big = number % 4 in (2, 3)
    tag = f"{'v' if versioned else 'u'}{number:03}"
    name = f"race/{tag}"
    key = name + ("" if archive else "/")
    what = (
        f"race {tag} ({'archive' if archive else 'directory'}{', multipart' if big else ''}, "
        f"{'versioned' if versioned else 'unversioned'})"
    )
    stats.rounds += 1
    stats.multipart_rounds += big
    trees = []
    for side in range(2):
        tree = work / "races" / f"{tag}-{side}"
        make_racer(
            tree,
            seed=10 * number + side + (5000 if versioned else 0),
            count=sizes.race_files + 10 * side,
            big=big,
        )
        trees.append(tree)
    spec = write_spec(work / "specs" / f"{tag}.json", server.endpoint, bucket, key, archive)
    gates = work / "gates"
    runs = [
        start(
            f"{tag}-{side}",
            [
                sys.executable,
                "-c",
                GATED_CLI,
                str(gates / f"{tag}-{side}"),
                *publish_command(spec, tree),
            ],
            env,
            work / "logs",
            gated=True,
        )
        for side, tree in enumerate(trees)
    ]
    deadline = time.perf_counter() + 120
    while not all((gates / f"{r.name}").exists() for r in runs):
        if any(r.process.poll() is not None for r in runs) or time.perf_counter() > deadline:
            raise SystemExit(
                f"{what}: a racer did not get ready: " + "; ".join(r.errors()[-300:] for r in runs)
            )
        time.sleep(0.005)
    for run in runs:  # the gate: both released within microseconds
        assert run.process.stdin is not None
        run.process.stdin.write(b"g")
        run.process.stdin.close()
    wait_all(runs, timeout=300)
    winners = [side for side, run in enumerate(runs) if run.code == 0]
    stats.ignored_warnings += sum(IGNORED_WARNING in r.errors() for r in runs)
    if len(winners) == 1:
        stats.one_winner += 1
    elif len(winners) == 2:
        stats.both_won += 1
    else:
        stats.none_won += 1
    for side, run in enumerate(runs):
        if run.code == 0:
            continue
        errors = run.errors()
        stats.loser_codes[run.code] += 1
        stats.loser_stage[_stage(errors)] += 1
        if run.code != 1 or not any(m in errors for m in LOSER_MESSAGES):
            checks.fail(f"{what}: racer {side} exited {run.code}: {errors.strip()[-500:]}")
    if len(winners) != 1:
        checks.fail(
            f"{what}: {len(winners)} racers won, exactly one must (exit codes "
            f"{[r.code for r in runs]})"
        )
    records = []
    for side in winners:
        try:
            record = runs[side].record()
        except ValueError as exc:
            checks.lost += 1
            checks.fail(f"{what}: winner {side} printed no record ({exc})")
            continue
        get_and_compare(
            record, trees[side], work / "got" / f"{tag}-{side}", checks, f"{what} winner {side}"
        )
        records.append((record, trees[side]))
    check_bucket(client, bucket, name, records, versioned, checks, what)
    result = "+".join(str(s) for s in winners) or "none"
    print(
        f"  {what}: winner {result}, exit codes {[r.code for r in runs]}, "
        f"{max(r.seconds for r in runs):.1f} s",
        flush=True,
    )
    for tree in trees:
        shutil.rmtree(tree, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Report


def _row(name: str, value: object, note: str = "") -> None:
    print(f"  {name:<38} {value!s:>12}  {note}".rstrip())


def summary(
    p1: Phase1,
    plain: Races,
    versioned: Races,
    checks: Checks,
    server: Server,
    wall: float,
) -> None:
    print("\nsummary")
    print(f"  {'':-<38} {'':->12}")
    _row(
        "publishers run at once",
        p1.publishers,
        "separate processes; directory and archive; unversioned and versioned bucket",
    )
    _row("results published", p1.published, f"publishes failed: {checks.publishes_failed}")
    _row("files checked by get", checks.files_checked, "byte for byte, phases 1 and 2")
    _row(
        "bytes checked by get",
        f"{checks.bytes_checked / MIB:.1f} MiB",
        f"phase 1 data: {p1.data_bytes / MIB:.1f} MiB",
    )
    _row(
        "phase 1 publish wall time",
        f"{p1.publish_wall:.1f} s",
        f"per publisher {min(p1.durations, default=0):.1f}-{max(p1.durations, default=0):.1f} s"
        f", {p1.data_bytes / MIB / max(p1.publish_wall, 1e-9):.0f} MiB/s overall",
    )
    _row("phase 1 get wall time", f"{p1.get_wall:.1f} s", "sequential, in this process")
    _row("objects listed", checks.objects_listed, f"{checks.multipart_objects} of them multipart")
    _row("lost", checks.lost)
    _row("mixed", checks.mixed)
    _row("leftovers", checks.leftovers, "claims, open uploads, unnamed objects or versions")
    _row("race rounds (unversioned)", plain.rounds, f"{plain.multipart_rounds} with multipart")
    _row(
        "  exactly one winner",
        plain.one_winner,
        f"both won {plain.both_won}, none won {plain.none_won}",
    )
    _row("  loser exit codes", _counts(plain.loser_codes))
    _row("  losers stopped at", _counts(plain.loser_stage))
    _row(
        "race rounds (versioned)",
        versioned.rounds,
        f"{versioned.multipart_rounds} with multipart"
        + ("; Ceph 16 ignores If-None-Match: the oldest claim wins" if server.cluster else ""),
    )
    _row(
        "  exactly one winner",
        versioned.one_winner,
        f"both won {versioned.both_won}, none won {versioned.none_won}",
    )
    _row("  loser exit codes", _counts(versioned.loser_codes) or "-")
    _row("  losers stopped at", _counts(versioned.loser_stage) or "-")
    _row(
        "'ignores If-None-Match' warnings",
        f"{p1.ignored_warnings['unversioned'] + plain.ignored_warnings} / "
        f"{p1.ignored_warnings['versioned'] + versioned.ignored_warnings}",
        "publishes in unversioned / versioned buckets",
    )
    if server.cluster is not None:
        _row(
            "Ceph RGW start-up",
            f"{server.started_in:.1f} s",
            f"memstore cap {server.memstore / GIB:.2f} GiB",
        )
        _row("memstore in use at the end", "", _stored(server.cluster))
        _row("ceph-osd resident memory", "", _rss(server.cluster / "pid" / "osd.pid"))
    _row("wall time", f"{wall:.1f} s", "everything, data and server start-up included")


def _counts(counter: Mapping[Any, int]) -> str:
    return ", ".join(f"{k} (x{v})" for k, v in sorted(counter.items(), key=str))


# ---------------------------------------------------------------------------------------


def _terminate(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller trees: a smoke run")
    parser.add_argument("--publishers", type=int, help="publishers at once in phase 1")
    parser.add_argument("--rounds", type=int, help="race rounds in the unversioned bucket")
    parser.add_argument(
        "--versioned-rounds", type=int, help="race rounds in the versioned bucket (reported apart)"
    )
    parser.add_argument(
        "--endpoint",
        help="use this S3 server (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) "
        "instead of starting Ceph RGW; the script's buckets are removed at the end",
    )
    parser.add_argument("--workdir", type=Path, help="where to put data (default: a temp dir)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    publishers = args.publishers if args.publishers is not None else sizes.publishers
    rounds = args.rounds if args.rounds is not None else sizes.rounds
    v_rounds = (
        args.versioned_rounds if args.versioned_rounds is not None else sizes.versioned_rounds
    )
    if publishers < 1 or rounds < 0 or v_rounds < 0:
        parser.error("--publishers must be at least 1, --rounds and --versioned-rounds at least 0")
    if not args.endpoint and shutil.which("radosgw") is None:
        raise SystemExit("Ceph RGW is not installed: run 'bash scripts/ceph-rgw.sh install'")
    began = time.perf_counter()
    checks = Checks()
    plain, versioned = Races(), Races()
    signal.signal(signal.SIGTERM, _terminate)  # stop publishers and server as on Ctrl-C
    with tempfile.TemporaryDirectory(prefix="publisher-load-", dir=args.workdir) as tmp:
        work = Path(tmp)
        for sub in ("specs", "logs", "gates", "got", "races", "tmp"):
            (work / sub).mkdir()
        print(f"generating data in {work} ...", flush=True)
        plans = plan_publishers(work, publishers, sizes)
        racer = sizes.race_files * 2 * 6 * KIB + 2 * (PART_SIZE + MIB)
        planned = sum(p.bytes for p in plans) + (rounds + v_rounds) * racer
        server_cm = given(args.endpoint) if args.endpoint else ceph(work, planned)
        try:
            with server_cm as server:
                client = s3_client(server)
                env = child_env(server, work, own_server=not args.endpoint)
                os.environ.update(  # for get and describe in this process
                    {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
                )
                run_id = uuid.uuid4().hex[:8]
                buckets = {False: f"load-{run_id}", True: f"load-{run_id}-v"}
                client.create_bucket(Bucket=buckets[False])
                client.create_bucket(Bucket=buckets[True])
                client.put_bucket_versioning(
                    Bucket=buckets[True], VersioningConfiguration={"Status": "Enabled"}
                )
                try:
                    p1 = phase1(plans, server, client, buckets, env, work, checks)
                    shutil.rmtree(work / "trees", ignore_errors=True)
                    print(f"\nphase 2: {rounds} race rounds (unversioned bucket) ...", flush=True)
                    for number in range(rounds):
                        race_round(
                            number,
                            False,
                            sizes,
                            server,
                            client,
                            buckets[False],
                            env,
                            work,
                            checks,
                            plain,
                        )
                    print(f"\nphase 2b: {v_rounds} race rounds (versioned bucket) ...", flush=True)
                    for number in range(v_rounds):
                        race_round(
                            number,
                            True,
                            sizes,
                            server,
                            client,
                            buckets[True],
                            env,
                            work,
                            checks,
                            versioned,
                        )
                    summary(p1, plain, versioned, checks, server, time.perf_counter() - began)
                finally:
                    _stop_live()
                    if args.endpoint:
                        for bucket in buckets.values():
                            remove_bucket(client, bucket)
        except KeyboardInterrupt:
            _stop_live()
            print("\ninterrupted: publishers stopped, server stopped", file=sys.stderr)
            return 130
    failed = {
        "publishes failed": checks.publishes_failed,
        "lost": checks.lost,
        "mixed": checks.mixed,
        "leftovers": checks.leftovers,
        "both won (unversioned)": plain.both_won,
        "none won (unversioned)": plain.none_won,
        "both won (versioned)": versioned.both_won,
        "none won (versioned)": versioned.none_won,
    }
    if checks.failures:
        named = ", ".join(f"{k} = {v}" for k, v in failed.items() if v) or "other checks"
        print(f"\nFAILED ({named}): {len(checks.failures)} checks", file=sys.stderr)
        for failure in checks.failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
