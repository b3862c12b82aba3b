"""The s3 spec: Bacalhau's parameters and forms, validated before anything is written."""

from __future__ import annotations

from typing import Any

import pytest

from publisher_core import (
    Problem,
    PublishContext,
    SpecError,
    load_settings,
    parse_document,
    validate,
)
from publisher_s3 import S3Settings
from publisher_s3._spec import bucket_problems, endpoint_problems, environment_endpoint_problems

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


def test_spec_problems_are_records_at_their_parameters():
    """Each S3 rule's problem carries its parameter as its path, never glued into its text."""
    with pytest.raises(SpecError) as info:
        validate(
            {
                "Type": "s3",
                "Bucket": "a..b",
                "Key": "{foo}",
                "Endpoint": "ftp://h",
                "Region": "X",
                "Encoding": "zip",
            }
        )
    assert info.value.details == (
        Problem("$.Params.Bucket", "bucket name 'a..b' has adjacent '.'/'-' characters"),
        Problem(
            "$.Params.Endpoint",
            "Endpoint scheme 'ftp' is not supported: use https:// (or http://)",
        ),
        Problem(
            "$.Params.Region",
            "Region 'X' is invalid: lower-case letters, digits and '-', such as 'us-east-1'",
        ),
        Problem("$.Params.Encoding", "Encoding must be 'gzip' or 'plain', got 'zip'"),
        Problem(
            "$.Params.Key",
            "unknown placeholder {foo}; known: {jobID}, {executionID}, {nodeID}, {date}, {time}",
        ),
    )
    assert info.value.problems[0] == (
        "bucket name 'a..b' has adjacent '.'/'-' characters @ $.Params.Bucket"
    )


def test_bucket_and_endpoint_problems_are_placed():
    """bucket_problems are at $.Params.Bucket; endpoint_problems at ``where``, or nowhere."""
    assert bucket_problems("ab") == [
        Problem(
            "$.Params.Bucket",
            "bucket name 'ab' is invalid: 3-63 characters of lower-case letters, digits, "
            "'.' and '-', starting and ending with a letter or digit",
        )
    ]
    assert [p.path for p in bucket_problems("xn--a..b")] == ["$.Params.Bucket"] * 2
    message = "Endpoint has ':' but no port after it"
    assert endpoint_problems("http://h:") == [Problem("$.Params.Endpoint", message)]
    assert endpoint_problems("http://h:", where="X") == [Problem("X", message)]
    assert endpoint_problems("http://h:", where=None) == [Problem(None, message)]
    assert str(endpoint_problems("http://h:", where=None)[0]) == message
    assert endpoint_problems("http://h:1") == []


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
    from publisher_s3._transfer import part_size_for

    mib = 2**20
    assert part_size_for(100 * mib, 16 * mib) == 16 * mib
    assert part_size_for(50 * 1024 * mib, 5 * mib) == 6 * mib
    assert part_size_for(10**14, 5 * mib) == 5 * 1024 * mib


# Endpoints botocore (or urllib3 when the request is built) refuses: each must be refused
# at validate, with one line, so that publish never fails on them with exit 1.
BAD_ENDPOINTS = [
    ("http://127.0.0.1:9611\n", "whitespace or control character"),
    ("http://127.0.0.1:9611\t", "whitespace or control character"),
    ("http://exa\u200bmple.com", "whitespace or control character"),
    ("https://exa mple.com", "whitespace or control character"),
    ("http://%41", "percent-encoding"),
    ("http://" + "a" * 300, "host is longer than 253"),
    ("http://" + "a" * 64 + ".com", "label"),
    ("http://127.0.0.1:0", "Port out of range 1-65535"),
    ("http://[::1]:0", "Port out of range 1-65535"),
    ("http://host:65536", "Port out of range 1-65535"),
    ("http://host:+80", "port"),
    ("http://host:", "port"),
    ("http://xn--a.com", "not a valid IDNA"),
    ("http://xn--zz.com", "not a valid IDNA"),
    ("http://\u017f.com", "xn--"),
    ("http://m\u00fcnchen.de", "xn--mnchen-3ya.de"),
    ("http://\u0661\u0662.com", "xn--"),
    ("http://ex_ample.com", "label"),
    ("http://-a.com", "label"),
    ("http://a..com", "label"),
    ("http://1.2.3.4.5", "IPv4"),
    ("http://999.1.1.1", "IPv4"),
    ("http://[::1", "not a valid URL"),
    ("http://[fe80::1%25eth0]:9000", "percent-encoding"),
    ("http://[not-v6]", "IPv6"),
    ("http://host?", "query or fragment"),
    ("http://host#", "query or fragment"),
]


