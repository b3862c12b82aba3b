"""The transport of get: pooled connections per host, redirects, TLS, proxies, no secrets."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher_core import DownloadError, DownloadItem, ResultDescription, download, sha256_b64
from publisher_core._fetch import RUNTIME_PER_WORKER
from publisher_core._retry import retry_after_seconds
from publisher_core._transport import REQUEST_PATH_VARIABLE, TransientError, Transport
from tests.http_servers import SECRET, Route, use_proxy


def read(transport: Transport, url: str) -> bytes:
    """The whole body of ``url``."""
    buffer = memoryview(bytearray(1 << 16))
    data = bytearray()
    with transport.open(url) as body:
        while n := body.readinto(buffer):
            data += buffer[:n]
    return bytes(data)


def refusal(url: str) -> str:
    """The DownloadError a transport raises for ``url``, as text."""
    with Transport(timeout=5) as transport, pytest.raises(DownloadError) as refused:
        read(transport, url)
    return str(refused.value)


def item(url: str, path: str, data: bytes) -> DownloadItem:
    return DownloadItem(
        path=path,
        url=url,
        size=len(data),
        checksum_sha256=sha256_b64(hashlib.sha256(data).digest()),
    )


# --- connection reuse ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["urllib3", "crt"])
def test_a_directory_get_reuses_connections(server, tmp_path, monkeypatch, path):
    """40 files fetched by 4 workers take at most 4 connections over urllib3 (16 through
    the runtime, 4 requests in flight per worker), not one per file."""
    monkeypatch.setenv(REQUEST_PATH_VARIABLE, path)
    items = []
    for n in range(40):
        data = f"file {n}\n".encode() * (n + 1)
        items.append(item(server.add(f"/r/f{n:02d}.txt", Route(body=data)), f"f{n:02d}.txt", data))
    report = download(
        ResultDescription(type="t", name="r", items=tuple(items)), tmp_path / "out", workers=4
    )
    assert (report.files, report.verified) == (40, 40)
    assert (tmp_path / "out" / "f39.txt").read_bytes() == b"file 39\n" * 40
    assert sum(server.requests.values()) == 40
    assert 1 <= server.connections <= 4 * (RUNTIME_PER_WORKER if path == "crt" else 1)


def test_requests_one_after_another_share_one_connection(server):
    """A body read to its end leaves its connection open for the next request."""
    url = server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport:
        assert [read(transport, url) for _ in range(5)] == [b"alpha"] * 5
    assert (server.requests["/a"], server.connections) == (5, 1)


def test_a_body_left_early_closes_its_connection(server):
    """A body not read to its end is not reused: its bytes would be the next reply's."""
    url = server.add("/big", Route(body=bytes(1 << 20)))
    with Transport(timeout=5) as transport:
        with transport.open(url) as body:
            assert body.readinto(memoryview(bytearray(10))) == 10
        assert len(read(transport, url)) == 1 << 20
    assert (server.requests["/big"], server.connections) == (2, 2)


def test_an_error_reply_keeps_its_connection_and_says_when_to_retry(server):
    """A 503 with Retry-After is transient, carries the hint, and its connection serves on."""
    url = server.add(
        "/a",
        Route(503, b"<Error><Code>SlowDown</Code></Error>", {"Retry-After": "7"}),
        Route(body=b"alpha"),
    )
    with Transport(timeout=5) as transport:
        with pytest.raises(TransientError) as failure:
            read(transport, url)
        assert read(transport, url) == b"alpha"
    assert (failure.value.reason, failure.value.retry_after) == ("HTTP 503 Service Unavailable", 7)
    assert (server.requests["/a"], server.connections) == (2, 1)


def test_a_closed_transport_opens_nothing_more(server):
    """After close() (which closes its connections) a transport refuses to open URLs."""
    url = server.add("/a", Route(body=b"alpha"))
    transport = Transport(timeout=5)
    read(transport, url)
    transport.close()
    with pytest.raises(RuntimeError, match="closed"):
        read(transport, url)


# --- redirects -------------------------------------------------------------------------


