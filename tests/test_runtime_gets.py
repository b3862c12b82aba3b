"""Small downloads written to files by the AWS Common Runtime: the same answers as urllib3.

Each test counts how every runtime request ended ("body", or the kind of failure) and
what the server saw; the verdicts themselves are those of test_fetch.py.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

import pytest

from publisher_core import (
    DownloadError,
    DownloadItem,
    IntegrityError,
    ResultDescription,
    download,
    sha256_b64,
)
from publisher_core._crt import RuntimeFiles
from publisher_core._fetch import RUNTIME_PER_WORKER
from publisher_core._transport import REQUEST_PATH_VARIABLE
from tests.downloads import PAYLOAD
from tests.http_servers import SECRET, Route, use_proxy


@pytest.fixture
def carried(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """How each runtime request ended: "body", or the name of its failure."""
    outcomes: list[str] = []
    real = RuntimeFiles._outcome

    def counted(self: RuntimeFiles, *args: Any) -> Any:
        number, failure = real(self, *args)
        outcomes.append("body" if failure is None else type(failure).__name__)
        return number, failure

    monkeypatch.setattr(RuntimeFiles, "_outcome", counted)
    return outcomes


def small_item(server: Any, name: str, data: bytes, **route: Any) -> DownloadItem:
    url = server.add(f"/{name}", Route(body=data, **route))
    digest = sha256_b64(hashlib.sha256(data).digest())
    return DownloadItem(path=name, url=url, size=len(data), checksum_sha256=digest)


def get(tmp_path: Any, *items: DownloadItem, **options: Any) -> Any:
    description = ResultDescription(type="t", name="r", items=items)
    return download(description, tmp_path / "out", **options)


def test_a_directory_of_small_files_goes_through_the_runtime_over_few_connections(
    server, carried, tmp_path
):
    """Every file is carried by the runtime, verified, over reused connections."""
    items = [
        small_item(server, f"{n}.txt", f"file {n}\n".encode() * (n % 7 + 1)) for n in range(200)
    ]
    report = get(tmp_path, *items, workers=8)
    assert report.verified == 200
    assert carried == ["body"] * 200
    assert sum(server.requests.values()) == 200
    assert server.connections <= 8 * RUNTIME_PER_WORKER
    for item in items:
        assert (tmp_path / "out" / item.path).stat().st_size == item.size


def test_a_redirect_is_followed_by_urllib3(server, carried, tmp_path):
    target = server.add("/there", Route(body=b"moved"))
    url = server.add("/here", Route(301, headers={"Location": target}))
    digest = sha256_b64(hashlib.sha256(b"moved").digest())
    item = DownloadItem(path="here", url=url, size=5, checksum_sha256=digest)
    assert get(tmp_path, item).verified == 1
    assert carried == ["Unsuited"]
    assert (server.requests["/here"], server.requests["/there"]) == (2, 1)


def test_the_runtime_asks_for_one_byte_past_the_record_and_get_refuses_it(
    server, carried, tmp_path
):
    """An object longer than recorded: the runtime fetches SIZE + 1 bytes, no more."""
    url = server.add("/big", Route(body=b"x" * 100_000))
    item = DownloadItem(path="big", url=url, size=10)
    with pytest.raises(IntegrityError, match="more bytes than the recorded size 10"):
        get(tmp_path, item, attempts=1)
    assert carried == ["body"]
    assert server.requests["/big"] == 1
    assert not (tmp_path / "out").exists()


def test_a_reply_past_the_range_is_refused_unkept(server, carried, tmp_path):
    """A host that ignores Range: the runtime refuses a body past SIZE + 1 bytes."""
    url = server.add("/big", Route(body=b"x" * 1_000_000, ranges=False))
    item = DownloadItem(path="big", url=url, size=10)
    with pytest.raises(IntegrityError, match="more bytes than the recorded size 10"):
        get(tmp_path, item, attempts=1)
    assert carried == ["TooLong"]
    assert server.requests["/big"] == 1
    assert not (tmp_path / "out").exists()


def test_a_host_unlike_s3_is_left_to_urllib3(server, carried, tmp_path):
    """No ETag and no Range: the runtime keeps nothing and urllib3 makes the attempt."""
    items = [small_item(server, f"{n}", b"alpha", ranges=False) for n in range(3)]
    assert get(tmp_path, *items, attempts=1, workers=1).verified == 3
    assert carried and set(carried) == {"HostUnsuited"}
    assert sum(server.requests.values()) == 3 + len(carried)


def test_a_403_is_final_and_named(server, carried, tmp_path):
    item = small_item(server, "s", b"hello")
    server.add("/s", Route(403, b"<Error><Code>AccessDenied</Code></Error>"))
    with pytest.raises(DownloadError) as info:
        get(tmp_path, item)
    assert str(info.value) == f"GET {server.base}/s?<redacted> failed: HTTP 403 Forbidden"
    assert SECRET.split("=")[1] not in str(info.value)
    assert carried == ["DownloadError"]
    assert server.requests["/s"] == 1


def test_a_503_is_retried_by_urllib3_after_a_pause(server, carried, tmp_path, pauses):
    item = small_item(server, "s", b"hello")
    server.add("/s", Route(503, b"<Error><Code>SlowDown</Code></Error>"), Route(body=b"hello"))
    assert get(tmp_path, item).verified == 1
    assert carried == ["TransientError"]
    assert server.requests["/s"] == 2
    assert len(pauses) == 1


def test_a_silent_reply_is_cancelled_at_the_timeout_and_retried(flaky, carried, tmp_path, pauses):
    item = flaky.add("a.bin", PAYLOAD, script=["stall"])
    started = time.monotonic()
    report = get(tmp_path, item, timeout=0.5)
    assert report.verified == 1
    assert carried == ["TransientError"]
    assert flaky.requests["/a.bin"] == 2
    assert time.monotonic() - started < 5


def test_a_final_failure_cancels_the_requests_in_flight(flaky, carried, tmp_path):
    """Stalled downloads do not hold up the 404's error; nothing is left behind."""
    stalled = [flaky.add(f"s{n}.bin", PAYLOAD, then="stall") for n in range(5)]
    gone = flaky.add("gone.bin", PAYLOAD, then="404")
    started = time.monotonic()
    with pytest.raises(DownloadError, match="HTTP 404 Not Found"):
        get(tmp_path, *stalled, gone, timeout=20)
    assert time.monotonic() - started < 10
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_https_goes_to_the_runtime_once_urllib3_verified_the_host(
    tls_server, certificate, carried, monkeypatch, tmp_path
):
    """SSL_CERT_FILE is honoured by both; the first download verifies the host over urllib3."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    items = [small_item(tls_server, f"{n}.txt", b"alpha %d" % n) for n in range(6)]
    assert get(tmp_path, *items).verified == 6
    assert carried == ["body"] * 5
    assert sum(tls_server.requests.values()) == 6


def test_an_untrusted_certificate_never_reaches_the_runtime(tls_server, carried, tmp_path):
    """urllib3 reports the certificate at once; the runtime is not tried."""
    items = [small_item(tls_server, f"{n}.txt", b"alpha") for n in range(3)]
    with pytest.raises(DownloadError, match="CERTIFICATE"):
        get(tmp_path, *items)
    assert carried == []
    assert sum(tls_server.requests.values()) == 0


def test_a_host_the_runtime_cannot_reach_is_tried_once_over_urllib3(carried, tmp_path):
    """Nothing listens: the runtime's refusal costs no attempt; urllib3 names the failure."""
    from tests.test_fetch import free_port

    url = f"http://127.0.0.1:{free_port()}/a?{SECRET}"
    item = DownloadItem(path="a", url=url, size=5)
    with pytest.raises(DownloadError, match="failed after 1 attempt: ") as info:
        get(tmp_path, item, attempts=1)
    assert carried == ["HostUnsuited"]
    assert SECRET.split("=")[1] not in str(info.value)


