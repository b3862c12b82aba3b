"""Interrupts swept across a whole publish: whenever Ctrl-C or SIGTERM arrives, the publish
ends within seconds with exit 130/143 and one line, leaving nothing at its key and no
incomplete multipart upload.

Each sweep first times an uninterrupted publish of the same tree, from the moment the
upload starts (the ``--debug`` line ``... upload to s3://...``) to its end, then sends the
signal at points spread over that span: while parts are compressed and sent, while a
multipart upload is completed, while the manifest is written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from publisher_s3._cleanup import WriteLog
from tests.s3_servers import S3Server, s3_spec

PART = 5 * 2**20
SETTINGS = {"PUBLISHER_S3_PART_SIZE": str(PART), "PYTHONUNBUFFERED": "1"}
POINTS = 6
"""Interrupt points per sweep, spread over the measured upload."""
DEADLINE = 10.0
"""Seconds an interrupted publish may take to clean up and exit."""


def archive_tree(root: Path) -> Path:
    """Three 16 MiB files of random bytes: a multipart archive of about ten parts."""
    root.mkdir()
    for n in range(3):
        (root / f"part-{n}.bin").write_bytes(os.urandom(16 * 2**20))
    return root


def directory_tree(root: Path) -> Path:
    """Two multipart files and 900 small ones (enough for a helper process)."""
    root.mkdir()
    for n in range(2):
        (root / f"big-{n}.bin").write_bytes(os.urandom(12 * 2**20))
    small = root / "small"
    small.mkdir()
    for n in range(900):
        (small / f"{n:04d}.txt").write_text(f"line {n}\n" * 20)
    return root


@dataclass
class Run:
    """A ``publisher --debug publish`` in a subprocess, its stderr read as it comes."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    upload_started_at: float = 0.0

    def read(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            for line in self.process.stderr:
                self.lines.append(line.rstrip("\n"))
                if not self.started.is_set() and " upload to s3://" in line:
                    self.upload_started_at = time.monotonic()
                    self.started.set()
        self.started.set()


def start(spec: dict[str, object], source: Path, cwd: Path) -> tuple[Run, threading.Thread]:
    """Start a publish of ``source`` as ``spec`` says, reading its stderr in a thread."""
    (cwd / "spec.json").write_text(json.dumps(spec))
    with (cwd / "result.yaml").open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "publisher_core.cli",
                "--debug",
                "publish",
                "spec.json",
                str(source),
            ],
            cwd=cwd,
            env={**os.environ, **SETTINGS},
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
    run = Run(process)
    reader = threading.Thread(target=run.read, daemon=True)
    reader.start()
    assert run.started.wait(60), "the publish never started its upload"
    return run, reader


def leftovers(server: S3Server, bucket: str, prefix: str) -> tuple[list[str], list[str]]:
    """Objects and incomplete multipart uploads under ``prefix``."""
    client = server.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return [o["Key"] for o in listed], [u["Key"] for u in uploads]


@pytest.mark.parametrize("mode", ["archive", "directory"])
def test_an_interrupt_at_any_point_ends_quickly_and_leaves_nothing(
    s3: S3Server, tmp_path: Path, mode: str
) -> None:
    """Signals swept over an archive or a directory publish: 130/143 in 10 s, nothing left."""
    source = (archive_tree if mode == "archive" else directory_tree)(tmp_path / "result")
    bucket = s3.new_bucket()

    def spec(prefix: str) -> dict[str, object]:
        key = prefix + (".tar.gz" if mode == "archive" else "/")
        return s3_spec(s3, bucket, key, mode == "archive")

    baseline, reader = start(spec("baseline"), source, tmp_path)
    assert baseline.process.wait(300) == 0, "\n".join(baseline.lines)
    reader.join()
    span = time.monotonic() - baseline.upload_started_at

    outcomes = []
    for point in range(POINTS):
        sig = signal.SIGINT if point % 2 else signal.SIGTERM
        at = span * 0.6 * point / (POINTS - 1)
        prefix = f"runs/{uuid.uuid4().hex[:8]}"
        run, reader = start(spec(prefix), source, tmp_path)
        time.sleep(max(0.0, run.upload_started_at + at - time.monotonic()))
        sent = time.monotonic()
        run.process.send_signal(sig)
        try:
            code = run.process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.process.wait()
            pytest.fail(f"{sig.name} at {at:.2f} s: still running {DEADLINE} s later")
        took = time.monotonic() - sent
        reader.join()
        where = f"{sig.name} at {at:.2f} s of {span:.2f} s"
        # It finished first (the baseline ran slower than this run): exit 0, or killed by the
        # signal itself if it came after the CLI had returned and given its handlers back.
        if code in (0, -sig) and (tmp_path / "result.yaml").read_text():
            assert "Bucket:" in (tmp_path / "result.yaml").read_text(), where
            objects, uploads = leftovers(s3, bucket, prefix)
            assert objects and not uploads, f"{where}: exit 0, but {objects=} {uploads=}"
            outcomes.append(f"{where}: published first (exit {code})")
            continue
        assert code == (130 if sig == signal.SIGINT else 143), f"{where}: {run.lines[-5:]}"
        expected = (
            "error: interrupted (SIGINT)"
            if sig == signal.SIGINT
            else ("error: terminated (SIGTERM)")
        )
        assert run.lines[-1] == expected, f"{where}: {run.lines[-5:]}"
        assert not any(line.startswith("Traceback") for line in run.lines), where
        objects, uploads = leftovers(s3, bucket, prefix)
        time.sleep(1.0)  # a request still in the store's hands must not land afterwards
        late_objects, late_uploads = leftovers(s3, bucket, prefix)
        assert objects == late_objects == [], f"{where}: left {objects or late_objects}"
        assert uploads == late_uploads == [], f"{where}: uploads left {uploads or late_uploads}"
        outcomes.append(f"{where}: exit {code} in {took:.2f} s")
    interrupted = [o for o in outcomes if "published first" not in o]
    assert len(interrupted) >= POINTS // 2, outcomes  # the early points always interrupt


