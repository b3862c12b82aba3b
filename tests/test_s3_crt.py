"""The lean request path (``publisher_s3._crt``): small files through the AWS Common Runtime.

What botocore still decides (the bucket's URL, the attribute headers) must come out as
botocore would send it; failures through the runtime are named, retried and cleaned up
like botocore's (the fault matrix in test_faults.py covers the rest of it); and the
runtime steps aside where it cannot carry the requests.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from publisher_core import PublishError, get, publish
from publisher_s3._client import make_client, new_session
from publisher_s3._crt import _attribute_headers, crt_puts
from publisher_s3._spec import S3Settings
from publisher_s3._transfer import Destination
from tests.fault_proxy import Fault, fault_proxy
from tests.s3_servers import S3Server
from tests.trees import build, snapshot

ARGUMENTS = {
    "ServerSideEncryption": "aws:kms",
    "SSEKMSKeyId": "alias/results",
    "BucketKeyEnabled": True,
    "StorageClass": "STANDARD_IA",
    "Tagging": "team=data%20eng&run=7",
    "Metadata": {"owner": "me", "x-note": "1"},
    "ACL": "bucket-owner-full-control",
    "CacheControl": "max-age=60, public",
}


class _Sent(Exception):
    """Raised in place of sending: the request botocore built is all the test needs."""


def _botocore_headers(client: Any, arguments: dict[str, Any], owner: str) -> dict[str, str]:
    seen: dict[str, str] = {}

    def capture(request: Any, **_: Any) -> None:
        seen.update(
            (k.lower(), v.decode() if isinstance(v, bytes) else v)
            for k, v in request.headers.items()
        )
        raise _Sent

    client.meta.events.register("before-send.s3.PutObject", capture)
    with pytest.raises(_Sent):
        client.put_object(
            Bucket="bucket", Key="k", Body=b"x", ExpectedBucketOwner=owner, **arguments
        )
    return seen


def test_attribute_headers_are_the_ones_botocore_sends(monkeypatch):
    """Every object attribute (and ExpectedBucketOwner) travels in botocore's own header."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    client, _ = make_client("http://127.0.0.1:9", "us-east-1", "bucket", S3Settings())
    owner = "123456789012"
    ours = _attribute_headers(Destination(client, "bucket", ARGUMENTS), owner)
    theirs = _botocore_headers(client, ARGUMENTS, owner)
    assert len(ours) == len(ARGUMENTS) + 1 + 1  # two metadata entries, plus the owner
    for name, value in ours:
        assert theirs.get(name.lower()) == value, (name, value, theirs)
    client.close()


def _tree(root: Path) -> Path:
    return build(
        {"a.txt": b"alpha\n", "named": {"données": {"résumé.txt": b"cv\n" * 10}}, "z.txt": b"z"},
        root,
    )


def _spec(endpoint: str, bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key},opt=endpoint={endpoint}"


def test_a_failing_file_is_named_and_nothing_is_left(s3: S3Server, tmp_path):
    """A 403 on one object through the runtime fails the publish naming that object."""
    bucket = s3.new_bucket()
    with fault_proxy(s3.endpoint) as proxy:
        proxy.add(
            Fault(
                action="status",
                method="PUT",
                target=re.escape("r%C3%A9sum%C3%A9.txt"),
                times=None,
                status=403,
                code="AccessDenied",
            )
        )
        with pytest.raises(PublishError) as failure:
            publish(_spec(proxy.endpoint, bucket, "named/"), _tree(tmp_path / "src"))
    assert re.search(
        r"PutObject s3://\S+/named/named/données/résumé\.txt failed with AccessDenied",
        str(failure.value),
    ), failure.value
    assert s3.client().list_objects_v2(Bucket=bucket).get("Contents", []) == []


def test_a_transient_failure_is_retried_and_the_result_round_trips(s3: S3Server, tmp_path):
    """Two 503s on one object through the runtime: retried, and the result is complete."""
    bucket = s3.new_bucket()
    source = _tree(tmp_path / "src")
    with fault_proxy(s3.endpoint) as proxy:
        fault = Fault(action="status", method="PUT", target=r"/a\.txt", times=2)
        proxy.add(fault)
        result = publish(_spec(proxy.endpoint, bucket, "retried/"), source)
        assert fault.hits == 2
        get(result, tmp_path / "out")  # the record names the proxy
    assert snapshot(tmp_path / "out") == snapshot(source)


@pytest.mark.parametrize("s3", ["moto"], indirect=True)
def test_the_runtime_steps_aside_behind_a_proxy_or_when_told(s3: S3Server, monkeypatch):
    """Behind HTTP(S)_PROXY, or with request_path botocore, botocore sends everything."""
    session = new_session()
    client, _ = make_client(s3.endpoint, "us-east-1", "b", S3Settings(), session=session)
    to = Destination(client, "b")
    used = crt_puts(to, session, S3Settings(), None)
    assert used is not None
    used.close()
    assert crt_puts(to, session, S3Settings(request_path="botocore"), None) is None
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    assert crt_puts(to, session, S3Settings(), None) is None
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassed = crt_puts(to, session, S3Settings(), None)
    assert bypassed is not None
    bypassed.close()
    client.close()


def test_credentials_reach_the_runtime_once_or_on_every_signing():
    """Fixed keys are handed over once; refreshing ones are read from botocore each time."""
    from awscrt import auth
    from botocore.credentials import Credentials, RefreshableCredentials

    from publisher_s3._crt import _provider

    fixed = _provider(auth, Credentials("AKIAFIXED", "secret", "token"))
    got = fixed.get_credentials().result(5)
    assert (got.access_key_id, got.secret_access_key, got.session_token) == (
        "AKIAFIXED",
        "secret",
        "token",
    )

    issued: list[str] = []

    def refresh() -> dict[str, str]:  # always about to expire: every read refreshes
        issued.append(f"AKIAROLL{len(issued)}")
        soon = datetime.now(timezone.utc) + timedelta(seconds=30)
        return {
            "access_key": issued[-1],
            "secret_key": "s",
            "token": "t",
            "expiry_time": soon.isoformat(),
        }

    rolling = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    provider = _provider(auth, rolling)
    first = provider.get_credentials().result(5).access_key_id
    second = provider.get_credentials().result(5).access_key_id
    assert first != second
    assert second == issued[-1]
