"""Generated trees through the s3 publisher on moto: plan, publish, list, describe, get.

Each example publishes one generated tree (tests/trees.py) into a fresh bucket under a key
with placeholders, then checks what the bucket holds against the keys that the key rules
and the modes (docs/specs.md) promise, and rebuilds the tree with ``get`` from the
pre-signed description alone.
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
from publisher_s3._spec import endpoint_problems
from tests.s3_servers import S3Server, s3_spec
from tests.trees import Tree, build, files, snapshot, trees

# moto only (the `s3` fixture's environment, without its Ceph run) to stay fast
moto_only = pytest.mark.parametrize("s3", ["moto"], indirect=True)

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
    """TEMPLATE rendered by hand (docs/specs.md, Keys), without its suffix."""
    return f"runs/{job}/{now:%Y%m%d}-{now:%H%M%S}"


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@moto_only
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


@moto_only
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


# Endpoints: pieces that are mostly what botocore accepts, sometimes not, so that the
# property below meets both sides of each rule often.
_LABEL_CHARS = "abcXYZ019-"
_ODD_CHARS = _LABEL_CHARS + "_%. \t\n\u00fc\u017f\u0661\u200b[]:@/?#"
labels = st.one_of(
    st.text(alphabet=_LABEL_CHARS, min_size=1, max_size=8),
    st.text(alphabet=_LABEL_CHARS, min_size=1, max_size=8),
    st.text(alphabet=_LABEL_CHARS, min_size=1, max_size=8),
    st.text(alphabet=_ODD_CHARS, max_size=6),
    st.sampled_from(["xn--a", "xn--zz", "xn--mnchen-3ya", "xn--", "a" * 63, "a" * 64, "0x7f"]),
)
dns_hosts = st.lists(labels, min_size=1, max_size=5).map(".".join)
ipv4_hosts = st.lists(st.integers(0, 999).map(str), min_size=1, max_size=5).map(".".join)
ipv6_hosts = st.one_of(
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.ip_addresses(v=6).map(lambda a: f"[{a}%25eth0]"),
    st.text(alphabet="0123456789abcdefABCDEF:.%", max_size=12).map(lambda a: f"[{a}]"),
    st.text(alphabet="0123456789abcdefABCDEF:.%[]", max_size=12),
)
hosts = st.one_of(dns_hosts, dns_hosts, ipv4_hosts, ipv6_hosts, st.text(max_size=12))
ports = st.one_of(
    st.none(),
    st.none(),
    st.integers(-1, 70000).map(str),
    st.text(alphabet="0123456789+- ", max_size=6),
)
built_endpoints = st.builds(
    lambda scheme, user, host, port, path: (
        f"{scheme}{user}{host}{'' if port is None else ':' + port}{path}"
    ),
    st.sampled_from(["http://"] * 4 + ["https://", "HTTPS://", "ftp://", "", "http:/"]),
    st.sampled_from([""] * 8 + ["USER:PASSWORD@", "USER@"]),
    hosts,
    ports,
    st.one_of(
        st.just(""), st.just("/"), st.text(alphabet="/abc%.", max_size=6), st.text(max_size=4)
    ),
)
endpoints = st.one_of(built_endpoints, built_endpoints, built_endpoints, st.text(max_size=40))


@settings(max_examples=2000, deadline=None)
@given(endpoint=endpoints)
def test_every_endpoint_validate_accepts_botocore_and_urllib3_accept(endpoint: str) -> None:
    """An Endpoint endpoint_problems accepts passes botocore's client-creation check and
    urllib3's URL parsing (which IDNA-encodes hosts), so validate never passes an
    endpoint that publish then refuses."""
    from urllib.parse import urlsplit

    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url
    from urllib3.util import parse_url

    if endpoint_problems(endpoint):
        return
    assert is_valid_endpoint_url(endpoint) or is_valid_ipv6_endpoint_url(endpoint)
    port = urlsplit(endpoint).port  # botocore's parse: no ValueError
    assert port is None or 1 <= port <= 65535
    parsed = parse_url(endpoint)
    assert parsed.host
    (parsed.host.strip("[]").split("%")[0]).encode("idna")


dns_labels = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", fullmatch=True)
valid_dns = (
    st.lists(dns_labels, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda h: len(h) <= 253 and not set(h) <= set("0123456789."))
    .filter(lambda h: not any(label[:4].lower() == "xn--" for label in h.split(".")))
)
valid_hosts = st.one_of(
    valid_dns,
    valid_dns.map(lambda h: h + "."),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)


@settings(max_examples=500, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP"]),
    host=valid_hosts,
    port=st.none() | st.integers(1, 65535),
    path=st.sampled_from(["", "/", "/prefix", "/a/b/"]),
)
def test_well_formed_endpoints_are_accepted(
    scheme: str, host: str, port: int | None, path: str
) -> None:
    """A DNS name, IPv4 or bracketed IPv6 host with any port 1-65535 and a path is a
    valid Endpoint, as it is for botocore: the rules refuse nothing a store could use."""
    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    endpoint = f"{scheme}://{host}{'' if port is None else f':{port}'}{path}"
    assert endpoint_problems(endpoint) == []
    assert is_valid_endpoint_url(endpoint) or is_valid_ipv6_endpoint_url(endpoint)


@settings(max_examples=1000, deadline=None)
@given(endpoint=endpoints, where=st.integers(0, 40))
def test_endpoint_problems_are_one_bounded_line_without_credentials(
    endpoint: str, where: int
) -> None:
    """Every Endpoint problem is one line of bounded length that never quotes a user or
    password, wherever they sit in the URL."""
    cut = min(where, len(endpoint))
    for candidate in (endpoint, endpoint[:cut] + "USER:PASSWORD@" + endpoint[cut:]):
        for problem in endpoint_problems(candidate):
            assert problem.path == "$.Params.Endpoint"
            text = str(problem)
            assert "\n" not in text
            assert len(text) < 500
            assert "PASSWORD" not in text
