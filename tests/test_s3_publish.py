"""The s3 publisher against moto over HTTP: both modes, read back independently, get."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import logging
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from hypothesis import given, settings

from publisher_core import (
    IntegrityError,
    PublishContext,
    PublisherError,
    PublishError,
    describe,
    get,
    publish,
)
from tests.conftest import CLIResult
from tests.s3_servers import s3_spec
from tests.test_s3_spec import DECLARATIVE
from tests.trees import build, snapshot, trees

SMALL_PARTS = {"part_size": 5 * 2**20, "concurrency": 4}


spec = s3_spec


def test_directory_mode_writes_each_file_and_a_manifest(s3, result_dir):
    """Each file is KEY + path; the manifest sits next to the prefix; read back with boto3."""
    bucket = s3.new_bucket()
    result = publish(
        spec(s3, bucket, "runs/{jobID}", False),
        result_dir,
        context=PublishContext(job_id="j1"),
    )
    params = result.params
    assert params["Key"] == "runs/j1/"
    assert params["Region"] == "us-east-1"
    assert params["Manifest"] == "runs/j1.manifest.json"
    client = s3.client()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [
        "runs/j1.manifest.json",
        "runs/j1/a file with spaces.txt",
        "runs/j1/données/résumé.txt",
        "runs/j1/empty.txt",
        "runs/j1/nested/deeper/deepest.bin",
    ]
    body = client.get_object(Bucket=bucket, Key="runs/j1/nested/deeper/deepest.bin")["Body"].read()
    assert body == (result_dir / "nested" / "deeper" / "deepest.bin").read_bytes()
    manifest = client.get_object(Bucket=bucket, Key="runs/j1.manifest.json")["Body"].read()
    digest = base64.b64encode(hashlib.sha256(manifest).digest()).decode()
    assert params["ManifestChecksumSHA256"] == digest
    assert b'"empty dir"' in manifest


def test_archive_mode_writes_one_gzip_object_checked_by_gnu_tar(s3, result_dir, tmp_path):
    """One .tar.gz: application/gzip, no Content-Encoding, SHA-256 of its exact bytes."""
    bucket = s3.new_bucket()
    result = publish(
        spec(s3, bucket, "runs/{jobID}", True),
        result_dir,
        context=PublishContext(job_id="j1"),
    )
    assert result.params["Key"] == "runs/j1.tar.gz"
    reply = s3.client().get_object(Bucket=bucket, Key="runs/j1.tar.gz")
    body = reply["Body"].read()
    assert reply["ContentType"] == "application/gzip"
    assert "ContentEncoding" not in reply
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(body)
    sha_hex = subprocess.run(
        ["sha256sum", str(archive)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert base64.b64decode(result.params["ChecksumSHA256"]).hex() == sha_hex
    assert result.params["Size"] == len(body)
    listing = subprocess.run(
        ["tar", "-tzf", str(archive)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "données/résumé.txt" in listing


@pytest.mark.parametrize("compress", [False, True])
def test_publish_describe_get_round_trip(s3, result_dir, tmp_path, compress):
    """get rebuilds the tree byte for byte from pre-signed URLs alone."""
    bucket = s3.new_bucket()
    result = publish(spec(s3, bucket, "r", compress), result_dir)
    description = describe(result)
    assert all("X-Amz-Signature" in item.url for item in description.items)
    report = get(description, tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(result_dir)
    assert report.unverified == 0


@pytest.mark.parametrize("compress", [False, True])
def test_large_results_use_multipart_and_round_trip(s3, tmp_path, compress):
    """A file and an archive larger than one part go up as multipart uploads."""
    source = tmp_path / "big"
    source.mkdir()
    (source / "random.bin").write_bytes(os.urandom(12 * 2**20 + 123))
    (source / "small.txt").write_text("small")
    bucket = s3.new_bucket()
    result = publish(spec(s3, bucket, "big", compress), source, settings=SMALL_PARTS)
    key = result.params["Key"] if compress else result.params["Key"] + "random.bin"
    head = s3.client().head_object(Bucket=bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    get(describe(result, settings=SMALL_PARTS), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(source)


def test_versioned_bucket_records_and_uses_the_version(s3, result_dir, tmp_path):
    """VersionID is recorded, and describe pins that version even after an overwrite."""
    bucket = s3.new_bucket(versioned=True)
    first = publish(spec(s3, bucket, "v.tar.gz", True), result_dir)
    assert first.params.get("VersionID")
    (result_dir / "empty.txt").write_text("changed")
    publish(spec(s3, bucket, "v.tar.gz", True), result_dir)
    get(describe(first), tmp_path / "out")
    assert (tmp_path / "out" / "empty.txt").read_bytes() == b""


def test_a_tampered_object_is_refused_by_get(s3, result_dir, tmp_path):
    """Replacing an object after publishing makes get fail and write nothing."""
    bucket = s3.new_bucket()
    result = publish(spec(s3, bucket, "t", False), result_dir)
    s3.client().put_object(Bucket=bucket, Key="t/a file with spaces.txt", Body=b"HELLO\n")
    with pytest.raises(IntegrityError, match="SHA-256"):
        get(describe(result), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_results_without_a_manifest_are_listed(s3, tmp_path):
    """A prefix written by another tool (e.g. Bacalhau) can still be fetched."""
    bucket = s3.new_bucket()
    client = s3.client()
    client.put_object(Bucket=bucket, Key="other/a.txt", Body=b"a")
    client.put_object(Bucket=bucket, Key="other/sub/b.txt", Body=b"bb")
    foreign = {
        "Type": "s3",
        "Params": {"Bucket": bucket, "Key": "other/", "Endpoint": s3.endpoint},
    }
    report = get(describe(foreign), tmp_path / "out")
    assert (tmp_path / "out" / "sub" / "b.txt").read_bytes() == b"bb"
    assert report.unverified == 2


def test_missing_bucket_is_one_clear_error(s3, result_dir):
    """The error names the operation, bucket, key and S3 code; no secret."""
    with pytest.raises(PublishError) as info:
        publish(spec(s3, "no-such-bucket-here", "k", True), result_dir)
    message = str(info.value)
    assert "s3://no-such-bucket-here/k.tar.gz" in message
    assert "NoSuchBucket" in message
    assert s3.secret_key not in message


@pytest.mark.parametrize("compress", [False, True])
def test_a_failure_midway_leaves_nothing(s3, tmp_path, compress, monkeypatch):
    """A file vanishing during upload: no manifest, no objects, no open multipart upload."""
    import publisher_core._prepare as plugin  # where every publisher scans its tree
    from publisher_core import scan_tree

    source = tmp_path / "src"
    source.mkdir()
    for i in range(30):
        (source / f"f{i:02}.txt").write_text("x" * i)
    (source / "zz-big.bin").write_bytes(os.urandom(11 * 2**20))

    def scan(path, **kwargs):
        entries = scan_tree(path, **kwargs)
        (source / "f29.txt").unlink()
        return entries

    monkeypatch.setattr(plugin, "scan_tree", scan)
    bucket = s3.new_bucket()
    with pytest.raises(PublishError, match=r"f29\.txt"):
        publish(spec(s3, bucket, "half", compress), source, settings=SMALL_PARTS)
    client = s3.client()
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_the_archive_is_a_standard_gzip_member(s3, result_dir):
    """Any gzip reader reads the ISA-L stream."""
    bucket = s3.new_bucket()
    publish(spec(s3, bucket, "std", True), result_dir)
    body = s3.client().get_object(Bucket=bucket, Key="std.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(body))) as tar:
        assert "nested/deeper/deepest.bin" in tar.getnames()


@settings(max_examples=8)
@given(trees)
def test_generated_trees_round_trip_through_s3(s3, tree):
    """Generated trees survive both modes through moto and get."""
    bucket = s3.new_bucket()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        source = build(tree, base / "src")
        for compress in (False, True):
            result = publish(spec(s3, bucket, f"g{int(compress)}", compress), source)
            get(describe(result), base / f"out{int(compress)}")
            assert snapshot(base / f"out{int(compress)}") == snapshot(source)


def test_objects_read_back_with_the_aws_cli(s3, result_dir, tmp_path):
    """The aws CLI, an independent client, downloads what sha256sum and tar agree with."""
    import shutil
    import sys

    aws = shutil.which("aws", path=str(Path(sys.executable).parent))
    assert aws is not None, "the dev set-up installs the aws CLI"
    bucket = s3.new_bucket()
    result = publish(spec(s3, bucket, "cli", True), result_dir)
    subprocess.run(
        [
            aws,
            "--endpoint-url",
            s3.endpoint,
            "s3",
            "cp",
            f"s3://{bucket}/cli.tar.gz",
            str(tmp_path / "cli.tar.gz"),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    data = (tmp_path / "cli.tar.gz").read_bytes()
    assert (
        base64.b64encode(hashlib.sha256(data).digest()).decode() == result.params["ChecksumSHA256"]
    )
    out = tmp_path / "untarred"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(tmp_path / "cli.tar.gz"), "-C", str(out)], check=True)
    assert snapshot(out) == snapshot(result_dir)


def test_single_put_sends_our_checksum_to_the_server(s3, result_dir):
    """A small archive carries x-amz-checksum-sha256; a store that keeps it echoes ours."""
    if s3.name == "ceph":
        pytest.skip("Ceph RGW 16 neither stores nor checks x-amz-checksum-sha256")
    bucket = s3.new_bucket()
    result = publish(spec(s3, bucket, "sum", True), result_dir)
    head = s3.client().head_object(Bucket=bucket, Key="sum.tar.gz", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == result.params["ChecksumSHA256"]


def test_region_recorded_is_the_one_used(s3, result_dir, monkeypatch):
    """Given region wins; else the session's (AWS_REGION); recorded in the result."""
    bucket = s3.new_bucket()
    given = publish({**spec(s3, bucket, "r1", True), "Region": "eu-west-1"}, result_dir)
    assert given.params["Region"] == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    session = publish(spec(s3, bucket, "r2", True), result_dir)
    assert session.params["Region"] == "ap-south-1"