def offline_client() -> Any:
    """A botocore S3 client for a Stubber: it never reaches the network."""
    return botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )


def test_a_completion_whose_reply_never_came_is_waited_for_and_removed() -> None:
    """Clean-up after an interrupted CompleteMultipartUpload removes the object it makes later."""
    client = offline_client()
    log = WriteLog(client, "bucket")
    log.creating("result.tar.gz")
    log.created("result.tar.gz", "upload-1")
    log.writing("result.tar.gz")
    log.completing("upload-1")  # sent; the interrupt came before the reply
    with Stubber(client) as stub:
        stub.add_client_error("abort_multipart_upload", "NoSuchUpload", http_status_code=404)
        stub.add_response("get_bucket_versioning", {})
        for _ in range(2):  # the store is still assembling the object
            stub.add_client_error("head_object", "404", http_status_code=404)
        stub.add_response("head_object", {"LastModified": datetime.now(timezone.utc)})
        stub.add_response(
            "delete_objects",
            {},
            {"Bucket": "bucket", "Delete": {"Objects": [{"Key": "result.tar.gz"}], "Quiet": True}},
        )
        assert log.cleanup() == []
        stub.assert_no_pending_responses()


def test_an_abort_that_wins_over_a_completion_leaves_nothing_to_wait_for() -> None:
    """An upload aborted while its completion was in flight needs no waiting: delete and done."""
    client = offline_client()
    log = WriteLog(client, "bucket")
    log.created("result.tar.gz", "upload-1")
    log.writing("result.tar.gz")
    log.completing("upload-1")
    with Stubber(client) as stub:
        stub.add_response("abort_multipart_upload", {})
        stub.add_response("get_bucket_versioning", {})
        stub.add_response("delete_objects", {})
        started = time.monotonic()
        assert log.cleanup() == []
        assert time.monotonic() - started < 1.0
        stub.assert_no_pending_responses()


def test_a_helper_stopped_before_its_job_arrives_exits_quietly() -> None:
    """A helper process whose parent stops before sending the job exits 1 with no traceback."""
    from publisher_s3._helpers import _BOOT

    helper = subprocess.run(
        [sys.executable, "-c", _BOOT], input=b"", capture_output=True, timeout=60
    )
    assert helper.returncode == 1
    assert helper.stderr == b""
    assert helper.stdout == b""


@pytest.mark.parametrize("compress", [False, True], ids=["directory", "archive"])
def test_an_interrupt_after_the_upload_finished_removes_the_result(
    s3: S3Server,
    result_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    compress: bool,
) -> None:
    """An interrupt between the last upload and the record leaves nothing a record names."""
    from publisher_core import publish
    from publisher_s3 import _plugin

    def interrupted(*_: object, **__: object) -> object:
        raise KeyboardInterrupt  # as if Ctrl-C came as the result was being built

    monkeypatch.setattr(_plugin, "_result", interrupted)
    bucket = s3.new_bucket()
    with pytest.raises(KeyboardInterrupt):
        publish(s3_spec(s3, bucket, "runs/late" + ("" if compress else "/"), compress), result_dir)
    assert leftovers(s3, bucket, "runs/late") == ([], [])
