"""Small downloads over the AWS Common Runtime: same answers as urllib3, fewer CPU cycles."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from publisher_core import DownloadItem, IntegrityError, ResultDescription, download, sha256_b64
from publisher_core._crt import RuntimeGets, Unreachable
from publisher_core._transport import REQUEST_PATH_VARIABLE, Transport
from tests.http_servers import SECRET, Route, use_proxy


@pytest.fixture
def carried(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """How each runtime GET ended: "body", or the name of what it raised."""
    outcomes: list[str] = []
    real = RuntimeGets.get

    def counted(self: RuntimeGets, *args: Any, **kwargs: Any) -> Any:
        try:
            body = real(self, *args, **kwargs)
        except Exception as exc:
            outcomes.append(type(exc).__name__)
            raise
        outcomes.append("body")
        return body

    monkeypatch.setattr(RuntimeGets, "get", counted)
    return outcomes


def read_small(transport: Transport, url: str, size: int) -> bytes:
    """The body of ``url``, announced as ``size`` bytes (so the runtime may carry it)."""
    buffer = memoryview(bytearray(size + 1))
    data = bytearray()
    with transport.open(url, small=size) as body:
        while n := body.readinto(buffer):
            data += buffer[:n]
        assert not body.length
    return bytes(data)


def items_for(server: Any, count: int) -> tuple[DownloadItem, ...]:
    items = []
    for n in range(count):
        data = f"file {n}\n".encode() * (n % 7 + 1)
        url = server.add(f"/d/{n}.txt", Route(body=data))
        digest = sha256_b64(hashlib.sha256(data).digest())
        items.append(
            DownloadItem(path=f"d/{n}.txt", url=url, size=len(data), checksum_sha256=digest)
        )
    return tuple(items)


def test_a_directory_of_small_files_goes_through_the_runtime_over_few_connections(
    server, carried, tmp_path
):
    """Every file is carried by the runtime, verified, over at most one connection a worker."""
    items = items_for(server, 200)
    description = ResultDescription(type="t", name="r", items=items)
    report = download(description, tmp_path / "out", workers=8)
    assert report.verified == 200
    assert carried == ["body"] * 200
    assert sum(server.requests.values()) == 200
    assert server.connections <= 8
    for item in items:
        assert (tmp_path / "out" / item.path).stat().st_size == item.size


def test_a_redirect_is_followed_by_urllib3_with_one_request_per_hop(server, carried):
    target = server.add("/there", Route(body=b"moved"))
    url = server.add("/here", Route(301, headers={"Location": target}))
    with Transport(timeout=5) as transport:
        assert read_small(transport, url, 5) == b"moved"
    assert carried == ["Unsuited"]
    assert (server.requests["/here"], server.requests["/there"]) == (2, 1)


def test_a_body_longer_than_recorded_is_cut_one_byte_past_it(server, carried, tmp_path):
    """The runtime keeps one byte past the record and drops the connection; get refuses it."""
    url = server.add("/big", Route(body=b"x" * 100_000))
    item = DownloadItem(path="big", url=url, size=10)
    with pytest.raises(IntegrityError, match="more bytes than the recorded size 10"):
        download(ResultDescription(type="t", name="r", items=(item,)), tmp_path / "o", attempts=1)
    assert carried == ["body"]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("status", "kind"), [(403, "DownloadError"), (503, "TransientError")])
def test_statuses_mean_what_they_mean_over_urllib3(server, carried, status, kind):
    url = server.add("/s", Route(status, b"<Error><Code>SlowDown</Code></Error>"))
    with Transport(timeout=5) as transport, pytest.raises(Exception) as info:
        read_small(transport, url, 5)
    assert type(info.value).__name__ == kind
    assert f"HTTP {status} " in str(info.value)
    assert "s3cr3t" not in str(info.value)
    assert carried == [kind]
    assert server.requests["/s"] == 1


def test_https_goes_to_the_runtime_once_urllib3_verified_the_host(
    tls_server, certificate, carried, monkeypatch
):
    """SSL_CERT_FILE is honoured by both; the first request verifies the host over urllib3."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    url = tls_server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport:
        assert [read_small(transport, url, 5) for _ in range(4)] == [b"alpha"] * 4
    assert carried == ["body"] * 3
    assert tls_server.requests["/a"] == 4
    assert tls_server.connections == 2  # one for urllib3, one for the runtime


def test_an_untrusted_certificate_never_reaches_the_runtime(tls_server, carried):
    """urllib3 reports the certificate at once; the runtime is not tried."""
    url = tls_server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport, pytest.raises(Exception, match="CERTIFICATE"):
        read_small(transport, url, 5)
    assert carried == []
    assert tls_server.requests["/a"] == 0


def test_a_host_the_runtime_cannot_reach_stays_with_urllib3(server, carried, monkeypatch):
    """One failed connection sends that host's later requests to urllib3, which sent them."""

    def unreachable(self: RuntimeGets, *_: Any) -> Any:
        raise Unreachable

    monkeypatch.setattr(RuntimeGets, "_connect", unreachable)
    url = server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport:
        assert [read_small(transport, url, 5) for _ in range(3)] == [b"alpha"] * 3
    assert carried == ["Unreachable"]
    assert server.requests["/a"] == 3


def test_a_proxy_keeps_requests_on_urllib3(server, carried, monkeypatch):
    use_proxy(monkeypatch, server.base)
    server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport:
        assert read_small(transport, f"http://example.invalid/a?{SECRET}", 5) == b"alpha"
    assert carried == []


def test_the_request_path_variable_turns_the_runtime_off(server, carried, monkeypatch):
    monkeypatch.setenv(REQUEST_PATH_VARIABLE, "urllib3")
    url = server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport:
        assert read_small(transport, url, 5) == b"alpha"
        assert "runtime=False" in repr(transport)
    assert carried == []


def test_without_awscrt_urllib3_carries_everything(server, carried, monkeypatch):
    def missing(self: RuntimeGets, **_: Any) -> None:
        raise ImportError("No module named 'awscrt'")

    monkeypatch.setattr(RuntimeGets, "__init__", missing)
    url = server.add("/a", Route(body=b"alpha"))
    with Transport(timeout=5) as transport:
        assert read_small(transport, url, 5) == b"alpha"
    assert carried == []
