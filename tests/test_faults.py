"""Faults between the client and a real S3 server, injected by ``tests/fault_proxy.py``.

Every scenario runs against moto over HTTP and Ceph RGW, in each mode (a directory
publish, an archive publish, and ``get`` of each), in two variants:

- ``transient``: the fault hits the first two matching requests; retries must fix it,
  and the result must round-trip verified;
- ``persistent``: the fault hits one object every time; the run either still succeeds
  (verified) or fails with one error line saying how many attempts were made, leaving no
  object, no incomplete multipart upload and no output directory behind.

Each run adds a row to the table printed at the end of the session (``fault_table``).
Retries are bounded by ``PUBLISHER_S3_MAX_ATTEMPTS=3`` and ``get --attempts 3``, and
timeouts are one second, so the whole matrix stays quick.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import CLIResult
from tests.fault_proxy import Action, Fault, FaultProxy, fault_proxy
from tests.fault_table import ROWS, Row
from tests.s3_servers import S3Server
from tests.trees import build, snapshot

ATTEMPTS = 3
SETTINGS = {
    "PUBLISHER_S3_MAX_ATTEMPTS": str(ATTEMPTS),
    "PUBLISHER_S3_READ_TIMEOUT": "1",
    "PUBLISHER_S3_CONNECT_TIMEOUT": "1",
    "PUBLISHER_S3_PART_SIZE": str(5 * 2**20),
    "PUBLISHER_S3_CONCURRENCY": "4",
    "PUBLISHER_S3_PROCESSES": "1",
}
GET_OPTIONS = ["--attempts", str(ATTEMPTS), "--timeout", "1"]


@dataclass(frozen=True)
class Scenario:
    """A fault as the proxy injects it; ``request_body`` faults hit PUTs, others replies."""

    name: str
    action: Action
    status: int = 503
    code: str = "SlowDown"
    retry_after: int | None = None
    seconds: float = 0.0
    get_only: bool = False
    on_replies_with_bodies: bool = False


SCENARIOS = [
    Scenario("503 SlowDown", "status"),
    Scenario("503 SlowDown, Retry-After 1", "status", retry_after=1),
    Scenario("500 InternalError", "status", status=500, code="InternalError"),
    Scenario("429 TooManyRequests", "status", status=429, code="TooManyRequests"),
    Scenario("reset mid-body", "reset-request"),
    Scenario("stall past read timeout", "stall", seconds=3.0),
    Scenario("truncated body", "truncate", on_replies_with_bodies=True),
    Scenario("corrupted GET body", "corrupt", get_only=True),
    Scenario("200 with XML error", "ok-error", code="InternalError"),
]
MODES = ["directory", "archive", "get directory", "get archive"]
CASES = [
    pytest.param(scenario, mode, variant, id=f"{scenario.name}-{mode}-{variant}")
    for scenario in SCENARIOS
    for mode in MODES
    if mode.startswith("get") or not scenario.get_only
    for variant in ("transient", "persistent")
]


def result_tree(root: Path) -> Path:
    """Small files (single PUTs) and one file of two parts (a multipart upload)."""
    return build(
        {
            "a.txt": b"alpha\n",
            "b.txt": b"bravo\n" * 100,
            "c.txt": b"charlie\n",
            "sub": {"d.txt": b"delta\n", "empty": {}},
            "big.bin": os.urandom(6 * 2**20 + 77),
        },
        root,
    )


def leftovers(server: S3Server, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
    """Objects and incomplete multipart uploads under ``prefix``, read behind the proxy."""
    client = server.client()
    objects = [
        o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    ]
    uploads = [
        u["Key"]
        for u in client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    ]
    return objects, uploads


def fault_for(
    scenario: Scenario, mode: str, variant: str, bucket: str, prefix: str, archive_key: str
) -> Fault:
    """The fault of ``scenario`` aimed at this mode's requests."""
    if mode.startswith("get"):
        method = "GET"
        one = re.escape(archive_key) if mode == "get archive" else re.escape(prefix) + r"c\.txt"
    elif scenario.on_replies_with_bodies:  # PUT replies are empty; POST replies are XML
        method = "POST"
        big = archive_key if mode == "archive" else prefix + "big.bin"
        one = re.escape(big) + r"\?uploads"
    else:
        method = "PUT"
        one = (
            re.escape(archive_key) + r"\?.*partNumber=2"
            if mode == "archive"
            else re.escape(prefix) + r"c\.txt(\?|$)"
        )
    base = re.escape(prefix.rstrip("/"))
    target = f"^/{bucket}/{base}" if variant == "transient" else f"^/{bucket}/{one}"
    action: Action = scenario.action
    if mode.startswith("get") and action == "reset-request":  # a GET has no body: cut the reply
        action = "reset-response"
    return Fault(
        action=action,
        method=method,
        target=target,
        times=2 if variant == "transient" else None,
        status=scenario.status,
        code=scenario.code,
        retry_after=scenario.retry_after,
        seconds=scenario.seconds,
    )