@pytest.mark.parametrize(("endpoint", "message"), BAD_ENDPOINTS)
def test_endpoints_botocore_would_refuse_are_refused_at_validate(endpoint, message):
    """An Endpoint botocore or urllib3 would refuse at publish is a one-line SpecError."""
    with pytest.raises(SpecError) as info:
        validate({"Type": "s3", "Bucket": "b-1", "Key": "k", "Endpoint": endpoint})
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 400
    assert len(info.value.problems) == 1


GOOD_ENDPOINTS = [
    "http://127.0.0.1:9000",
    "https://minio.example.com:9000",
    "http://localhost",
    "HTTPS://S3.Example.COM",
    "https://s3.example.com.",
    "https://s3.example.com/prefix/",
    "http://[::1]:9000",
    "http://[2001:db8::1]",
    "http://[::ffff:192.0.2.1]:80",
    "https://xn--mnchen-3ya.de",
    "http://host:65535",
    "http://host:1",
    "http://1-2.example",
    "http://" + ".".join(["a" * 63] * 3) + "." + "b" * 61,
]


@pytest.mark.parametrize("endpoint", GOOD_ENDPOINTS)
def test_valid_endpoints_validate(endpoint):
    """IPv4, bracketed IPv6, DNS names (punycode, a trailing dot, a path) validate."""
    assert validate({"Type": "s3", "Bucket": "b-1", "Key": "k", "Endpoint": endpoint})


@pytest.mark.parametrize(
    "endpoint",
    [
        "USER:PASSWORD@host:9000",
        "ftp://USER:PASSWORD@host",
        "http://USER:PASSWORD@exa mple.com",
        "http://USER:PASSWORD@host:0",
        "http://USER:PASSWORD@[::1",
        "USER:PASSWORD@x://host",
        "http://USER:PASSWORD@host?q",
    ],
)
def test_endpoint_problems_never_echo_credentials(endpoint):
    """Whatever else is wrong, an Endpoint's user and password never appear in the error."""
    with pytest.raises(SpecError) as info:
        validate({"Type": "s3", "Bucket": "b-1", "Key": "k", "Endpoint": endpoint})
    assert "must not contain credentials" in str(info.value)
    assert "USER" not in str(info.value)
    assert "PASSWORD" not in str(info.value)