def test_a_proxy_keeps_requests_on_urllib3(server, carried, monkeypatch, tmp_path):
    use_proxy(monkeypatch, server.base)
    server.add("/a", Route(body=b"alpha"))
    digest = sha256_b64(hashlib.sha256(b"alpha").digest())
    item = DownloadItem(
        path="a", url=f"http://example.invalid/a?{SECRET}", size=5, checksum_sha256=digest
    )
    assert get(tmp_path, item).verified == 1
    assert carried == []


def test_the_request_path_variable_turns_the_runtime_off(server, carried, monkeypatch, tmp_path):
    monkeypatch.setenv(REQUEST_PATH_VARIABLE, "urllib3")
    assert get(tmp_path, small_item(server, "a", b"alpha")).verified == 1
    assert carried == []


def test_without_awscrt_urllib3_carries_everything(server, carried, monkeypatch, tmp_path):
    def missing(self: RuntimeFiles, **_: Any) -> None:
        raise ImportError("No module named 'awscrt'")

    monkeypatch.setattr(RuntimeFiles, "__init__", missing)
    assert get(tmp_path, small_item(server, "a", b"alpha")).verified == 1
    assert carried == []


def test_a_file_the_runtime_would_write_is_created_new(server, carried, tmp_path, monkeypatch):
    """The runtime writes only into a file get created with O_EXCL the moment before."""
    created: list[int] = []
    real = os.open

    def watched(path: Any, flags: int, *args: Any) -> int:
        if str(path).endswith("a.txt"):
            created.append(flags)
        return real(path, flags, *args)

    monkeypatch.setattr(os, "open", watched)
    assert get(tmp_path, small_item(server, "a.txt", b"alpha")).verified == 1
    assert carried == ["body"]
    assert [flags & os.O_EXCL for flags in created] == [os.O_EXCL]
