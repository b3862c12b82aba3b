"""Object attributes of S3 results: encryption, storage class, tags, metadata, ACL, owner.

Every attribute is read back from the store (head_object, get_object_tagging,
get_object_acl) on every object of a result: a single-PutObject archive, a multipart
archive, a directory (its manifest and a multipart file included) and a directory shared
with helper processes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher_core import Problem, PublishContext, SpecError, describe, get, publish, validate
from publisher_s3._values import encode_pairs, kms_key_problem, parse_pairs
from tests.s3_servers import S3Server, s3_spec
from tests.trees import snapshot

MOTO_ACCOUNT = "123456789012"
"""The account moto's buckets belong to."""
CEPH_KMS_KEY = "testkey-1"
"""The key scripts/ceph-rgw.sh gives Ceph's "testing" KMS backend."""
PART = 5 * 2**20
TAGS = {"project": "alpha beta", "cost-centre": "a+b=c/d:e@f"}
METADATA = {"owner": "team-7", "run-id": "j1 e1"}


def _tree(root: Path, mode: str) -> Path:
    """A result for ``mode``: small files, one file over a part, or 900 small files."""
    root.mkdir()
    if mode == "helpers":
        for i in range(900):
            (root / f"d{i % 3}").mkdir(exist_ok=True)
            (root / f"d{i % 3}" / f"f{i:03}.txt").write_bytes(f"file {i}\n".encode())
        return root
    (root / "small.txt").write_text("small\n")
    (root / "page.html").write_text("<p>hi</p>\n")
    if mode in ("multipart-archive", "directory"):
        (root / "random.bin").write_bytes(os.urandom(PART + 123_456))  # incompressible
    return root


def _publish(
    server: S3Server, tmp_path: Path, mode: str, extra: dict[str, Any], settings: dict[str, Any]
) -> tuple[str, Mapping[str, Any], Path]:
    source = _tree(tmp_path / "src", mode)
    bucket = server.new_bucket()
    archive = mode.endswith("archive")
    document = {**s3_spec(server, bucket, "res/{jobID}", archive), **extra}
    processes = (  # helper processes serve the botocore request path
        {"processes": 2, "request_path": "botocore"} if mode == "helpers" else {"processes": 1}
    )
    result = publish(
        document,
        source,
        context=PublishContext(job_id="j1"),
        settings={"part_size": PART, "concurrency": 4, **processes, **settings},
    )
    return bucket, result.params, source


def _objects(server: S3Server, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed["Contents"])


MODES = ["single-archive", "multipart-archive", "directory", "helpers"]


def _expected_count(mode: str, source: Path) -> int:
    files = sum(1 for p in source.rglob("*") if p.is_file())
    return 1 if mode.endswith("archive") else files + 1  # and the manifest


@pytest.mark.parametrize("s3", ["moto"], indirect=True)
@pytest.mark.parametrize("mode", MODES)
def test_every_attribute_lands_on_every_object_on_moto(s3, tmp_path, mode, monkeypatch):
    """SSE-KMS, storage class, tags, metadata, ACL, Cache-Control (and an archive's
    ContentType) are on every object of a result, manifest and helpers' objects included."""
    import publisher_s3._helpers as helpers

    started: list[int] = []
    real = helpers.Helper.__init__

    def counting(self, job, entries, log, on_failure):
        started.append(len(entries))
        real(self, job, entries, log, on_failure)

    monkeypatch.setattr(helpers.Helper, "__init__", counting)
    archive = mode.endswith("archive")
    extra: dict[str, Any] = {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/results",
        "BucketKeyEnabled": True,
        "StorageClass": "STANDARD_IA",
        "Tags": TAGS,
        "Metadata": METADATA,
        "ACL": "public-read",
        "CacheControl": "max-age=60, public",
        "ExpectedBucketOwner": MOTO_ACCOUNT,
    }
    if archive:
        extra["ContentType"] = "application/x-tar+gzip"
    bucket, params, source = _publish(s3, tmp_path, mode, extra, {})
    if mode == "helpers":
        assert started == [450]  # one helper took half of the small files
    assert params["ServerSideEncryption"] == "aws:kms"
    assert params["SSEKMSKeyID"] == "alias/results"
    assert params["BucketKeyEnabled"] is True
    client = s3.client()
    keys = _objects(s3, bucket)
    assert len(keys) == _expected_count(mode, source)
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"].endswith("alias/results"), key
        assert head.get("StorageClass") == "STANDARD_IA", key
        assert head["Metadata"] == METADATA, key
        assert head["CacheControl"] == "max-age=60, public", key
        if archive:
            assert head["ContentType"] == "application/x-tar+gzip"
        tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        assert {t["Key"]: t["Value"] for t in tags} == TAGS, key
        grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        assert any(
            g["Grantee"].get("URI", "").endswith("/global/AllUsers") and g["Permission"] == "READ"
            for g in grants
        ), key
    if mode == "directory":
        assert f"res/j1/{'random.bin'}" in keys and "res/j1.manifest.json" in keys
        assert client.head_object(Bucket=bucket, Key="res/j1/random.bin")["ETag"].endswith('-2"')


