"""Generated trees through the s3 publisher on moto: plan, publish, list, describe, get.

Each example publishes one generated tree (tests/trees.py) into a fresh bucket under a key
with placeholders, then checks what the bucket holds against the keys DESIGN 4 and 6
promise, and rebuilds the tree with ``get`` from the pre-signed description alone.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher_core import (
    PublishContext,
    describe,
    get,
    plan,
    publish,
)
from tests.s3_servers import S3Server, s3_spec
from tests.trees import Tree, build, files, snapshot, trees

# moto only (the `s3` fixture's environment, without its Ceph run) to stay fast
pytestmark = pytest.mark.parametrize("s3", ["moto"], indirect=True)

FAST = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

job_ids = st.text(
    alphabet=st.characters(categories=["L", "N"], include_characters="-_.~ "),
    min_size=1,
    max_size=10,
).filter(lambda s: s not in (".", "..") and s.strip() == s)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2999, 12, 31),
    timezones=st.just(timezone.utc),
)
TEMPLATE = "runs/{jobID}/{date}-{time}"


def listing(server: S3Server, bucket: str) -> list[str]:
    """Every key in ``bucket``, sorted."""
    reply = server.client().list_objects_v2(Bucket=bucket)
    assert not reply["IsTruncated"]
    return sorted(o["Key"] for o in reply.get("Contents", []))


def expected_key(job: str, now: datetime) -> str:
    """TEMPLATE rendered by hand (DESIGN 4), without its suffix."""
    return f"runs/{job}/{now:%Y%m%d}-{now:%H%M%S}"


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@FAST
@given(tree=trees, job=job_ids, now=instants)
def test_directory_results_hold_exactly_their_files_and_round_trip(
    s3: S3Server, tree: Tree, job: str, now: datetime
) -> None:
    """The bucket holds each file at prefix + path and the manifest beside the prefix, as
    planned; describe lists every file with its size and SHA-256; get rebuilds the tree."""
    bucket = s3.new_bucket()
    context = PublishContext(job_id=job, now=now)
    expected_files = files(tree)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = build(tree, base / "src")
        target: dict[str, Any] = s3_spec(s3, bucket, TEMPLATE, False)
        planned = plan(target, source, context=context)
        result = publish(target, source, context=context)
        key = expected_key(job, now) + "/"
        manifest = expected_key(job, now) + ".manifest.json"  # beside the prefix, not in it
        assert result.params["Key"] == key
        assert result.params["Manifest"] == manifest
        assert result.params["Files"] == len(expected_files)
        assert result.params["Size"] == sum(map(len, expected_files.values()))
        stored = listing(s3, bucket)
        assert stored == sorted([key + path for path in expected_files] + [manifest])
        assert sorted(planned.keys) == stored
        description = describe(result)
        items = {item.path: item for item in description.items}
        assert items.keys() == expected_files.keys()
        for path, data in expected_files.items():
            assert items[path].size == len(data)
            assert items[path].checksum_sha256 == sha256_b64(data)
            assert "X-Amz-Signature" in items[path].url
        report = get(description, base / "out")
        assert report.unverified == 0
        assert snapshot(base / "out") == snapshot(source)


@FAST
@given(
    tree=trees,
    job=job_ids,
    now=instants,
    suffix=st.sampled_from(["", ".tar.gz", ".tgz", ".TGZ"]),
)
def test_archive_results_are_one_checked_object_and_round_trip(
    s3: S3Server, tree: Tree, job: str, now: datetime, suffix: str
) -> None:
    """The bucket holds the one planned archive object whose size and SHA-256 the result
    records, typed application/gzip; get rebuilds the tree from it."""
    bucket = s3.new_bucket()
    context = PublishContext(job_id=job, now=now)
    template = TEMPLATE + suffix
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = build(tree, base / "src")
        target: dict[str, Any] = s3_spec(s3, bucket, template, True)
        planned = plan(target, source, context=context)
        result = publish(target, source, context=context)
        key = expected_key(job, now) + (suffix or ".tar.gz")
        assert result.params["Key"] == key
        assert listing(s3, bucket) == [key] == list(planned.keys)
        reply = s3.client().get_object(Bucket=bucket, Key=key)
        body = reply["Body"].read()
        assert reply["ContentType"] == "application/gzip"
        assert result.params["Size"] == len(body)
        assert result.params["ChecksumSHA256"] == sha256_b64(body)
        report = get(describe(result), base / "out")
        assert report.unverified == 0
        assert snapshot(base / "out") == snapshot(source)
