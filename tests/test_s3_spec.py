"""The s3 spec: Bacalhau's parameters and forms, validated before anything is written."""

from __future__ import annotations

import pytest

from publisher_core import PublishContext, SpecError, load_settings, parse_document, validate
from publisher_s3 import S3Settings

SEED_CLI = [
    "s3://bucket/key",
    "s3://bucket/key,opt=endpoint=http://127.0.0.1:9000,opt=region=us-east-1",
    "s3://bucket/key,opt=compress=true",
    "s3://bucket/result-{date}-{jobID}",
]
DECLARATIVE = [
    "Type: s3\nBucket: my-task-results\nKey: task123/result.tar.gz\nCompress: true\n",
    'Type: s3\nParams: {Bucket: my-task-results, Key: "results/{jobID}/", Region: us-east-1}\n',
    "Type: s3\nParams:\n  Bucket: my-task-results\n  Key: results/{jobID}.tar.gz\n"
    "  Endpoint: http://127.0.0.1:9000\n  Region: us-east-1\n  Encoding: gzip\n",
]


@pytest.mark.parametrize("text", SEED_CLI)
def test_seed_cli_forms_validate(text):
    """Each of the seed's four CLI examples is a valid spec."""
    assert validate(text).type == "s3"


@pytest.mark.parametrize("text", DECLARATIVE)
def test_declarative_forms_validate(text):
    """The declarative examples validate, both shapes."""
    assert validate(parse_document(text)).params.bucket == "my-task-results"


def test_encoding_is_an_alias_of_compress():
    """Encoding gzip means archive mode; plain means directory mode; any case."""
    gz = validate({"Type": "s3", "Bucket": "b-1", "Key": "k", "Encoding": "GZIP"}).params
    plain = validate({"Type": "s3", "Bucket": "b-1", "Key": "k", "Encoding": "plain"}).params
    assert gz.archive is True
    assert plain.archive is False


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"Bucket": "My_Bucket", "Key": "k"}, "bucket name 'My_Bucket' is invalid"),
        ({"Bucket": "ab", "Key": "k"}, "bucket name 'ab' is invalid"),
        ({"Bucket": "a..b", "Key": "k"}, "adjacent"),
        ({"Bucket": "192.168.1.1", "Key": "k"}, "IP address"),
        ({"Bucket": "xn--bucket", "Key": "k"}, "reserves"),
        (
            {"Bucket": "b-1", "Key": "k", "Endpoint": "127.0.0.1:9000"},
            "needs a scheme: use 'https://127.0.0.1:9000'",
        ),
        (
            {"Bucket": "b-1", "Key": "k", "Endpoint": "http://user:pw@host:9000"},
            "must not contain credentials",
        ),
        ({"Bucket": "b-1", "Key": "k", "Endpoint": "http://host:99999"}, "not a valid URL"),
        ({"Bucket": "b-1", "Key": "k", "Region": "US East"}, "Region 'US East' is invalid"),
        ({"Bucket": "b-1", "Key": "k", "Encoding": "zip"}, "Encoding must be 'gzip' or 'plain'"),
        ({"Bucket": "b-1", "Key": "k", "Encoding": "gzip", "Compress": False}, "contradicts"),
        ({"Bucket": "b-1", "Key": "k/", "Compress": True}, "an archive needs a file name"),
        ({"Bucket": "b-1", "Key": "k" * 1030}, "the limit is 1024"),
    ],
)
def test_bad_specs_are_refused_with_the_fix(params, message):
    """Every S3 rule gives a one-line error naming the problem."""
    with pytest.raises(SpecError) as info:
        validate({"Type": "s3", **params})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_all_problems_at_once():
    """Bucket, endpoint and region problems are reported together."""
    with pytest.raises(SpecError) as info:
        validate({"Type": "s3", "Bucket": "B", "Key": "k", "Endpoint": "h", "Region": "X"})
    assert len(info.value.problems) == 3


def test_placeholder_values_are_checked_with_a_context():
    """A job id with '/' is refused at validation when given."""
    with pytest.raises(SpecError, match="is not allowed in a key"):
        validate("s3://bucket/{jobID}", context=PublishContext(job_id="a/b"))


def test_settings_from_the_environment():
    """PUBLISHER_S3_* settings are typed and bounded."""
    env = {
        "PUBLISHER_S3_CONCURRENCY": "4",
        "PUBLISHER_S3_PART_SIZE": str(8 * 2**20),
        "PUBLISHER_S3_URL_LIFETIME": "600",
    }
    settings = load_settings("s3", S3Settings, environ=env)
    assert settings == S3Settings(concurrency=4, part_size=8 * 2**20, url_lifetime=600)
    with pytest.raises(SpecError, match="part_size"):
        load_settings("s3", S3Settings, environ={"PUBLISHER_S3_PART_SIZE": "1024"})


def test_part_size_grows_to_fit_ten_thousand_parts():
    """A file larger than part size x 10,000 gets bigger parts, whole MiB, at most 5 GiB."""
    from publisher_s3._upload import part_size_for

    mib = 2**20
    assert part_size_for(100 * mib, 16 * mib) == 16 * mib
    assert part_size_for(50 * 1024 * mib, 5 * mib) == 6 * mib
    assert part_size_for(10**14, 5 * mib) == 5 * 1024 * mib
