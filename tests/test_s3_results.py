"""What S3 result records say, and how records written by other tools are read.

A record never pins the version ``null`` (what stores answer for an unversioned object);
a record another tool wrote is resolved by asking the store, and one that matches
nothing is an error naming the bucket and key, never an empty success.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from publisher_core import DownloadError, describe, get, publish
from publisher_s3 import S3Result
from tests.conftest import CLIResult
from tests.s3_servers import S3Server, s3_spec


def foreign(server: S3Server, bucket: str, key: str, **extra: Any) -> dict[str, Any]:
    """A record as another tool (Bacalhau) writes it: no Size, no manifest."""
    return {
        "Type": "s3",
        "Params": {"Bucket": bucket, "Key": key, "Endpoint": server.endpoint, **extra},
    }


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A small .tar.gz of ``files``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_multipart_archive_in_an_unversioned_bucket_records_no_version(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No VersionID is recorded where the bucket keeps none: ``null`` is not a version."""
    monkeypatch.setenv("PUBLISHER_S3_PART_SIZE", str(5 * 2**20))
    source = tmp_path / "big"
    source.mkdir()
    (source / "random.bin").write_bytes(os.urandom(6 * 2**20))
    bucket = s3.new_bucket()
    result = publish(s3_spec(s3, bucket, "runs/big", True), source)
    assert "VersionID" not in result.params
    description = describe(result)
    assert "versionId" not in description.items[0].url


def test_a_recorded_null_version_is_not_pinned() -> None:
    """A record carrying ``VersionID: 'null'`` (older publishes) reads as no version."""
    result = S3Result(bucket="b-1", key="k.tar.gz", version_id="null", manifest_version_id="null")
    assert result.version_id is None
    assert result.manifest_version_id is None


def test_a_foreign_record_whose_key_matches_nothing_is_an_error(
    s3: S3Server, cli_in_process: Callable[..., CLIResult], tmp_path: Path
) -> None:
    """A mistyped Key gives exit 1 naming bucket and key; no empty directory appears."""
    bucket = s3.new_bucket()
    s3.client().put_object(Bucket=bucket, Key="results/a.txt", Body=b"a")
    for key in ("reslts/", "reslts"):
        record = tmp_path / "record.yaml"
        record.write_text(str(foreign(s3, bucket, key)).replace("'", '"'))
        for command in (["describe", str(record)], ["get", str(record), "-o", "out"]):
            outcome = cli_in_process(*command)
            assert outcome.code == 1, outcome
            assert outcome.out == ""
            assert f"s3://{bucket}/{key}" in outcome.err
            assert len(outcome.err.strip().splitlines()) == 1
        assert not (tmp_path / "out").exists()


def test_a_foreign_key_with_no_suffix_is_resolved_by_asking_the_store(
    s3: S3Server, tmp_path: Path
) -> None:
    """A Key ending in neither '/' nor '.tar.gz' is an object if one is there, else a prefix."""
    bucket = s3.new_bucket()
    client = s3.client()
    client.put_object(Bucket=bucket, Key="runs/j1", Body=tar_gz({"out.txt": b"archived"}))
    client.put_object(Bucket=bucket, Key="runs/j2/a.txt", Body=b"a")
    client.put_object(Bucket=bucket, Key="runs/j2/sub/b.txt", Body=b"bb")

    get(describe(foreign(s3, bucket, "runs/j1")), tmp_path / "one")
    assert (tmp_path / "one" / "out.txt").read_bytes() == b"archived"

    get(describe(foreign(s3, bucket, "runs/j2")), tmp_path / "two")
    assert (tmp_path / "two" / "sub" / "b.txt").read_bytes() == b"bb"

    with pytest.raises(DownloadError, match=f"nothing at s3://{bucket}/runs/j3: no object"):
        describe(foreign(s3, bucket, "runs/j3"))