@pytest.fixture
def no_aws_endpoint(monkeypatch):
    """No endpoint from the environment unless a test sets one."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://USER:PASSWORD@127.0.0.1:9000", "must not contain credentials"),
        ("https://exa mple.com", "whitespace or control character"),
        ("http://127.0.0.1:0", "Port out of range"),
    ],
)
def test_an_environment_endpoint_obeys_the_spec_rules(no_aws_endpoint, variable, value, message):
    """An endpoint botocore would take from the environment is refused at validate, naming
    the variable and never echoing its credentials."""
    no_aws_endpoint.setenv(variable, value)
    with pytest.raises(SpecError) as info:
        validate("s3://b-1/k/")
    text = str(info.value)
    assert message in text
    assert variable in text
    assert "USER" not in text
    assert "PASSWORD" not in text
    assert "\n" not in text


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
def test_an_environment_endpoint_problem_is_at_its_variable(no_aws_endpoint, variable):
    """An environment endpoint's problem has the variable's place as its path, from
    environment_endpoint_problems and validate alike."""
    message = "Endpoint scheme 'ftp' is not supported: use https:// (or http://)"
    expected = Problem(f"environment variable {variable}", message)
    assert environment_endpoint_problems({variable: "ftp://h"}) == [expected]
    no_aws_endpoint.setenv(variable, "ftp://h")
    with pytest.raises(SpecError) as info:
        validate("s3://b-1/k/")
    assert info.value.details == (expected,)
    assert str(info.value) == f"invalid spec: {message} @ environment variable {variable}"


def test_a_configured_endpoint_is_refused_at_its_place():
    """The client's check of a configured endpoint raises an invalid setting whose problem
    is at the place given (the AWS config profile, or a variable)."""
    from publisher_s3._client import _check_endpoint

    where = "endpoint_url of AWS config profile 'default'"
    with pytest.raises(SpecError) as info:
        _check_endpoint("http://h:0", where)
    message = "Endpoint is not a valid URL (Port out of range 1-65535: 0)"
    assert info.value.what == "setting"
    assert info.value.details == (Problem(where, message),)
    assert str(info.value) == f"invalid setting: {message} @ {where}"


def test_an_environment_endpoint_is_checked_only_where_botocore_uses_it(no_aws_endpoint):
    """A spec's Endpoint, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS or a valid AWS_ENDPOINT_URL_S3
    each make botocore ignore a bad AWS_ENDPOINT_URL, so validate does too."""
    no_aws_endpoint.setenv("AWS_ENDPOINT_URL", "http://USER:PASSWORD@127.0.0.1:9000")
    assert validate("s3://b-1/k/,opt=endpoint=http://127.0.0.1:9000")
    no_aws_endpoint.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
    assert validate("s3://b-1/k/")
    no_aws_endpoint.setenv("AWS_ENDPOINT_URL_S3", "")  # empty: botocore skips it
    with pytest.raises(SpecError, match="AWS_ENDPOINT_URL"):
        validate("s3://b-1/k/")
    no_aws_endpoint.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert validate("s3://b-1/k/")


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ("http://USER:PASSWORD@127.0.0.1:9", "must not contain credentials"),
        ("http://exa mple.com", "whitespace or control character"),
        ("127.0.0.1:9000", "needs a scheme"),
        ("http://127.0.0.1:0", "Port out of range"),
    ],
)
def test_a_result_with_a_bad_endpoint_is_refused_when_read(endpoint, message):
    """describe refuses a result record whose Endpoint breaks the spec rules, exit 2, and
    never repeats its credentials."""
    from publisher_core import describe

    record = {
        "Type": "s3",
        "Params": {"Bucket": "b-1", "Key": "k.tar.gz", "Endpoint": endpoint},
    }
    with pytest.raises(SpecError) as info:
        describe(record)
    text = str(info.value)
    assert info.value.what == "result"
    assert message in text
    assert "PASSWORD" not in text
    assert "\n" not in text


def test_the_region_probe_reads_the_header_and_closes_its_client() -> None:
    """HeadBucket's x-amz-bucket-region answers even when denied; the probe is closed."""
    from botocore.exceptions import ClientError

    from publisher_s3._client import _discover_region

    class Probe:
        closed = False

        def head_bucket(self, Bucket: str) -> dict[str, object]:
            reply: Any = {
                "Error": {"Code": "403"},
                "ResponseMetadata": {"HTTPHeaders": {"x-amz-bucket-region": "eu-west-3"}},
            }
            raise ClientError(reply, "HeadBucket")

        def close(self) -> None:
            self.closed = True

    probe = Probe()

    class Session:
        def create_client(self, *args: object, **kwargs: object) -> Probe:
            return probe

    assert _discover_region(Session(), "bucket-a", None) == "eu-west-3"
    assert probe.closed
