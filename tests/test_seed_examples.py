"""Bacalhau's S3 publisher examples, verbatim: each validates, publishes and comes back.

The examples name a bucket and at most a local endpoint; where one has no endpoint it is
the default chain's, here ``AWS_ENDPOINT_URL_S3`` pointing at the test server, exactly as
an operator would configure a store for jobs that leave ``Endpoint`` empty. The example
with ``http://127.0.0.1:9000`` gets a moto server on that very port.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from publisher_core import PublishContext, describe, get, parse_document, publish, validate
from tests.s3_servers import S3Server
from tests.test_s3_spec import DECLARATIVE, SEED_CLI
from tests.trees import snapshot

SEED_EMPTY_ENDPOINT = [
    "s3://bucket/key,opt=endpoint=,opt=region=us-east-1",
    "Type: s3\nParams:\n  Bucket: my-task-results\n  Key: task123/result.tar.gz\n"
    '  Endpoint: ""\n  Region: us-east-1\n  Compress: true\n',
    'Type: s3\nBucket: my-task-results\nKey: "results/{jobID}/"\nEndpoint: ""\n',
]
"""The documentation's spellings of "the default endpoint": an empty value."""

CONTEXT = PublishContext(
    job_id="j1",
    execution_id="e1",
    node_id="n1",
    now=datetime(2023, 9, 26, 14, 5, 30, tzinfo=timezone.utc),
)
LOCAL_ENDPOINT = "http://127.0.0.1:9000"


def _spec(example: str) -> Any:
    """The imperative form as it is, a document parsed."""
    return example if example.startswith("s3://") else parse_document(example)


@pytest.fixture(scope="module")
def port_9000_server() -> Iterator[S3Server]:
    """moto on 127.0.0.1:9000, the endpoint the examples name, or a skip if it is taken."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 9000)) == 0:
            pytest.skip("127.0.0.1:9000 is taken; the example that names it cannot run here")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=9000, verbose=False)
    server.start()
    try:
        yield S3Server(endpoint=LOCAL_ENDPOINT, name="moto-9000")
    finally:
        server.stop()


@pytest.mark.parametrize("example", SEED_EMPTY_ENDPOINT)
def test_an_empty_endpoint_validates_as_the_default(example: str) -> None:
    """``Endpoint: ""`` and ``opt=endpoint=`` mean no custom endpoint, as in Bacalhau's docs."""
    assert validate(_spec(example)).params.endpoint is None


@pytest.mark.parametrize("example", SEED_CLI + DECLARATIVE + SEED_EMPTY_ENDPOINT)
def test_each_example_publishes_verbatim_and_gets_back(
    example: str,
    s3: S3Server,
    result_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Every documented example publishes as written and its result round-trips verified."""
    server = s3
    if LOCAL_ENDPOINT in example:
        if s3.name != "moto":
            pytest.skip("the example names its own endpoint; it runs once, against moto")
        server = request.getfixturevalue("port_9000_server")
    else:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
        monkeypatch.setenv("PUBLISHER_S3_ADDRESSING_STYLE", "path")
    spec = validate(_spec(example))
    client = server.client()
    if spec.params.bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=spec.params.bucket)
    result = publish(_spec(example), result_dir, context=CONTEXT)
    assert result.params["Endpoint"] == server.endpoint  # describe elsewhere finds the store
    report = get(describe(result), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(result_dir)
    assert report.unverified == 0
