"""The benchmark suite: our publisher against what users script, on the same data and server.

    .venv/bin/python bench/run.py            # the full suite (make bench); writes bench/RESULTS.md
    .venv/bin/python bench/run.py --quick    # a one-minute smoke run at small sizes
    .venv/bin/python bench/run.py --only A,E --runs 5

Scenarios (see the README's "Benchmarks" section and bench/RESULTS.md):
  A  archive publish of 1 GiB of text      vs tar -czf | aws s3 cp -, Bacalhau's algorithm,
                                              and the compressor alone
  B  directory publish, 20,000 small files  vs aws s3 cp --recursive, rclone copy, Bacalhau's
                                              loop, and the AWS Common Runtime alone (the
                                              limit: crt_probe.py); at 0 ms and 20 ms per request
  C  directory publish, 4 x 256 MiB         vs aws s3 cp --recursive, rclone copy
  D  get of A and of B                      vs aws s3 cp (+ tar -xzf); B also vs rclone copy
  E  cold start                             vs aws --version
  F  A and B against the real Ceph RGW      (with --ceph; the server shares the two cores)

rclone is Debian's package: when it is missing the suite installs it (``apt-get install -y
rclone``, through ``sudo -n`` when not root); when that fails its rows are left out and the
report says why. It is configured through ``RCLONE_CONFIG_BENCH_*`` variables only.

Every command runs as its own process; its wall time and peak RSS (of the largest process
of a pipeline) are measured from outside. Each is run ``--runs`` times and the median is
reported, except that a baseline whose first run takes more than ``--slow`` seconds is not
repeated (it is far enough behind that noise cannot change the verdict). The servers are
the loopback null sink of ``null_sink.py`` (a separate process) and, with ``--ceph``, the
Ceph RGW of ``scripts/ceph-rgw.sh``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from data import make_small_files, make_text_tree  # noqa: E402

BIN = Path(sys.executable).parent
MIB = 1 << 20
LATENCY = 0.020  # the "remote region" setting: one 20 ms round trip per request


@dataclass(frozen=True)
class Sizes:
    """How big each scenario's data is."""

    text_bytes: int = 1 << 30
    text_files: int = 4  # A uses the tree whole; C is the same tree: 4 x 256 MiB
    small_files: int = 20_000
    sampled_files: int = 1_000  # Bacalhau's loop at 20 ms: ~21 ms per file, so sampled


QUICK = Sizes(text_bytes=48 * MIB, small_files=600, sampled_files=200)


@dataclass
class Row:
    """One tool in one scenario: its run times and peak RSS."""

    tool: str
    seconds: list[float]
    peak_rss_mib: float
    amount: float  # MB or files processed per run, for the rate column
    unit: str
    ours: bool = False
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rate(self) -> float:
        return self.amount / self.median


@dataclass
class Scenario:
    """A table of rows and the verdicts drawn from them."""

    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    verdicts: list[tuple[str, bool | None, str]] = field(default_factory=list)

    def row(self, tool: str) -> Row:
        return next(r for r in self.rows if r.tool == tool)

    def check(self, goal: str, met: bool | None, measured: str) -> None:
        """Record a target; ``met`` None: it could not be measured (``measured`` says why)."""
        self.verdicts.append((goal, met, measured))

    def check_rss(self, ours: Row, limit: float = 200) -> None:
        mib = ours.peak_rss_mib
        self.check(f"peak RSS <= {limit:.0f} MiB", mib <= limit, f"{mib:.0f} MiB")


def ensure_rclone() -> tuple[str | None, str]:
    """rclone's path, installing Debian's package when it is missing; or None and why not."""
    found = shutil.which("rclone")
    if found:
        return found, ""
    if shutil.which("apt-get") is None:
        return None, "rclone is not installed and there is no apt-get to install it with"
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if prefix and shutil.which("sudo") is None:
        return None, "rclone is not installed; installing it needs root or sudo"
    apt = [
        *prefix,
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "-o",
        "DPkg::Lock::Timeout=300",  # another install may hold the lock for a while
    ]
    install = [*apt, "install", "-y", "--no-install-recommends", "rclone"]
    print("installing rclone from Debian (apt-get install -y rclone) ...", flush=True)
    done = subprocess.run(install, capture_output=True, text=True)
    if done.returncode != 0:  # most often: no package lists yet
        update = subprocess.run([*apt, "update"], capture_output=True, text=True)
        done = (
            update
            if update.returncode != 0
            else subprocess.run(install, capture_output=True, text=True)
        )
    found = shutil.which("rclone")
    if found:
        return found, ""
    lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
    return None, f"rclone could not be installed (apt-get: {lines[-1].strip()})"


