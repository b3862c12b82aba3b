"""Pre-signed GET URLs: the runtime's signer gives botocore's URL, and stores accept it."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timezone
from typing import Any

import botocore.crt.auth
import pytest
from hypothesis import given
from hypothesis import strategies as st

import publisher_core as pc
from publisher_s3 import _presign
from publisher_s3._client import make_client, new_session
from publisher_s3._presign import Presigner, botocore_url
from publisher_s3._spec import S3Settings
from tests.s3_servers import s3_spec

FIXED = datetime(2026, 12, 4, 12, 0, 0, tzinfo=timezone.utc)

# Keys as users write them: any text S3 takes (no NUL, no lone surrogates), slashes included.
KEYS = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=60,
)
VERSIONS = st.none() | st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+=/", min_size=1
)


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAPRESIGNTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "presign-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def _presigner(endpoint: str | None, region: str, bucket: str = "bucket") -> Presigner:
    session = new_session()
    client, _ = make_client(endpoint, region, bucket, S3Settings(), session=session)
    return Presigner(client, bucket, 3600, session)


def _frozen(presigner: Presigner, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both signers at the same instant, so that their signatures can be compared."""
    monkeypatch.setattr(botocore.crt.auth, "get_current_datetime", lambda **_: FIXED)
    fast = presigner._fast
    assert fast is not None
    fast.config = fast.config.replace(date=FIXED)


_PRESIGNERS: dict[tuple[str | None, str], Presigner] = {}


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [
        ("http://127.0.0.1:9000", "us-east-1"),  # a custom endpoint: path style
        (None, "eu-west-1"),  # AWS: virtual-hosted style
        (None, "us-east-1"),
    ],
)
@given(key=KEYS, version=VERSIONS)
def test_the_runtime_signs_exactly_the_url_botocore_signs(
    credentials, monkeypatch, endpoint, region, key, version
):
    presigner = _PRESIGNERS.get((endpoint, region)) or _presigner(endpoint, region)
    _PRESIGNERS[endpoint, region] = presigner  # a client per example would take minutes
    _frozen(presigner, monkeypatch)
    expected = botocore_url(presigner.client, "bucket", key, 3600, version)
    assert presigner.url(key, version) == expected


def test_a_session_token_is_signed_in(credentials, monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token/+=")
    presigner = _presigner("http://127.0.0.1:9000", "us-east-1")
    _frozen(presigner, monkeypatch)
    url = presigner.url("a/b.txt")
    assert "X-Amz-Security-Token=session-token%2F%2B%3D" in url
    assert url == botocore_url(presigner.client, "bucket", "a/b.txt", 3600, None)


def test_without_the_runtime_botocore_signs_each_url(credentials, monkeypatch):
    def no_awscrt(*_: Any) -> Any:
        raise ImportError("No module named 'awscrt'")

    monkeypatch.setattr(_presign._RuntimeSigner, "for_bucket", no_awscrt)
    presigner = _presigner("http://127.0.0.1:9000", "us-east-1")
    assert presigner._fast is None
    assert "signer=botocore" in repr(presigner)
    assert "X-Amz-Signature=" in presigner.url("a.txt")


def test_s3_express_buckets_are_left_to_botocore(credentials):
    session = new_session()
    client, _ = make_client(
        "http://127.0.0.1:9000", "us-east-1", "b", S3Settings(), session=session
    )
    presigner = Presigner(client, "data--use1-az4--x-s3", 3600, session)
    assert presigner._fast is None


def test_the_repr_names_no_secret(credentials):
    presigner = _presigner("http://127.0.0.1:9000", "us-east-1")
    text = repr(presigner)
    assert "presign-secret" not in text and "AKIA" not in text
    assert "signer=runtime" in text


@pytest.mark.parametrize("versioned", [False, True])
def test_stores_accept_the_urls_of_every_file(s3, tmp_path, versioned):
    """Ceph RGW checks every signature: odd keys, versions and all, fetched as signed."""
    tree = tmp_path / "result"
    names = ["plain.txt", "with space.txt", "plus+sign.txt", "ünïcode.txt", "tilde~x", "a=b&c"]
    for n, name in enumerate(names):
        (tree / "sub dir").mkdir(parents=True, exist_ok=True)
        (tree / "sub dir" / name).write_bytes(f"file {n}\n".encode())
    bucket = s3.new_bucket(versioned=versioned)
    published = pc.publish(s3_spec(s3, bucket, "odd keys/", compress=False), tree)
    description = pc.describe(published)
    assert len(description.items) == len(names)
    for item in description.items:
        with urllib.request.urlopen(item.url) as response:
            assert response.read() == (tree / item.path).read_bytes()
    report = pc.get(published, tmp_path / "back")
    assert report.verified == len(names)