def test_endpoint_from_the_environment_is_honoured(s3, result_dir, monkeypatch):
    """AWS_ENDPOINT_URL_S3 reaches botocore when the spec names no Endpoint."""
    bucket = s3.new_bucket()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("PUBLISHER_S3_ADDRESSING_STYLE", "path")
    result = publish({"Type": "s3", "Bucket": bucket, "Key": "env", "Compress": True}, result_dir)
    assert result.params["Endpoint"] == s3.endpoint  # recorded, so describe finds the store
    assert s3.client().head_object(Bucket=bucket, Key="env.tar.gz")


def test_the_seed_cli_examples_publish_through_the_cli(s3, result_dir, cli, tmp_path):
    """Bacalhau's four -p examples publish with the publisher CLI (endpoint: moto)."""
    client = s3.client()
    if "bucket" not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket="bucket")
    env = {
        "AWS_ENDPOINT_URL_S3": s3.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PUBLISHER_S3_ADDRESSING_STYLE": "path",
    }
    examples = [
        "s3://bucket/key",
        f"s3://bucket/key,opt=endpoint={s3.endpoint},opt=region=us-east-1",
        "s3://bucket/key,opt=compress=true",
        "s3://bucket/result-{date}-{jobID}",
    ]
    for index, example in enumerate(examples):
        published = cli(
            "publish",
            example,
            str(result_dir),
            "--job-id",
            f"seed{index}",
            "--execution-id",
            f"e{index}",
            env=env,
        )
        assert published.code == 0, (example, published.err)
        got = cli("get", "-", "-o", f"out{index}", stdin=published.out, env=env)
        assert got.code == 0, (example, got.err)
        assert snapshot(tmp_path / f"out{index}") == snapshot(result_dir)
    assert client.head_object(Bucket="bucket", Key="key.tar.gz")