@pytest.fixture
def proxied(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy in front of the server, and the settings of the fault suite."""
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    with fault_proxy(s3.endpoint) as proxy:
        yield proxy


def spec_for(proxy: FaultProxy, bucket: str, prefix: str, archive: bool) -> str:
    return (
        f"s3://{bucket}/{prefix},opt=endpoint={proxy.endpoint},opt=compress={str(archive).lower()}"
    )


def staging_left(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".get-" in p.name or p.name == "out")


@pytest.mark.parametrize(("scenario", "mode", "variant"), CASES)
def test_fault(
    s3: S3Server,
    proxied: FaultProxy,
    cli_in_process: Callable[..., CLIResult],
    tmp_path: Path,
    scenario: Scenario,
    mode: str,
    variant: str,
) -> None:
    """Retries fix what they can; anything else fails once, clearly, leaving nothing."""
    source = result_tree(tmp_path / "result")
    bucket = s3.new_bucket()
    prefix = f"runs/{uuid.uuid4().hex[:8]}/"
    archive = mode.endswith("archive")
    archive_key = prefix.rstrip("/") + ".tar.gz"
    spec = spec_for(proxied, bucket, archive_key if archive else prefix, archive)
    record = tmp_path / "result.yaml"
    fault = fault_for(scenario, mode, variant, bucket, prefix, archive_key)
    if mode.startswith("get"):
        published = cli_in_process("publish", spec, str(source))
        assert published.code == 0, published.err
        record.write_text(published.out)
        proxied.add(fault)
        run = cli_in_process("get", str(record), "-o", str(tmp_path / "out"), *GET_OPTIONS)
    else:
        proxied.add(fault)
        run = cli_in_process("publish", spec, str(source))
        record.write_text(run.out)
    assert fault.hits > 0, f"the fault never fired: {proxied.requests}"
    proxied.clear()

    objects, uploads = leftovers(s3, bucket, prefix.rstrip("/"))
    stray: list[str] = []
    lost = False
    if run.code == 0:
        outcome = "recovered"
        if not mode.startswith("get"):
            fetched = cli_in_process("get", str(record), "-o", str(tmp_path / "out"))
            assert fetched.code == 0, fetched.err
            expected = 1 if archive else 6  # five files and the manifest
            stray = objects[expected:] if len(objects) > expected else []
        lost = snapshot(tmp_path / "out") != snapshot(source)
    else:
        outcome = "failed cleanly"
        lines = run.err.strip().splitlines()
        assert run.code == 1 and run.out == "" and len(lines) == 1, run.err
        assert lines[0].startswith("error: ")
        assert re.search(rf"after {ATTEMPTS} attempts|read {ATTEMPTS} times", lines[0]), lines[0]
        stray = staging_left(tmp_path) if mode.startswith("get") else objects
    tried = re.search(r"after (\d+) attempts|read (\d+) times", run.err)
    ROWS.append(
        Row(
            server=s3.name,
            scenario=scenario.name,
            mode=mode,
            variant=variant,
            outcome=outcome,
            objects_left=len(stray),
            uploads_left=len(uploads),
            lost=lost or bool(stray) or bool(uploads),
            attempts=f"{tried.group(1) or tried.group(2)} attempts" if tried else "",
        )
    )
    if variant == "transient":
        assert run.code == 0, f"a transient {scenario.name} was not retried: {run.err}"
    assert not lost, "the published result does not round-trip"
    assert stray == [], f"left behind: {stray}"
    assert uploads == [], f"incomplete multipart uploads left: {uploads}"


def _wait_for(proxy: FaultProxy, method: str, count: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while sum(m == method for m, _, _ in proxy.requests) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the publish never got going"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("mode", ["directory", "archive", "get directory"])
def test_a_signal_mid_flight_cleans_up(
    s3: S3Server,
    proxied: FaultProxy,
    cli_in_process: Callable[..., CLIResult],
    tmp_path: Path,
    mode: str,
    sig: signal.Signals,
) -> None:
    """Ctrl-C or a SIGTERM part-way: exit 130/143, one line, and nothing left behind."""
    source = result_tree(tmp_path / "result")
    for n in range(30):
        (source / f"many-{n:02d}.txt").write_text(f"file {n}\n")
    bucket = s3.new_bucket()
    prefix = f"runs/{uuid.uuid4().hex[:8]}/"
    key = prefix.rstrip("/") + ".tar.gz" if mode == "archive" else prefix
    spec = spec_for(proxied, bucket, key, mode == "archive")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if mode == "get directory":
        published = cli_in_process("publish", spec, str(source))
        assert published.code == 0, published.err
        (tmp_path / "result.yaml").write_text(published.out)
        argv = ["get", "result.yaml", "-o", "out"]
        method = "GET"
    else:
        argv = ["publish", spec, "result"]
        method = "PUT"
    proxied.add(
        Fault(action="delay", method=method, target=f"^/{bucket}/", seconds=0.3, times=None)
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "publisher_core.cli", *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(proxied, method, 1 if mode == "archive" else 3, process)
        process.send_signal(sig)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    proxied.clear()
    name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
    assert process.returncode == (130 if sig == signal.SIGINT else 143), err
    assert out == ""
    assert (
        err.strip().splitlines()[-1]
        == f"error: {'interrupted' if name == 'SIGINT' else 'terminated'} ({name})"
    )
    objects, uploads = leftovers(s3, bucket, prefix.rstrip("/"))
    if mode == "get directory":
        stray = staging_left(tmp_path)
        assert len(objects) == 36  # the published result stays
    else:
        stray = objects
    ROWS.append(
        Row(
            server=s3.name,
            scenario=f"{name} mid-flight",
            mode=mode,
            variant="once",
            outcome="failed cleanly",
            objects_left=len(stray),
            uploads_left=len(uploads),
            lost=bool(stray) or bool(uploads),
        )
    )
    assert stray == [], f"left behind: {stray}"
    assert uploads == [], f"incomplete multipart uploads left: {uploads}"