def _rss_mib(usage: object) -> float:
    return float(getattr(usage, "ru_maxrss", 0)) / 1024


def measure_once(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run ``command``; its wall seconds and the peak RSS (MiB) of its largest process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        shown = " ".join(command)
        raise SystemExit(
            f"benchmark command failed ({process.returncode}): {shown}\n{errors.decode()[-2000:]}"
        )
    return elapsed, _rss_mib(usage)


class Suite:
    """Runs commands, collects rows, and writes the report."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.scenarios: list[Scenario] = []
        self.notes: list[str] = []  # one line each, printed above the tables
        self._rclone: tuple[str | None, str] | None = None
        (work / "tmp").mkdir()
        aws_config = work / "aws-config"
        aws_config.write_text("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n")
        self.env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(work),
            "LANG": "C.UTF-8",
            "TMPDIR": str(work / "tmp"),
            "AWS_ACCESS_KEY_ID": "BENCHACCESSKEY",
            "AWS_SECRET_ACCESS_KEY": "bench-secret-key",
            "AWS_CONFIG_FILE": str(aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def rclone(self) -> str | None:
        """The rclone binary (installed on first use if need be), or None with a note why."""
        if self._rclone is None:
            self._rclone = ensure_rclone()
            path, why = self._rclone
            if path is None:
                self.notes.append(f"rclone rows left out: {why}.")
                print(f"note: rclone rows left out: {why}", flush=True)
        return self._rclone[0]

    def rclone_env(self, endpoint: str) -> dict[str, str]:
        """The environment for rclone: a remote ``bench:`` on ``endpoint``, no config file."""
        env = {k: v for k, v in self.env.items() if k != "AWS_CA_BUNDLE"}  # refused on http
        remote = {
            "TYPE": "s3",
            "PROVIDER": "Other",
            "ENDPOINT": endpoint,
            "ACCESS_KEY_ID": self.env["AWS_ACCESS_KEY_ID"],
            "SECRET_ACCESS_KEY": self.env["AWS_SECRET_ACCESS_KEY"],
            "REGION": "us-east-1",
            "FORCE_PATH_STYLE": "true",
            "LIST_VERSION": "2",  # "Other" defaults to ListObjects v1; the sink has v2
        }
        env.update({f"RCLONE_CONFIG_BENCH_{name}": value for name, value in remote.items()})
        env["RCLONE_CONFIG"] = str(self.work / "rclone.conf")  # absent: env vars only
        return env

    def run(
        self,
        scenario: Scenario,
        tool: str,
        command: list[str],
        *,
        amount: float,
        unit: str,
        ours: bool = False,
        before: Callable[[], None] | None = None,
        note: str = "",
        runs: int | None = None,
        env: dict[str, str] | None = None,
    ) -> Row:
        """Run ``command`` several times (``before`` each run, untimed) and record a row.

        ``env`` replaces the suite's environment for this command.
        """
        times: list[float] = []
        peak = 0.0
        wanted = runs or self.args.runs
        for _ in range(wanted):
            if before is not None:
                before()
            elapsed, rss = measure_once(command, self.env if env is None else env)
            times.append(elapsed)
            peak = max(peak, rss)
            if not ours and elapsed > self.args.slow:
                break
        row = Row(tool, times, peak, amount, unit, ours, note)
        scenario.rows.append(row)
        print(
            f"  {tool:44} {row.median:8.2f} s  {_rate(row):>14}  {peak:6.0f} MiB"
            f"  ({len(times)} run{'s' if len(times) > 1 else ''})",
            flush=True,
        )
        return row

    def scenario(self, key: str, title: str) -> Scenario:
        print(f"\n{key}. {title}", flush=True)
        found = Scenario(key, title)
        self.scenarios.append(found)
        return found


def _rate(row: Row) -> str:
    if row.unit == "MB":
        return f"{row.rate:.0f} MB/s"
    if row.unit == "files":
        return f"{row.rate:.0f} files/s"
    return ""


@contextmanager
def null_sink(latency: float = 0.0, *, keep: bool = False) -> Iterator[str]:
    """A null sink in its own process; yields its endpoint."""
    command = [sys.executable, str(HERE / "null_sink.py"), "--latency", str(latency)]
    if keep:
        command.append("--keep")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        yield process.stdout.readline().strip()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@contextmanager
def ceph(work: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The Ceph RGW of scripts/ceph-rgw.sh; yields its endpoint and credentials."""
    script = ROOT / "scripts" / "ceph-rgw.sh"
    where = work / "ceph"
    room = {**os.environ, "CEPH_RGW_MEMSTORE_BYTES": str(12 << 30)}  # several 1 GiB runs
    subprocess.run(
        ["bash", str(script), "start", str(where)], check=True, capture_output=True, env=room
    )
    try:
        env = dict(line.split("=", 1) for line in (where / "env").read_text().splitlines())
        yield (
            env["S3_ENDPOINT"],
            {
                "AWS_ACCESS_KEY_ID": env["S3_ACCESS_KEY"],
                "AWS_SECRET_ACCESS_KEY": env["S3_SECRET_KEY"],
            },
        )
    finally:
        subprocess.run(["bash", str(script), "stop", str(where)], check=False, capture_output=True)


def _spec(work: Path, name: str, endpoint: str, key: str, *, compress: bool) -> str:
    path = work / f"{name}.json"
    spec = {
        "Type": "s3",
        "Params": {"Bucket": "bench", "Key": key, "Endpoint": endpoint, "Compress": compress},
    }
    path.write_text(json.dumps(spec))
    return str(path)


def _publisher(*args: str) -> list[str]:
    return [str(BIN / "publisher"), *args]


def _aws(endpoint: str, *args: str) -> list[str]:
    return [str(BIN / "aws"), "s3", *args, "--endpoint-url", endpoint, "--only-show-errors"]


def _python(*args: str) -> list[str]:
    return [sys.executable, str(HERE / "baselines.py"), *args]


def _shell(script: str) -> list[str]:
    return ["bash", "-c", f"set -euo pipefail; {script}"]


def _fresh(path: Path) -> Callable[[], None]:
    return functools.partial(shutil.rmtree, path, ignore_errors=True)


def _aside(path: Path, trash: Path) -> Callable[[], None]:
    """Move ``path`` into ``trash`` so the next run writes a new tree; delete nothing.

    On ext4 without a journal, creating a file skips, one by one, every inode freed in the
    last 30-60 s (the kernel's ``recently_deleted``), so deleting 20,000 files before each
    run made every tool's creates slower and noisier: the same rclone copy took 4 s to
    15 s, and the profile of each was led by ``recently_deleted``. The trees go with the
    work directory when the suite ends.
    """

    def move() -> None:
        if path.exists():
            trash.mkdir(exist_ok=True)
            path.rename(trash / str(sum(1 for _ in trash.iterdir())))

    return move


def _megabytes(tree: Path) -> float:
    """MB (10^6 bytes) in the files directly under ``tree``."""
    return sum(p.stat().st_size for p in tree.iterdir()) / 1e6


def _file_count(tree: Path) -> int:
    return sum(1 for p in tree.rglob("*") if p.is_file())


# rclone's upload flags (../shared/PERF-FACTS.md): 64 files at a time, no bucket check, no
# listing or HEAD of the destination, no hash read back after the upload (the sink's ETags
# are not MD5s). Each single-part PUT still carries the file's Content-MD5.
RCLONE_UPLOAD = (
    "--transfers",
    "64",
    "--checkers",
    "16",
    "--s3-no-check-bucket",
    "--no-check-dest",
    "--s3-no-head",
    "--ignore-checksum",
)
RCLONE_UPLOAD_NOTE = (
    "Debian's rclone; --transfers 64 --checkers 16 --s3-no-check-bucket --no-check-dest "
    "--s3-no-head --ignore-checksum; sends each file's MD5"
)


def _rclone_publish(
    suite: Suite, s: Scenario, data: Path, endpoint: str, prefix: str, amount: float, unit: str
) -> Row | None:
    """``rclone copy`` of ``data`` to the null sink; None (and a note) without rclone."""
    rclone = suite.rclone()
    if rclone is None:
        return None
    return suite.run(
        s,
        "rclone copy",
        [rclone, "copy", str(data), f"bench:bench/{prefix}/rclone/", *RCLONE_UPLOAD, "-q"],
        amount=amount,
        unit=unit,
        note=RCLONE_UPLOAD_NOTE,
        env=suite.rclone_env(endpoint),
    )


def _versus(
    s: Scenario,
    goal: str,
    ours: Row,
    peer: Row | None,
    times: float,
    limit: Row | None = None,
) -> None:
    """The target "ours >= ``times`` x the rate of ``peer``" (not measured without a peer).

    With the ``limit`` row (the runtime alone, measured in the same run), a target the
    limit itself misses says so: that is the measured reason it cannot be met here.
    """
    if peer is None:
        s.check(goal, None, "not measured: rclone unavailable")
        return
    ratio = ours.rate / peer.rate
    measured = f"{ratio:.2f}x"
    if ratio < times and limit is not None:
        reach = limit.rate / peer.rate
        if reach < times:
            measured += (
                f"; the runtime alone (limit row) reaches {reach:.2f}x on this machine, "
                "so the target cannot be met here"
            )
        else:
            measured += f"; the runtime alone reaches {reach:.2f}x"
    s.check(goal, ratio >= times, measured)


def _directory_publishes(
    suite: Suite, s: Scenario, data: Path, endpoint: str, prefix: str, amount: float, unit: str
) -> tuple[Row, Row]:
    """Our directory-mode publish of ``data`` and ``aws s3 cp --recursive`` of the same."""
    spec = _spec(suite.work, f"{s.key}-dir", endpoint, f"{prefix}/result/", compress=False)
    ours = suite.run(
        s,
        "publisher publish (directory)",
        _publisher("publish", spec, str(data)),
        amount=amount,
        unit=unit,
        ours=True,
    )
    aws = suite.run(
        s,
        "aws s3 cp --recursive",
        _aws(endpoint, "cp", "--recursive", str(data), f"s3://bench/{prefix}/aws/"),
        amount=amount,
        unit=unit,
    )
    return ours, aws


def archive_scenario(suite: Suite, data: Path, endpoint: str, key: str, title: str) -> Scenario:
    """A: one archive of the text tree; ours vs the scripted pipeline and Bacalhau's."""
    mb = _megabytes(data)
    s = suite.scenario(key, title)
    spec = _spec(suite.work, f"{key}-archive", endpoint, "a/result.tar.gz", compress=True)
    ours = suite.run(
        s,
        "publisher publish (archive)",
        _publisher("publish", spec, str(data)),
        amount=mb,
        unit="MB",
        ours=True,
    )
    if key == "A":
        level = _setting("compression_level")
        threads = _setting("compression_threads")
        alone = suite.run(
            s,
            f"compressor alone (ISA-L level {level}, {threads} threads)",
            _python("compress", str(data), "--level", str(level), "--threads", str(threads)),
            amount=mb,
            unit="MB",
        )
        ratio = ours.median / alone.median
        s.check("end-to-end within 1.3x of the compressor alone", ratio <= 1.3, f"{ratio:.2f}x")
        s.check_rss(ours)
    scripted = suite.run(
        s,
        "tar -czf - DIR | aws s3 cp - s3://B/K",
        _shell(
            f"tar -czf - -C {data} . | "
            + " ".join(_aws(endpoint, "cp", "-", "s3://bench/a/scripted.tar.gz"))
        ),
        amount=mb,
        unit="MB",
    )
    speedup = scripted.median / ours.median
    s.check(">= 10x faster than tar -czf | aws s3 cp -", speedup >= 10, f"{speedup:.1f}x")
    if key == "A":
        suite.run(
            s,
            "Bacalhau's algorithm (tar.gz to a temp file, upload_file)",
            _python("bacalhau-archive", str(data), endpoint, "bench", "a/bacalhau.tar.gz"),
            amount=mb,
            unit="MB",
        )
    return s


def directory_scenario(
    suite: Suite,
    data: Path,
    sample: Path | None,
    endpoint: str,
    key: str,
    title: str,
    *,
    remote: bool,
    peers: bool = False,
    store: bool = False,
) -> Scenario:
    """B: many small files, one object each; ours vs aws s3 cp and Bacalhau's loop.

    With ``peers`` (B0, B20), also vs rclone copy, and the limit row: the same upload with
    the AWS Common Runtime alone (``crt_probe.py``). With ``store`` (F2, a real store),
    also vs rclone copy, which ours must be no slower than.
    """
    count = _file_count(data)
    s = suite.scenario(key, title)
    ours, aws = _directory_publishes(suite, s, data, endpoint, "b", count, "files")
    with_rclone = peers or store
    rclone = _rclone_publish(suite, s, data, endpoint, "b", count, "files") if with_rclone else None
    source, sampled = (sample, True) if sample is not None else (data, False)
    n = _file_count(source)
    loop = suite.run(
        s,
        "Bacalhau's loop (sequential put_object)",
        _python("bacalhau-dir", str(source), endpoint, "bench", "b/bacalhau/"),
        amount=n,
        unit="files",
        note=f"sampled: {n} of the {count} files, rate compared" if sampled else "",
    )
    vs_aws, vs_loop = ours.rate / aws.rate, ours.rate / loop.rate
    if remote:
        s.check(">= 3x the files/s of aws s3 cp --recursive", vs_aws >= 3, f"{vs_aws:.1f}x")
        s.check(">= 15x the files/s of Bacalhau's loop", vs_loop >= 15, f"{vs_loop:.1f}x")
    else:
        s.check("no slower than aws s3 cp --recursive", vs_aws >= 1, f"{vs_aws:.1f}x")
        s.check("no slower than Bacalhau's loop", vs_loop >= 1, f"{vs_loop:.1f}x")
    if store:
        _versus(s, "no slower than rclone copy", ours, rclone, 1.0)
    if peers:
        limit = _crt_limit(suite, s, data, endpoint, count)
        _versus(s, ">= 1.5x the files/s of rclone copy", ours, rclone, 1.5, limit)
        if not remote:
            s.check(">= 3,000 files/s", ours.rate >= 3000, f"{ours.rate:,.0f} files/s")
    s.check_rss(ours)
    return s


def _crt_limit(suite: Suite, s: Scenario, data: Path, endpoint: str, count: int) -> Row | None:
    """The limit row: the same files PUT by the AWS Common Runtime alone (crt_probe.py)."""
    if importlib.util.find_spec("awscrt") is None:
        why = "awscrt is not installed (it is in the dev group: make setup)"
        if not any(why in n for n in suite.notes):
            suite.notes.append(f"limit rows (crt_probe.py) left out: {why}.")
            print(f"note: limit rows left out: {why}", flush=True)
        return None
    return suite.run(
        s,
        "limit: awscrt S3Client alone (crt_probe.py)",
        [sys.executable, str(HERE / "crt_probe.py"), str(data), endpoint, "bench", "b/crt/"],
        amount=count,
        unit="files",
        note="awscrt S3Client PUT_OBJECT, 512 in flight, 100 Gbps target, each file read "
        "into memory, SHA-256 header checksum; no manifest, no retries of ours",
    )


def large_files_scenario(suite: Suite, data: Path, endpoint: str) -> Scenario:
    """C: a few large files in directory mode; ours vs aws s3 cp --recursive and rclone."""
    mb = _megabytes(data)
    files = _file_count(data)
    s = suite.scenario("C", f"directory publish of {files} x {mb / files:.0f} MB files (null sink)")
    ours, aws = _directory_publishes(suite, s, data, endpoint, "c", mb, "MB")
    rclone = _rclone_publish(suite, s, data, endpoint, "c", mb, "MB")
    ratio = aws.median / ours.median
    s.check(">= 1.5x aws s3 cp --recursive", ratio >= 1.5, f"{ratio:.1f}x")
    _versus(s, "no slower than rclone copy", ours, rclone, 1.0)
    s.check_rss(ours)
    return s


def get_scenarios(suite: Suite, big: Path, small: Path) -> None:
    """D: ``get`` (download, verify, extract) vs aws s3 cp (+ tar -xzf), from a keeping sink."""
    with null_sink(keep=True) as endpoint:
        results = {}
        for name, data, key, compress in (
            ("archive", big, "d/result.tar.gz", True),
            ("directory", small, "d/result/", False),
        ):
            spec = _spec(suite.work, f"D-{name}", endpoint, key, compress=compress)
            out = subprocess.run(
                _publisher("publish", spec, str(data)),
                env=suite.env,
                check=True,
                capture_output=True,
                text=True,
            )
            results[name] = suite.work / f"D-{name}-result.yaml"
            results[name].write_text(out.stdout)
        target = suite.work / "restored"
        mb = _megabytes(big)

        s = suite.scenario("D1", f"get of the archive of A ({mb:.0f} MB of text; null sink)")
        ours = suite.run(
            s,
            "publisher get (verify + extract)",
            _publisher("get", str(results["archive"]), "-o", str(target)),
            amount=mb,
            unit="MB",
            ours=True,
            before=_fresh(target),
        )
        base = suite.run(
            s,
            "aws s3 cp s3://B/K - | tar -xzf -",
            _shell(
                f"mkdir -p {target} && "
                + " ".join(_aws(endpoint, "cp", "s3://bench/d/result.tar.gz", "-"))
                + f" | tar -xzf - -C {target}"
            ),
            amount=mb,
            unit="MB",
            before=_fresh(target),
        )
        ratio = base.median / ours.median
        s.check(">= 2x aws s3 cp | tar -xzf (ours verifies SHA-256)", ratio >= 2, f"{ratio:.1f}x")
        s.check_rss(ours)

        _directory_get(suite, "D2", "null sink", endpoint, results["directory"], small)
    with null_sink(0.02, keep=True) as endpoint:
        spec = _spec(suite.work, "D20-directory", endpoint, "d/result/", compress=False)
        out = subprocess.run(
            _publisher("publish", spec, str(small)),
            env=suite.env,
            check=True,
            capture_output=True,
            text=True,
        )
        result = suite.work / "D20-directory-result.yaml"
        result.write_text(out.stdout)
        _directory_get(
            suite, "D20", "null sink, 20 ms per request", endpoint, result, small, aws=False
        )


def _directory_get(
    suite: Suite,
    key: str,
    where: str,
    endpoint: str,
    result: Path,
    small: Path,
    *,
    aws: bool = True,
) -> None:
    """D2 and D20: get of B's directory result vs aws s3 cp --recursive and rclone copy.

    D2 (no latency) must be 2x aws s3 cp and aims at 1.5x rclone; D20 (20 ms per request,
    a store far away) must be no slower than rclone, which fetches 64 files at once.
    """
    target = suite.work / "restored"
    count = _file_count(small)
    s = suite.scenario(key, f"get of the directory of B ({count} files; {where})")
    ours = suite.run(
        s,
        "publisher get (verify)",
        _publisher("get", str(result), "-o", str(target)),
        amount=count,
        unit="files",
        ours=True,
        before=_aside(target, suite.work / "trash"),
    )
    if aws:
        base = suite.run(
            s,
            "aws s3 cp --recursive",
            _aws(endpoint, "cp", "--recursive", "s3://bench/d/result/", str(target)),
            amount=count,
            unit="files",
            before=_aside(target, suite.work / "trash"),
        )
        ratio = base.median / ours.median
        s.check(">= 2x aws s3 cp --recursive (ours verifies SHA-256)", ratio >= 2, f"{ratio:.1f}x")
    rclone, copied = suite.rclone(), None
    if rclone is not None:
        # --fast-list: one flat ListObjectsV2 walk (the sink has no delimiter listing).
        # rclone checks each file's size and its MD5 against the ETag (the keeping sink's
        # ETags are real MD5s); ours checks each file's size and SHA-256 against the
        # manifest, whose own SHA-256 is in the result record.
        copied = suite.run(
            s,
            "rclone copy",
            [
                rclone,
                "copy",
                "bench:bench/d/result/",
                str(target),
                "--transfers",
                "64",
                "--checkers",
                "16",
                "--fast-list",
                "-q",
            ],
            amount=count,
            unit="files",
            before=_aside(target, suite.work / "trash"),
            note="--transfers 64 --checkers 16 --fast-list; verifies the MD5 of every "
            "file against its ETag, ours the SHA-256 of every file against the manifest",
            env=suite.rclone_env(endpoint),
        )
    limit = _crt_get_limit(suite, s, small, endpoint, target, count)
    if aws:
        target_text, wanted = (
            ">= 1.5x the files/s of rclone copy (ours verifies SHA-256, rclone MD5)",
            1.5,
        )
    else:
        target_text, wanted = "no slower than rclone copy (ours verifies SHA-256, rclone MD5)", 1.0
    _versus(s, target_text, ours, copied, wanted, limit)
    s.check_rss(ours)
    _aside(target, suite.work / "trash")()


def _crt_get_limit(
    suite: Suite, s: Scenario, data: Path, endpoint: str, target: Path, count: int
) -> Row | None:
    """D2's and D20's limit row: the same files fetched into files by the runtime alone."""
    if importlib.util.find_spec("awscrt") is None:
        return None
    return suite.run(
        s,
        "limit: awscrt S3Client alone (crt_probe.py --get)",
        [
            sys.executable,
            str(HERE / "crt_probe.py"),
            str(data),
            endpoint,
            "bench",
            "d/result/",
            "--get",
            str(target),
        ],
        amount=count,
        unit="files",
        before=_aside(target, suite.work / "trash"),
        note="awscrt S3Client GET_OBJECT, 256 in flight, each body written to a new file "
        "by the runtime, read back and compared; no description, no staging, no retries of ours",
    )


def cold_start_scenario(suite: Suite) -> None:
    """E: start-up of the CLI, and that list/validate do not import boto3."""
    s = suite.scenario("E", "cold start")
    spec = _spec(suite.work, "E", "https://s3.example.com", "e/{jobID}/", compress=False)
    runs = max(5, suite.args.runs)
    rows = {
        name: suite.run(
            s, name, command, amount=1, unit="", ours=name.startswith("publisher"), runs=runs
        )
        for name, command in (
            ("publisher --help", _publisher("--help")),
            ("publisher list", _publisher("list")),
            ("publisher validate SPEC", _publisher("validate", spec)),
            ("aws --version", [str(BIN / "aws"), "--version"]),
        )
    }
    probe = (
        "import sys; from publisher_core.cli import run; "
        f"run(['list']); run(['validate', {spec!r}]); "
        "print(json.dumps(sorted(m for m in ('boto3', 'botocore', 'awscrt', 'isal') "
        "if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + probe],
        env=suite.env,
        check=True,
        capture_output=True,
        text=True,
    )
    imported = json.loads(out.stdout.strip().splitlines()[-1])
    for name in ("publisher list", "publisher validate SPEC"):
        median = rows[name].median
        s.check(f"{name} under 0.3 s", median < 0.3, f"{median:.3f} s")
    s.check(
        "list and validate import no boto3/botocore/awscrt",
        not imported,
        ", ".join(imported) or "none imported",
    )


def _setting(name: str) -> int:
    from publisher_s3 import S3Settings

    return int(getattr(S3Settings(), name))


def machine() -> list[str]:
    """Facts about this machine and the tools measured."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = next(
            int(line.split()[1]) // (1024 * 1024)
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        memory = 0
    versions = ", ".join(
        f"{name} {_version(name)}"
        for name in (
            "publisher-core",
            "publisher-s3",
            "boto3",
            "botocore",
            "awscli",
            "isal",
            "awscrt",
        )
    )
    tar = subprocess.run(["tar", "--version"], capture_output=True, text=True).stdout
    rclone = shutil.which("rclone")
    if rclone:
        shown = subprocess.run([rclone, "version"], capture_output=True, text=True).stdout
        versions += f", {shown.splitlines()[0] if shown else 'rclone'}"
    return [
        f"- CPU: {cpu}; {len(os.sched_getaffinity(0))} cores available; {memory} GiB RAM",
        f"- {platform.system()} {platform.release()}; Python {platform.python_version()}",
        f"- {versions}; {tar.splitlines()[0] if tar else 'tar unknown'}",
    ]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def report(suite: Suite, started: float, command: str) -> str:
    """The results as Markdown (what bench/RESULTS.md holds)."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{command}` on {now} in {time.time() - started:.0f} s; "
        "do not edit by hand, rerun it.",
        "",
        *machine(),
        "",
        f"Median of up to {suite.args.runs} runs per tool (a baseline slower than "
        f"{suite.args.slow:.0f} s per run is run once). Times are wall clock of a fresh "
        "process, start-up included; peak RSS is that of the largest process. "
        '"vs ours" is how many times longer the tool took than ours (for a sampled run: '
        "how many times our rate is its rate). The null sink is a loopback server in its own "
        "process that discards (or, for D, keeps in memory) what it is sent; at 20 ms it "
        "sleeps 20 ms before each reply.",
        "",
    ]
    if suite.args.quick:
        lines += [
            "**A smoke run at small sizes**: start-up dominates every figure, so the targets "
            "below are not meaningful here; `make bench` measures them.",
            "",
        ]
    if suite.notes:
        lines += [*(f"Note: {n}" for n in suite.notes), ""]
    verdicts = []
    for s in suite.scenarios:
        ours = next((r for r in s.rows if r.ours), None)
        lines += [
            f"## {s.key}. {s.title}",
            "",
            "| tool | runs | median s | rate | peak RSS MiB | vs ours |",
            "|---|---|---|---|---|---|",
        ]
        for r in s.rows:
            if ours is None or r.unit == "":
                versus = ""
            elif r is ours:
                versus = "1.00"
            else:
                versus = f"{ours.rate / r.rate:.2f}" if r.note else f"{r.median / ours.median:.2f}"
            tool = f"**{_cell(r.tool)}**" if r.ours else _cell(r.tool)
            note = f" ({r.note})" if r.note else ""
            spread = f" ({min(r.seconds):.2f}-{max(r.seconds):.2f})" if len(r.seconds) > 1 else ""
            lines.append(
                f"| {tool}{note} | {len(r.seconds)} | {r.median:.2f}{spread} | {_rate(r)} | "
                f"{r.peak_rss_mib:.0f} | {versus} |"
            )
        lines.append("")
        verdicts += [(s.key, *v) for v in s.verdicts]
    lines += ["## Targets", "", "| scenario | target | measured | met |", "|---|---|---|---|"]
    shown = {True: "yes", False: "**no**", None: "not measured"}
    lines += [
        f"| {k} | {_cell(goal)} | {measured} | {shown[met]} |"
        for k, goal, met, measured in verdicts
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke run")
    parser.add_argument("--only", default="A,B,C,D,E", help="scenarios to run, e.g. A,E")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool (median reported)")
    parser.add_argument(
        "--slow",
        type=float,
        default=30.0,
        help="do not repeat a baseline whose run takes longer (seconds)",
    )
    parser.add_argument("--ceph", action="store_true", help="also run A and B on Ceph RGW (F)")
    parser.add_argument(
        "--out",
        type=Path,
        help="write the Markdown report here "
        "(default: bench/RESULTS.md for a full run, nowhere for --quick)",
    )
    parser.add_argument("--workdir", type=Path, help="where to put data (default: a temp dir)")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    sizes = QUICK if args.quick else Sizes()
    only = set(args.only.upper().replace(" ", "").split(","))
    out = args.out or (None if args.quick or only != set("ABCDE") else HERE / "RESULTS.md")
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="publisher-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        suite = Suite(args, work)
        print(f"generating data in {work} ...", flush=True)
        big = make_text_tree(work / "text", sizes.text_bytes, files=sizes.text_files)
        small = make_small_files(work / "small", sizes.small_files)
        sample = make_small_files(work / "sample", sizes.sampled_files)
        mb = sizes.text_bytes / MIB
        if "A" in only:
            with null_sink() as endpoint:
                archive_scenario(
                    suite,
                    big,
                    endpoint,
                    "A",
                    f"archive publish of {mb:.0f} MiB of text (null sink)",
                )
        if "B" in only:
            with null_sink() as endpoint:
                directory_scenario(
                    suite,
                    small,
                    None,
                    endpoint,
                    "B0",
                    f"directory publish of {sizes.small_files} files of 2-8 KiB (null sink, 0 ms)",
                    remote=False,
                    peers=True,
                )
            with null_sink(LATENCY) as endpoint:
                directory_scenario(
                    suite,
                    small,
                    sample,
                    endpoint,
                    "B20",
                    f"directory publish of {sizes.small_files} files of 2-8 KiB "
                    f"(null sink, {LATENCY * 1000:.0f} ms per request)",
                    remote=True,
                    peers=True,
                )
        if "C" in only:
            with null_sink() as endpoint:
                large_files_scenario(suite, big, endpoint)
        if "D" in only:
            get_scenarios(suite, big, small)
        if "E" in only:
            cold_start_scenario(suite)
        if args.ceph or "F" in only:
            with ceph(work) as (endpoint, credentials):
                saved = dict(suite.env)
                suite.env.update(credentials)
                _make_bucket(endpoint, credentials)
                archive_scenario(
                    suite,
                    big,
                    endpoint,
                    "F1",
                    f"archive publish of {mb:.0f} MiB of text (Ceph RGW)",
                )
                directory_scenario(
                    suite,
                    small,
                    None,
                    endpoint,
                    "F2",
                    f"directory publish of {sizes.small_files} files (Ceph RGW)",
                    remote=False,
                    store=True,
                )
                suite.env = saved
    command = (
        "make bench"
        if not args.quick and out == HERE / "RESULTS.md"
        else " ".join(["bench/run.py", *sys.argv[1:]])
    )
    text = report(suite, started, command)
    print()
    for note in suite.notes:
        print(f"Note: {note}")
    print(text[text.index("## Targets") :])
    if out is not None:
        out.write_text(text)
        print(f"wrote {out}")
    print(f"(suite ran in {time.time() - started:.0f} s)")


def _make_bucket(endpoint: str, credentials: dict[str, str]) -> None:
    import boto3
    from botocore.config import Config

    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}),
    ).create_bucket(Bucket="bench")


if __name__ == "__main__":
    main()