def test_redirects_are_followed(server):
    """A 302 (relative Location) and a 307 lead to the body; the reply is the last one's."""
    url = server.add("/a", Route(302, headers={"Location": "/b?X-Amz-Signature=other"}))
    server.add("/b", Route(307, headers={"Location": f"{server.base}/c"}))
    server.add("/c", Route(body=b"gamma"))
    with Transport(timeout=5) as transport:
        assert read(transport, url) == b"gamma"
    assert server.requests == Counter({"/a": 1, "/b": 1, "/c": 1})
    assert server.connections == 1


def test_a_redirect_loop_ends_after_10_redirects(server):
    """More than 10 redirects fail at once, naming the status, without the query string."""
    url = server.add("/loop", Route(302, headers={"Location": "/loop?X-Amz-Signature=s3cr3t"}))
    assert refusal(url) == (
        f"GET {server.base}/loop?<redacted> failed: HTTP 302 Found after 10 redirects"
    )
    assert server.requests["/loop"] == 11


def test_a_redirect_to_a_file_url_is_refused(server):
    """A server cannot make get read a local file."""
    url = server.add("/a", Route(302, headers={"Location": "file:///etc/passwd"}))
    assert refusal(url) == (
        f"GET {server.base}/a?<redacted> failed: HTTP 302 redirected it to a file URL; "
        "expected http or https"
    )


# --- secrets ---------------------------------------------------------------------------


def test_no_query_string_reaches_any_log(server, tmp_path, caplog):
    """Debug logs of every library (urllib3's request lines too) never show the signature."""
    caplog.set_level(logging.DEBUG)
    data = b"alpha"
    url = server.add("/a", Route(302, headers={"Location": f"/b?{SECRET}"}))
    server.add("/b", Route(body=data))
    download(ResultDescription(type="t", name="r", items=(item(url, "a", data),)), tmp_path / "o")
    urllib3_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/b?<redacted>" in line for line in urllib3_lines)
    assert "s3cr3t" not in caplog.text


def test_a_transport_shows_no_url(server):
    """The repr of a transport that fetched a signed URL says nothing of it."""
    url = server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport:
        read(transport, url)
        assert repr(transport) == "Transport(timeout=5, connections=8, runtime=True)"


# --- TLS -------------------------------------------------------------------------------


def test_an_untrusted_certificate_fails_at_once(tls_server):
    """A certificate the system does not trust is a final error, not a retry."""
    message = refusal(tls_server.add("/a", Route(body=b"alpha")))
    assert message.startswith(f"GET {tls_server.base}/a?<redacted> failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "s3cr3t" not in message
    assert tls_server.requests["/a"] == 0


def test_https_trusts_what_the_system_trusts_and_reuses_connections(
    tls_server, certificate, monkeypatch
):
    """SSL_CERT_FILE is honoured as by the standard library; one TLS handshake serves all."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    url = tls_server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport:
        assert [read(transport, url) for _ in range(3)] == [b"alpha"] * 3
    assert (tls_server.requests["/a"], tls_server.connections) == (3, 1)


# --- proxies ---------------------------------------------------------------------------


def test_http_proxy_is_honoured(server, monkeypatch):
    """http_proxy sends the request to the proxy, in absolute form, with its credentials."""
    use_proxy(monkeypatch, server.base.replace("http://", "http://me:p%40ss@"))
    server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport:
        assert read(transport, f"http://example.invalid/a?{SECRET}") == b"alpha"
    assert server.targets == [f"http://example.invalid/a?{SECRET}"]
    assert server.proxy_auth == ["Basic " + base64.b64encode(b"me:p@ss").decode()]


def test_no_proxy_is_honoured(server, monkeypatch):
    """A host in no_proxy is reached directly, though the proxy does not answer."""
    use_proxy(monkeypatch, "http://127.0.0.1:9", no_proxy="127.0.0.1")
    url = server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport:
        assert read(transport, url) == b"alpha"


# --- Retry-After -----------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**12))
def test_retry_after_in_seconds_is_read(seconds):
    """Retry-After: N is N seconds, spaces around it or not."""
    assert retry_after_seconds(f" {seconds} ") == seconds


@given(st.text())
def test_retry_after_is_seconds_or_nothing(text):
    """Anything but digits (an HTTP date, a negative or fractional number) is no hint."""
    value = retry_after_seconds(text)
    assert value is None or (value >= 0 and text.strip().isdigit())