@pytest.mark.parametrize("mode", MODES)
def test_tags_metadata_acl_cache_control_and_storage_class_land_on_every_object(s3, tmp_path, mode):
    """On moto and Ceph alike, every object carries the tags, metadata, ACL, Cache-Control
    and storage class of its result, and the result still round-trips through get."""
    archive = mode.endswith("archive")
    extra: dict[str, Any] = {
        "StorageClass": "STANDARD",
        "Tags": TAGS,
        "Metadata": METADATA,
        "ACL": "public-read",
        "CacheControl": "no-cache",
    }
    if archive:
        extra["ContentType"] = "application/octet-stream"
    bucket, params, source = _publish(s3, tmp_path, mode, extra, {})
    client = s3.client()
    keys = _objects(s3, bucket)
    assert len(keys) == _expected_count(mode, source)
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=key)
        assert head.get("StorageClass", "STANDARD") == "STANDARD", key
        assert head["Metadata"] == METADATA, key
        assert head["CacheControl"] == "no-cache", key
        if archive:
            assert head["ContentType"] == "application/octet-stream"
        grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        assert any(g["Grantee"].get("URI", "").endswith("/AllUsers") for g in grants), key
        tags = client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
        if s3.name == "ceph" and head["ETag"].endswith('-2"'):
            # Ceph RGW 16 ignores x-amz-tagging on CreateMultipartUpload (moto shows we send it).
            assert tags == [], key
            continue
        assert {t["Key"]: t["Value"] for t in tags} == TAGS, key
    if mode != "helpers":  # the helpers' tree is large; the other modes prove get works
        from publisher_core import PublishedResult

        get(describe(PublishedResult(type="s3", params=params)), tmp_path / "out")
        assert snapshot(tmp_path / "out") == snapshot(source)


@pytest.mark.parametrize("mode", MODES)
def test_server_side_encryption_lands_on_every_object(s3, tmp_path, mode):
    """SSE-KMS with a named key is on every object (Ceph: its testing KMS backend) and the
    result records it; describe and get still read the encrypted objects."""
    key_id = CEPH_KMS_KEY if s3.name == "ceph" else "alias/results"
    bucket, params, source = _publish(
        s3, tmp_path, mode, {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_id}, {}
    )
    assert (params["ServerSideEncryption"], params["SSEKMSKeyID"]) == ("aws:kms", key_id)
    client = s3.client()
    keys = _objects(s3, bucket)
    assert len(keys) == _expected_count(mode, source)
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"].endswith(key_id), key
    if mode != "helpers":
        from publisher_core import PublishedResult

        get(describe(PublishedResult(type="s3", params=params)), tmp_path / "out")
        assert snapshot(tmp_path / "out") == snapshot(source)


@pytest.mark.parametrize("s3", ["moto"], indirect=True)
@pytest.mark.parametrize("mode", ["multipart-archive", "directory"])
def test_operator_defaults_encrypt_specs_that_name_no_encryption(s3, tmp_path, mode):
    """PUBLISHER_S3_SERVER_SIDE_ENCRYPTION and _SSE_KMS_KEY_ID apply to a spec without
    encryption, on PutObject and CreateMultipartUpload alike, and are recorded."""
    settings = {"server_side_encryption": "aws:kms", "sse_kms_key_id": "alias/ops"}
    bucket, params, _ = _publish(s3, tmp_path, mode, {}, settings)
    assert params["ServerSideEncryption"] == "aws:kms"
    assert params["SSEKMSKeyID"] == "alias/ops"
    for key in _objects(s3, bucket):
        head = s3.client().head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"].endswith("alias/ops"), key


