"""The imperative form of Bacalhau's ``-p`` flag."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher_core import PublisherSpec, SpecError, load_spec, parse_imperative, validate

S3_DESTINATION = {"s3": ("Bucket", "Key"), "local": ("Key",)}


def parse(text: str) -> PublisherSpec:
    return parse_imperative(text, lambda t: S3_DESTINATION.get(t, ("Key",)))


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("s3://bucket/key", {"Bucket": "bucket", "Key": "key"}),
        (
            "s3://bucket/key,opt=endpoint=http://127.0.0.1:9000,opt=region=us-east-1",
            {
                "Bucket": "bucket",
                "Key": "key",
                "endpoint": "http://127.0.0.1:9000",
                "region": "us-east-1",
            },
        ),
        (
            "s3://bucket/key,opt=compress=true",
            {"Bucket": "bucket", "Key": "key", "compress": "true"},
        ),
        ("s3://bucket/result-{date}-{jobID}", {"Bucket": "bucket", "Key": "result-{date}-{jobID}"}),
        ("s3,opt=bucket=B,opt=key=K", {"bucket": "B", "key": "K"}),
        ("s3,target=s3://b/deep/key/path", {"Bucket": "b", "Key": "deep/key/path"}),
        ("s3,dst=s3://b/k", {"Bucket": "b", "Key": "k"}),
        ("s3,destination=s3://b/k", {"Bucket": "b", "Key": "k"}),
        ("S3,target=s3://b/k", {"Bucket": "b", "Key": "k"}),
        ("s3://b/k,option=region=eu-west-1", {"Bucket": "b", "Key": "k", "region": "eu-west-1"}),
        ("s3://b/k,opt=encoding=gzip", {"Bucket": "b", "Key": "k", "Compress": True}),
        ("s3://b/k,opt=encoding=PLAIN", {"Bucket": "b", "Key": "k", "Compress": False}),
        (
            's3://b/k,"opt=endpoint=http://h:1/a,b"',
            {"Bucket": "b", "Key": "k", "endpoint": "http://h:1/a,b"},
        ),
        ("local://results/{jobID}", {"Key": "results/{jobID}"}),
    ],
)
def test_seed_forms(text, params):
    """Every form of the seed's -p flag parses to Type + params."""
    spec = parse(text)
    assert spec.params == params
    assert spec.type.lower() in ("s3", "local")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty imperative spec"),
        ("s3://b/k,opt=region", "must look like opt=NAME=VALUE"),
        ("s3://b/k,region=x", "unexpected field 'region=x'"),
        ("s3://b/k,target=s3://c/d", "destination given twice"),
        ("s3://b/k,opt=key=other", "Key given both in the destination and as option 'key'"),
        ("s3://b/k,opt=region=a,opt=Region=b", "option 'Region' given twice"),
        ("s3://b/k,opt=encoding=zip", "encoding must be 'gzip' or 'plain'"),
        ("s3://b/k,opt=encoding=gzip,opt=compress=false", "contradicts compress=false"),
        ("://b/k", "must start with a publisher Type"),
        ('s3://b/k,"opt=a=b', "not a valid CSV record"),
    ],
)
def test_bad_forms_are_clear_errors(text, message):
    """Malformed imperative specs say what is wrong."""
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_unknown_options_are_errors_unlike_bacalhau():
    """An unknown option fails validation with a did-you-mean."""
    with pytest.raises(
        SpecError,
        match=r"unknown parameter 'regoin' @ \$\.Params\.regoin \(did you mean 'Region'\?\)",
    ):
        validate("s3://b/k,opt=regoin=us-east-1")


def test_load_spec_uses_the_publishers_destination():
    """load_spec asks the installed publisher which parameters the destination fills."""
    assert load_spec("s3://bucket/a/b").params == {"Bucket": "bucket", "Key": "a/b"}
    assert load_spec("local://a/b").params == {"Key": "a/b"}


def test_seed_examples_validate():
    """The seed's four CLI examples are valid s3 specs."""
    for text in [
        "s3://bucket/key",
        "s3://bucket/key,opt=endpoint=http://127.0.0.1:9000,opt=region=us-east-1",
        "s3://bucket/key,opt=compress=true",
        "s3://bucket/result-{date}-{jobID}",
    ]:
        assert validate(text).type == "s3"


plain = st.text(
    alphabet=st.characters(categories=["L", "N"], include_characters="-_."), min_size=1, max_size=12
)
keys = st.lists(plain.filter(lambda s: s not in (".", "..")), min_size=1, max_size=4).map("/".join)
values = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=0, max_size=15)


@given(plain, keys, st.dictionaries(st.sampled_from(["region", "endpoint", "compress"]), values))
def test_imperative_round_trip(bucket, key, options):
    """Writing a spec in imperative form (with CSV quoting) and parsing it gives it back."""
    import csv
    import io

    buffer = io.StringIO()
    fields = [f"s3://{bucket}/{key}"] + [f"opt={k}={v}" for k, v in options.items()]
    csv.writer(buffer, lineterminator="").writerow(fields)
    spec = parse(buffer.getvalue())
    assert spec == PublisherSpec("s3", {"Bucket": bucket, "Key": key, **options})
