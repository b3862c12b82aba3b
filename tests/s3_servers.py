"""S3 servers for the tests: moto over real HTTP, and a real Ceph RADOS Gateway.

Tests that take the ``s3`` fixture run once per server. Ceph RGW is started by
``scripts/ceph-rgw.sh`` (installed by ``.ci/run``); where its packages are missing the
Ceph runs are skipped with that reason, unless ``PUBLISHER_TEST_CEPH=required`` (as in CI),
which turns a missing or failing server into an error.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

ACCESS_KEY = "AKIATESTPUBLISHER01"
SECRET_KEY = "testing-secret-key-do-not-print-0123456789"
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "ceph-rgw.sh"


@dataclass
class S3Server:
    """A running S3 endpoint and a client for reading back what the publisher wrote."""

    endpoint: str
    name: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def new_bucket(self, *, versioned: bool = False) -> str:
        bucket = f"t-{uuid.uuid4().hex[:20]}"
        client = self.client()
        client.create_bucket(Bucket=bucket)
        if versioned:
            client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}
            )
        return bucket


def s3_spec(server: S3Server, bucket: str, key: str, compress: bool) -> dict[str, Any]:
    """A spec document for ``key`` in ``bucket`` on ``server``."""
    return {
        "Type": "s3",
        "Bucket": bucket,
        "Key": key,
        "Compress": compress,
        "Endpoint": server.endpoint,
    }


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """moto's S3 over HTTP on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on stderr
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint=f"http://{host}:{port}", name="moto")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ceph_server() -> Iterator[S3Server]:
    """Ceph RGW started by the project's script for the whole session, or a skip."""
    required = os.environ.get("PUBLISHER_TEST_CEPH") == "required"
    if shutil.which("radosgw") is None:
        reason = "Ceph RGW is not installed (run scripts/ceph-rgw.sh install)"
        if required:
            pytest.fail(reason)
        pytest.skip(reason)
    scratch = Path(tempfile.mkdtemp(prefix="publisher-ceph-"))
    cluster = scratch / "cluster"
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", str(cluster)], capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0:
        reason = f"Ceph RGW did not start: {started.stderr.strip()[-2000:]}"
        subprocess.run(["bash", str(SCRIPT), "stop", str(cluster)], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)
        if required:
            pytest.fail(reason)
        pytest.skip(reason)
    env = dict(
        line.split("=", 1) for line in (cluster / "env").read_text().splitlines() if "=" in line
    )
    try:
        yield S3Server(
            endpoint=env["S3_ENDPOINT"],
            name="ceph",
            access_key=env["S3_ACCESS_KEY"],
            secret_key=env["S3_SECRET_KEY"],
        )
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(cluster)], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(params=["moto", "ceph"])
def s3(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Server:
    """Each S3 server in turn, with its credentials in the environment and no user config."""
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in (
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    return server