@pytest.mark.parametrize("s3", ["moto"], indirect=True)
def test_aes256_from_the_spec_overrides_the_operators_kms_default(s3, tmp_path):
    """A spec's AES256 wins over the operator's aws:kms, whose default key is then unused."""
    settings = {"server_side_encryption": "aws:kms", "sse_kms_key_id": "alias/ops"}
    bucket, params, _ = _publish(
        s3, tmp_path, "single-archive", {"ServerSideEncryption": "AES256"}, settings
    )
    assert params["ServerSideEncryption"] == "AES256"
    assert "SSEKMSKeyID" not in params
    (key,) = _objects(s3, bucket)
    assert s3.client().head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"


@pytest.mark.parametrize("s3", ["moto"], indirect=True)
@pytest.mark.parametrize("compress", [False, True])
def test_expected_bucket_owner_is_sent_on_writes_and_clean_up(s3, tmp_path, compress, monkeypatch):
    """Every write and every clean-up request carries x-amz-expected-bucket-owner."""
    import publisher_s3._plugin as plugin
    from publisher_s3._client import make_client

    seen: list[tuple[str, str | None]] = []

    def record(model, params, **_):
        seen.append((model.name, params["headers"].get("x-amz-expected-bucket-owner")))

    def fail_complete(model, **_):
        if model.name == "CompleteMultipartUpload":
            raise RuntimeError("injected failure")

    def patched(*args, **kwargs):
        client, region = make_client(*args, **kwargs)
        client.meta.events.register("before-call.s3", record)
        client.meta.events.register("before-call.s3", fail_complete)
        return client, region

    monkeypatch.setattr(plugin, "make_client", patched)
    source = _tree(tmp_path / "src", "directory")
    bucket = s3.new_bucket()
    document = {**s3_spec(s3, bucket, "owned", compress), "ExpectedBucketOwner": MOTO_ACCOUNT}
    with pytest.raises(Exception, match="injected failure"):
        settings = {"part_size": PART, "processes": 1, "request_path": "botocore"}
        publish(document, source, settings=settings)
    operations = {name for name, _ in seen}
    assert {"CreateMultipartUpload", "UploadPart", "AbortMultipartUpload"} <= operations
    if not compress:
        assert {"PutObject", "DeleteObjects"} <= operations
    assert all(owner == MOTO_ACCOUNT for _, owner in seen), seen
    assert "Contents" not in s3.client().list_objects_v2(Bucket=bucket)


def test_the_imperative_form_carries_every_attribute():
    """opt=NAME=VALUE gives each attribute; Tags and Metadata take 'k=v&k=v' with '=' kept."""
    spec = validate(
        "s3://my-bucket/out,opt=serversideencryption=aws:kms,opt=sse_kms_key_id=alias/x,"
        "opt=bucket-key-enabled=true,opt=storageclass=GLACIER_IR,"
        "opt=tags=team=data%20eng&formula=a=b+c,opt=metadata=owner=me&x-note=1,"
        "opt=acl=bucket-owner-full-control,opt=expectedbucketowner=123456789012,"
        "opt=cachecontrol=max-age=3600,opt=compress=true,opt=contenttype=application/gzip"
    )
    params = spec.params
    assert params.server_side_encryption == "aws:kms"
    assert params.sse_kms_key_id == "alias/x"
    assert params.bucket_key_enabled is True
    assert params.storage_class == "GLACIER_IR"
    assert dict(params.tags) == {"team": "data eng", "formula": "a=b c"}
    assert dict(params.metadata) == {"owner": "me", "x-note": "1"}
    assert params.acl == "bucket-owner-full-control"
    assert params.expected_bucket_owner == MOTO_ACCOUNT
    assert params.cache_control == "max-age=3600"
    assert params.content_type == "application/gzip"


def test_the_nested_document_form_takes_mappings():
    """Tags and Metadata are mappings in YAML/JSON; a YAML number is its text."""
    spec = validate(
        {
            "Type": "s3",
            "Params": {
                "Bucket": "my-bucket",
                "Key": "k",
                "Tags": {"year": 2024, "team": "x"},
                "Metadata": {"Owner": "me"},
                "SSEKMSKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc",
                "ServerSideEncryption": "aws:kms:dsse",
            },
        }
    )
    assert dict(spec.params.tags) == {"year": "2024", "team": "x"}
    assert dict(spec.params.metadata) == {"Owner": "me"}