@pytest.mark.parametrize("text", DECLARATIVE)
def test_the_declarative_examples_publish_verbatim(s3, result_dir, tmp_path, monkeypatch, text):
    """The YAML examples publish as written; the endpoint comes from the environment."""
    client = s3.client()
    if "my-task-results" not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket="my-task-results")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    monkeypatch.setenv("PUBLISHER_S3_ADDRESSING_STYLE", "path")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(text.replace("http://127.0.0.1:9000", s3.endpoint))
    result = publish(str(spec_file), result_dir, context=PublishContext(job_id="task123"))
    get(describe(result), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(result_dir)


def test_no_secret_in_any_output_of_a_debug_cycle(s3, result_dir, cli, tmp_path):
    """publish, describe and get with --debug print no secret key and no URL signature."""
    bucket = s3.new_bucket()
    env = {
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_SESSION_TOKEN": "session-token-never-printed",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    target = f"s3://{bucket}/dbg,opt=endpoint={s3.endpoint}"
    outputs = []
    published = cli("--debug", "publish", target, str(result_dir), env=env)
    outputs += [published.out, published.err]
    described = cli("--debug", "describe", "-", "--json", stdin=published.out, env=env)
    outputs.append(described.err)
    got = cli("--debug", "get", "-", "-o", "out", stdin=described.out, env=env)
    outputs += [got.out, got.err]
    failed = cli("--debug", "get", "-", "-o", "out", stdin=described.out, env=env)  # not empty
    outputs += [failed.out, failed.err]
    assert published.code == described.code == got.code == 0, outputs
    assert failed.code == 2
    assert "DEBUG publisher_" in published.err
    for text in outputs:
        assert s3.access_key not in text
        assert s3.secret_key not in text
        assert "session-token-never-printed" not in text
        assert "X-Amz-Signature" not in text
        assert "Signature=" not in text


def test_no_secret_in_log_records_errors_or_reprs(s3, result_dir, tmp_path, monkeypatch, caplog):
    """Every DEBUG record, error and repr of a cycle and of its failures is free of secrets."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-never-printed")
    for name in ("publisher_core", "publisher_s3", "publisher_local"):  # what --debug opens
        caplog.set_level(logging.DEBUG, logger=name)
    bucket = s3.new_bucket()
    seen: list[str] = []

    def note(*things: object) -> None:
        seen.extend(text for thing in things for text in (str(thing), repr(thing)))

    result = publish(spec(s3, bucket, "sec/", False), result_dir)
    description = describe(result)
    report = get(description, tmp_path / "out")
    note(result, description, *description.items, report)
    signatures = [parse_qs(urlsplit(i.url).query)["X-Amz-Signature"][0] for i in description.items]
    credentials = [
        parse_qs(urlsplit(i.url).query)["X-Amz-Credential"][0] for i in description.items
    ]
    first = description.items[0]
    missing = attrs.evolve(first, url=first.url.replace("/sec/", "/sec/missing-"), size=None)
    failures: list[Callable[[], object]] = [
        lambda: get(description, tmp_path / "out"),  # not empty
        lambda: get(attrs.evolve(description, items=(missing,)), tmp_path / "bad"),  # 404/403
        lambda: describe(
            attrs.evolve(result, params={**result.params, "ManifestChecksumSHA256": "AAAA"})
        ),
        lambda: publish(spec(s3, "t-no-such-bucket-here", "x/", False), result_dir),
    ]
    for failing in failures:
        with pytest.raises(PublisherError) as caught:
            failing()
        note(caught.value)
    seen += [record.getMessage() for record in caplog.records]
    assert any(record.levelno == logging.DEBUG for record in caplog.records)
    secrets = [
        s3.access_key,
        s3.secret_key,
        "session-token-never-printed",
        *signatures,
        *credentials,
    ]
    for text in seen:
        for secret in secrets:
            assert secret not in text, f"a secret in: {text[:200]}"


def inject(monkeypatch, event: str, handler) -> None:
    """Register ``handler`` on botocore ``event`` of every client the publisher makes.

    The operation's parameters (Bucket, Key, PartNumber...) reach the handler as ``params``.
    """
    import publisher_s3._plugin as plugin
    from publisher_s3._client import make_client

    def remember(params, context, **_):
        context["test_params"] = dict(params)

    def call(**kwargs):
        kwargs["params"] = kwargs["context"]["test_params"]
        return handler(**kwargs)

    def patched(*args, **kwargs):
        client, region = make_client(*args, **kwargs)
        client.meta.events.register_first("before-parameter-build.s3", remember)
        client.meta.events.register(event, call)
        return client, region

    monkeypatch.setattr(plugin, "make_client", patched)


def test_an_interrupt_after_the_manifest_landed_removes_it(s3, result_dir, monkeypatch):
    """Ctrl-C once the manifest is stored (reply not yet seen) still leaves nothing."""

    def interrupt(params, **_):
        if params["Key"].endswith(".manifest.json"):
            raise KeyboardInterrupt

    inject(monkeypatch, "after-call.s3.PutObject", interrupt)
    bucket = s3.new_bucket()
    with pytest.raises(KeyboardInterrupt):
        publish(spec(s3, bucket, "ki", False), result_dir)
    assert s3.client().list_objects_v2(Bucket=bucket).get("Contents", []) == []


def test_a_failed_republish_keeps_the_earlier_version_visible(
    s3, result_dir, tmp_path, monkeypatch
):
    """In a versioned bucket clean-up deletes only the versions this publish created."""
    bucket = s3.new_bucket(versioned=True)
    first = publish(spec(s3, bucket, "same", False), result_dir)
    assert first.params.get("ManifestVersionID")

    from botocore.exceptions import EndpointConnectionError

    def refuse_manifest(params, **_):
        if params["Key"].endswith(".manifest.json"):  # as if the store became unreachable
            raise EndpointConnectionError(endpoint_url="manifest refused by the test")

    inject(monkeypatch, "before-call.s3.PutObject", refuse_manifest)
    with pytest.raises(PublishError, match="manifest refused by the test"):
        publish(spec(s3, bucket, "same", False), result_dir)
    import publisher_s3._client
    import publisher_s3._plugin

    monkeypatch.setattr(publisher_s3._plugin, "make_client", publisher_s3._client.make_client)
    get(describe(first), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(result_dir)


def test_a_failing_file_is_named_in_the_error(s3, result_dir, monkeypatch):
    """The error names the object that failed, not only the prefix (botocore's path; the
    runtime's: tests/test_s3_crt.py)."""
    monkeypatch.setenv("PUBLISHER_S3_REQUEST_PATH", "botocore")

    def refuse(params, **_):
        if params["Key"].endswith("résumé.txt"):
            raise RuntimeError("refused")

    inject(monkeypatch, "before-call.s3.PutObject", refuse)
    bucket = s3.new_bucket()
    with pytest.raises(PublishError, match=r"named/données/résumé\.txt"):
        publish(spec(s3, bucket, "named", False), result_dir)
    assert s3.client().list_objects_v2(Bucket=bucket).get("Contents", []) == []


@pytest.mark.parametrize("compress", [False, True])
def test_a_part_failing_aborts_everything(s3, tmp_path, monkeypatch, compress):
    """A failing UploadPart stops the publish, aborts the upload and removes the rest."""
    source = tmp_path / "src"
    source.mkdir()
    for i in range(3):
        (source / f"big{i}.bin").write_bytes(os.urandom(11 * 2**20))
    calls = []

    def fail_second_part(params, **_):
        calls.append(params["PartNumber"])
        if params["PartNumber"] == 2:
            raise RuntimeError("part refused by the test")

    inject(monkeypatch, "before-call.s3.UploadPart", fail_second_part)
    bucket = s3.new_bucket()
    with pytest.raises(PublishError, match="part refused by the test"):
        publish(spec(s3, bucket, "parts", compress), source, settings=SMALL_PARTS)
    client = s3.client()
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_an_unreachable_store_at_create_multipart_reports_nothing_left(s3, tmp_path, monkeypatch):
    """A CreateMultipartUpload that never left creates no upload: none is reported left."""
    from botocore.exceptions import EndpointConnectionError

    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(6 * 2**20))

    def unreachable(**_):
        raise EndpointConnectionError(endpoint_url="store unreachable in the test")

    inject(monkeypatch, "before-call.s3.CreateMultipartUpload", unreachable)
    bucket = s3.new_bucket()
    with pytest.raises(PublishError, match="store unreachable in the test") as failure:
        publish(spec(s3, bucket, "gone", False), source, settings=SMALL_PARTS)
    assert "could not remove" not in str(failure.value)
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


HELPERS = {"processes": 3, "concurrency": 4}


def _many_files(root: Path, count: int) -> Path:
    root.mkdir()
    for i in range(count):
        (root / f"d{i % 3}").mkdir(exist_ok=True)
        (root / f"d{i % 3}" / f"f{i:03}.txt").write_bytes(f"file {i}\n".encode() * (i + 1))
    (root / "big.bin").write_bytes(os.urandom(6 * 2**20))  # a multipart file stays home
    return root


def test_helper_processes_share_a_directory_of_many_files(s3, tmp_path, monkeypatch):
    """Small files are split across helper processes; the result round-trips."""
    import publisher_s3._helpers as helpers

    monkeypatch.setenv("PUBLISHER_S3_REQUEST_PATH", "botocore")  # helpers serve botocore's

    monkeypatch.setattr(helpers, "FILES_PER_PROCESS", 10)
    started = []
    real = helpers.Helper.__init__

    def counting(self, job, entries, log, on_failure):
        started.append(len(entries))
        real(self, job, entries, log, on_failure)

    monkeypatch.setattr(helpers.Helper, "__init__", counting)
    source = _many_files(tmp_path / "src", 60)
    bucket = s3.new_bucket()
    result = publish(
        spec(s3, bucket, "shared", False), source, settings={**HELPERS, "part_size": 5 * 2**20}
    )
    assert started == [20, 20]  # 60 small files in three shares; two go to helpers
    assert result.params["Files"] == 61
    get(describe(result), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(source)


def test_a_helper_failing_removes_what_every_process_wrote(s3, tmp_path, monkeypatch):
    """A file vanishing in a helper's share fails the publish; nothing is left anywhere."""
    monkeypatch.setenv("PUBLISHER_S3_REQUEST_PATH", "botocore")  # helpers serve botocore's
    import publisher_s3._directory as upload
    import publisher_s3._helpers as helpers

    monkeypatch.setattr(helpers, "FILES_PER_PROCESS", 10)
    source = _many_files(tmp_path / "src", 60)
    real = upload.DirectoryUpload._start_helpers

    def vanish(self, files, helpers):
        (source / "d1" / "f058.txt").unlink()  # in the last helper's share
        return real(self, files, helpers)

    monkeypatch.setattr(upload.DirectoryUpload, "_start_helpers", vanish)
    bucket = s3.new_bucket()
    with pytest.raises(PublishError, match=r"d1/f058\.txt: cannot open") as failure:
        publish(spec(s3, bucket, "vanish", False), source, settings=HELPERS)
    assert "could not remove" not in str(failure.value)
    client = s3.client()
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_helper_that_dies_fails_the_publish_and_leaves_nothing(s3, tmp_path, monkeypatch):
    """A helper killed mid-way: the parent says so and removes what it reported."""
    monkeypatch.setenv("PUBLISHER_S3_REQUEST_PATH", "botocore")  # helpers serve botocore's
    import signal

    import publisher_s3._helpers as helpers

    monkeypatch.setattr(helpers, "FILES_PER_PROCESS", 10)
    real = helpers.Helper._read

    def killed(self, stream):
        for line in stream:  # until the helper says it is about to write an object
            self._apply(json.loads(line))
            if json.loads(line)[0] == "writing":
                break
        self.process.send_signal(signal.SIGKILL)
        real(self, stream)

    monkeypatch.setattr(helpers.Helper, "_read", killed)
    source = _many_files(tmp_path / "src", 60)
    bucket = s3.new_bucket()
    with pytest.raises(PublishError, match="helper process exited with code -9"):
        publish(spec(s3, bucket, "killed", False), source, settings=HELPERS)
    client = s3.client()
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []


def test_helper_count_needs_enough_files_per_process():
    from publisher_s3._helpers import FILES_PER_PROCESS, helper_count

    assert helper_count(FILES_PER_PROCESS * 10, 1) == 0
    assert helper_count(FILES_PER_PROCESS - 1, 4) == 0
    assert helper_count(FILES_PER_PROCESS * 2, 4) == 1
    assert helper_count(FILES_PER_PROCESS * 100, 4) == 3


@pytest.mark.parametrize("compress", [False, True])
def test_bodies_carry_their_own_checksum_instead_of_a_signed_payload(
    s3, tmp_path, monkeypatch, compress
):
    """Parts send CRC32, objects SHA-256; the store checks them, so the payload is not
    hashed a second time for the signature (x-amz-content-sha256: UNSIGNED-PAYLOAD)."""
    import base64
    import zlib

    import publisher_s3._plugin as plugin
    from publisher_s3._client import make_client

    seen: list[tuple[str, dict[str, str], bytes]] = []

    def capture(request, **_):
        body = request.body
        if hasattr(body, "read"):  # botocore may wrap a bytes body in a seekable reader
            position = body.tell()
            data = body.read()
            body.seek(position)
            body = data
        headers = {
            k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }
        seen.append((request.method, headers, body))

    def patched(*args, **kwargs):
        client, region = make_client(*args, **kwargs)
        client.meta.events.register("before-send.s3.UploadPart", capture)
        client.meta.events.register("before-send.s3.PutObject", capture)
        return client, region

    monkeypatch.setattr(plugin, "make_client", patched)
    source = tmp_path / "src"
    source.mkdir()
    (source / "big.bin").write_bytes(os.urandom(11 * 2**20))
    (source / "small.txt").write_bytes(b"small\n")
    publish(spec(s3, s3.new_bucket(), "sums", compress), source, settings=SMALL_PARTS)
    parts = [h for _, h, _ in seen if "x-amz-checksum-crc32" in h]
    assert len(parts) >= 2
    for _, lower, body in seen:
        assert lower["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
        if "x-amz-checksum-crc32" in lower:
            crc = zlib.crc32(body).to_bytes(4, "big")
            assert lower["x-amz-checksum-crc32"] == base64.b64encode(crc).decode()
        else:
            assert "x-amz-checksum-sha256" in lower


def test_helpers_never_import_modules_from_the_working_directory(s3, tmp_path, monkeypatch):
    """A module planted in the directory publish runs from (often the job's own output)
    is not imported by a helper, which holds the credentials."""
    import publisher_s3._helpers as helpers

    monkeypatch.setattr(helpers, "FILES_PER_PROCESS", 10)
    planted = tmp_path / "cwd"
    planted.mkdir()
    stolen = tmp_path / "stolen"
    for name in ("json", "threading", "logging"):
        (planted / f"{name}.py").write_text(f"open({str(stolen)!r}, 'w').write('{name}')\n")
    monkeypatch.chdir(planted)
    source = _many_files(tmp_path / "src", 60)
    publish(spec(s3, s3.new_bucket(), "planted", False), source, settings=HELPERS)
    assert not stolen.exists()


def test_a_helper_that_cannot_start_leaves_its_share_to_the_parent(s3, tmp_path, monkeypatch):
    """No interpreter to start: the publishing process uploads every share itself."""
    import sys

    import publisher_s3._helpers as helpers

    monkeypatch.setattr(helpers, "FILES_PER_PROCESS", 10)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    source = _many_files(tmp_path / "src", 60)
    result = publish(spec(s3, s3.new_bucket(), "alone", False), source, settings=HELPERS)
    assert result.params["Files"] == 61
    get(describe(result), tmp_path / "out")
    assert snapshot(tmp_path / "out") == snapshot(source)


def test_an_environment_endpoint_with_credentials_is_refused_and_never_printed(
    s3, result_dir, cli_in_process
):
    """publish and describe with AWS_ENDPOINT_URL_S3 carrying a user and password exit 2
    with one line naming the variable, print neither, and write nothing."""
    bucket = s3.new_bucket()
    address = s3.endpoint.split("://", 1)[1]
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://USER:PASSWORD@{address}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PUBLISHER_S3_ADDRESSING_STYLE": "path",
    }
    published = cli_in_process("publish", f"s3://{bucket}/k/", str(result_dir), env=env)
    record = json.dumps({"Type": "s3", "Params": {"Bucket": bucket, "Key": "k.tar.gz"}})
    record_file = result_dir.parent / "record.json"
    record_file.write_text(record)
    described = cli_in_process("describe", str(record_file), env=env)
    for ran in (published, described):
        assert ran.code == 2, ran.err
        assert ran.out == ""
        assert len(ran.err.splitlines()) == 1
        assert "must not contain credentials" in ran.err
        assert "AWS_ENDPOINT_URL_S3" in ran.err
        assert "USER" not in ran.err
        assert "PASSWORD" not in ran.err
    assert "Contents" not in s3.client().list_objects_v2(Bucket=bucket)


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("http://USER:PASSWORD@{address}", "must not contain credentials"),
        ("http://exa mple.com", "whitespace or control character"),
        ("http://127.0.0.1:0", "Port out of range"),
        ("http://xn--a.com", "not a valid IDNA"),
    ],
)
def test_a_config_file_endpoint_is_checked_when_the_client_is_made(
    s3, result_dir, endpoint, message
):
    """An endpoint_url from the AWS config file, which validate cannot see without
    botocore, is refused with a SpecError (exit 2) by publish and describe before any
    request, naming the setting and never its credentials."""
    from publisher_core import SpecError

    bucket = s3.new_bucket()
    address = s3.endpoint.split("://", 1)[1]
    config = Path(os.environ["AWS_CONFIG_FILE"])
    config.write_text(
        f"[default]\nregion = us-east-1\nendpoint_url = {endpoint.format(address=address)}\n"
    )
    record = {"Type": "s3", "Params": {"Bucket": bucket, "Key": "k.tar.gz"}}
    for call in (
        lambda: publish({"Type": "s3", "Bucket": bucket, "Key": "k/"}, result_dir),
        lambda: describe(record),
    ):
        with pytest.raises(SpecError) as info:
            call()
        text = str(info.value)
        assert message in text
        assert "endpoint_url" in text
        assert "PASSWORD" not in text
        assert "\n" not in text
    assert "Contents" not in s3.client().list_objects_v2(Bucket=bucket)


@pytest.mark.parametrize("compress", [False, True], ids=["directory", "archive"])
def test_a_store_that_never_answers_gets_one_line_and_no_false_leftovers(
    result_dir: Path, cli_in_process: Callable[..., CLIResult], compress: bool
) -> None:
    """Connection refused on every attempt: one error line, no claim of objects left behind."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    key = "runs/j1.tar.gz" if compress else "runs/j1/"
    spec = (
        f"s3://bucket/{key},opt=endpoint=http://127.0.0.1:{port},opt=region=us-east-1,"
        f"opt=compress={str(compress).lower()}"
    )
    env = {
        "AWS_ACCESS_KEY_ID": "a",
        "AWS_SECRET_ACCESS_KEY": "b",
        "PUBLISHER_S3_MAX_ATTEMPTS": "2",
        "PUBLISHER_S3_PROCESSES": "1",
    }
    result = cli_in_process("publish", spec, str(result_dir), env=env)
    assert result.code == 1
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert "EndpointConnectionError after 2 attempts" in lines[0]
    assert "could not remove" not in lines[0]