def _problem(document: dict[str, Any], settings: dict[str, Any] | None = None) -> str:
    with pytest.raises(SpecError) as caught:
        validate({"Type": "s3", "Bucket": "my-bucket", "Key": "k", **document}, settings=settings)
    assert "\n" not in str(caught.value)
    return str(caught.value)


BAD = [
    ({"ServerSideEncryption": "aws-kms"}, "did you mean 'aws:kms'?"),
    ({"ServerSideEncryption": "aes256"}, "did you mean 'AES256'?"),
    ({"SSEKMSKeyId": "alias/x"}, "SSEKMSKeyId needs ServerSideEncryption 'aws:kms'"),
    (
        {"ServerSideEncryption": "AES256", "SSEKMSKeyId": "alias/x"},
        "SSEKMSKeyId needs ServerSideEncryption",
    ),
    ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "my key"}, "is not a KMS key id"),
    ({"BucketKeyEnabled": True}, "BucketKeyEnabled: true needs ServerSideEncryption 'aws:kms'"),
    ({"BucketKeyEnabled": "yes"}, "expected true or false"),
    ({"SSECustomerKey": "c2VjcmV0"}, "SSE-C (customer-provided keys) is not supported"),
    ({"SSECustomerAlgorithm": "AES256"}, "credential-free get"),
    ({"StorageClass": "STANDARD-IA"}, "did you mean 'STANDARD_IA'?"),
    ({"StorageClass": "GLACIER"}, "cannot be read until restored"),
    ({"StorageClass": "DEEP_ARCHIVE"}, "use 'GLACIER_IR'"),
    ({"ACL": "public"}, "did you mean 'public-read'?"),
    ({"ExpectedBucketOwner": "12345"}, "is not an AWS account id (12 digits"),
    ({"ExpectedBucketOwner": "１２３４５６７８９０１２"}, "is not an AWS account id"),
    ({"CacheControl": "max-age=1\r\nX: y"}, "a header value is printable ASCII"),
    ({"ContentType": "text/plain"}, "ContentType applies to archive mode"),
    ({"Compress": True, "ContentType": "gzip"}, "is not a media type"),
    ({"Tags": {f"k{i}": "v" for i in range(11)}}, "Tags has 11 tags; S3 allows at most 10"),
    ({"Tags": {"k" * 129: "v"}}, "must be 1-128 characters"),
    ({"Tags": {"k": "v" * 257}}, "S3 allows 256"),
    ({"Tags": {"k": "a;b"}}, "tag value 'a;b' has ';'"),
    ({"Tags": {"aws:name": "v"}}, "prefix 'aws:'"),
    ({"Tags": {"k": None}}, "needs a string value"),
    ({"Tags": ["k=v"]}, "expected a mapping of tag keys"),
    ({"Tags": "k"}, "has no '='"),
    ({"Tags": "k=1&k=2"}, "given twice"),
    ({"Tags": "k=%zz"}, "not followed by two hex digits"),
    ({"Tags": "k=%ff"}, "not UTF-8"),
    ({"Metadata": {"bad name": "v"}}, "is not an HTTP header token"),
    ({"Metadata": {"Owner": "a", "owner": "b"}}, "are the same header"),
    ({"Metadata": {"k": "résumé"}}, "a header value is printable ASCII"),
    ({"Metadata": {"k": " padded"}}, "starts or ends with a space"),
    ({"Metadata": {"k": "v" * 2048}}, "S3 allows 2048"),
]


@pytest.mark.parametrize(("document", "message"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_each_bad_attribute_is_one_clear_line(document, message):
    """Each bad attribute value is refused at validate time with a message naming it."""
    assert message in _problem(document)


def test_attribute_problems_are_records_at_their_parameters():
    """Each attribute problem carries its parameter as its path, never glued into its text."""
    with pytest.raises(SpecError) as caught:
        validate(
            {
                "Type": "s3",
                "Bucket": "my-bucket",
                "Key": "k",
                "SSECustomerKey": "c2VjcmV0",
                "ACL": "public",
                "StorageClass": "GLACIER",
                "CacheControl": " max-age=1",
                "Tags": {"aws:x": "v"},
                "Metadata": {"bad name": "v"},
            }
        )
    details = caught.value.details
    assert [p.path for p in details] == [
        "$.Params.SSECustomerKey",
        "$.Params.StorageClass",
        "$.Params.ACL",
        "$.Params.CacheControl",
        "$.Params.Tags",
        "$.Params.Metadata",
    ]
    assert all("@ $." not in p.message for p in details)
    assert details[2] == Problem(
        "$.Params.ACL",
        "ACL 'public' is not one of private, public-read, public-read-write, "
        "authenticated-read, aws-exec-read, bucket-owner-read, bucket-owner-full-control "
        "(did you mean 'public-read'?)",
    )
    assert str(details[4]) == "tag key 'aws:x' uses the prefix 'aws:' S3 reserves @ $.Params.Tags"


def test_a_kms_key_problem_is_at_the_place_given():
    """kms_key_problem places its problem where it is told; a good key id has none."""
    problem = kms_key_problem("a key", "$.Params.SSEKMSKeyId")
    assert problem is not None
    assert problem.path == "$.Params.SSEKMSKeyId"
    assert problem.message.startswith("SSEKMSKeyId 'a key' is not a KMS key id")
    assert kms_key_problem("alias/ops", "$.Params.SSEKMSKeyId") is None


def test_an_sse_c_key_is_never_quoted():
    """A refused SSE-C key does not appear in the error or the spec's repr."""
    secret = "c2VjcmV0LWtleS1kby1ub3QtcHJpbnQ="
    assert secret not in _problem({"SSECustomerKey": secret})
    from publisher_s3 import S3Params

    assert secret not in repr(S3Params(bucket="b", key="k", sse_customer_key=secret))


def test_require_encryption_refuses_a_spec_without_one():
    """PUBLISHER_S3_REQUIRE_ENCRYPTION refuses a spec left unencrypted, before any write."""
    message = _problem({}, {"require_encryption": True})
    assert "ServerSideEncryption is required (PUBLISHER_S3_REQUIRE_ENCRYPTION" in message


def test_require_encryption_accepts_the_operators_default():
    """A spec without encryption passes the requirement when the operator sets a default."""
    validate(
        {"Type": "s3", "Bucket": "my-bucket", "Key": "k"},
        settings={"require_encryption": True, "server_side_encryption": "AES256"},
    )


def test_require_encryption_from_the_environment(monkeypatch):
    """The requirement and the default are read from PUBLISHER_S3_* variables."""
    monkeypatch.setenv("PUBLISHER_S3_REQUIRE_ENCRYPTION", "true")
    assert "is required" in _problem({})
    monkeypatch.setenv("PUBLISHER_S3_SERVER_SIDE_ENCRYPTION", "aws:kms")
    monkeypatch.setenv("PUBLISHER_S3_SSE_KMS_KEY_ID", "alias/ops")
    validate({"Type": "s3", "Bucket": "my-bucket", "Key": "k"})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"server_side_encryption": "kms"}, "PUBLISHER_S3_SERVER_SIDE_ENCRYPTION 'kms'"),
        ({"sse_kms_key_id": "a key"}, "is not a KMS key id"),
        ({"require_encryption": "maybe"}, "expected true or false"),
    ],
)
def test_bad_encryption_settings_are_refused(settings, message):
    """A bad operator encryption setting is an invalid setting naming the value."""
    with pytest.raises(SpecError, match="invalid setting") as caught:
        validate({"Type": "s3", "Bucket": "my-bucket", "Key": "k"}, settings=settings)
    assert message in str(caught.value)


_TAG_TEXT = st.text(
    alphabet=st.characters(
        categories=("L", "N"), include_characters=" +-=._:/@", exclude_characters="\x00"
    ),
    max_size=20,
)


@given(st.dictionaries(_TAG_TEXT.filter(bool), _TAG_TEXT, max_size=10))
def test_tag_header_round_trips(tags):
    """A mapping encoded as the x-amz-tagging header string parses back to itself."""
    assert dict(parse_pairs(encode_pairs(tags.items()))) == tags


@given(st.dictionaries(st.text(max_size=12).filter(bool), st.text(max_size=12), max_size=6))
def test_any_text_round_trips_through_the_header_form(pairs):
    """Whatever characters keys and values hold, encoding then parsing gives them back."""
    try:
        encoded = encode_pairs(pairs.items())
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8, refused earlier by the spec
        return
    assert dict(parse_pairs(encoded)) == pairs
