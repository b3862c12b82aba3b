"""Fetching items (``_fetch``): size and SHA-256 checked as the bytes arrive, nothing read
past a recorded size, what is retried and how, and no query string in any error or log.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from publisher_core import (
    DownloadError,
    DownloadItem,
    IntegrityError,
    ResultDescription,
    _fetch,
    download,
)
from publisher_core._transport import REQUEST_PATH_VARIABLE, Transport
from tests.downloads import PAYLOAD, FlakyServer, item_for, listing, member, tar_gz


def test_http_errors_never_show_the_signature(served, tmp_path):
    """A 404 is one error that names the object without the query string."""
    _, base = served
    item = DownloadItem(path="x", url=f"{base}/missing?X-Amz-Signature=s3cr3t", size=1)
    with pytest.raises(DownloadError) as info:
        download(ResultDescription(type="t", name="n", items=(item,)), tmp_path / "out")
    assert "HTTP 404" in str(info.value)
    assert "s3cr3t" not in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change", ["content", "truncate", "extend"])
def test_tampered_bytes_are_refused_and_nothing_is_written(tmp_path, change):
    """Changed, truncated or extended files fail verification; the target never appears."""
    good = tmp_path / "good.txt"
    good.write_bytes(b"0123456789")
    item = item_for(good, "good.txt")
    other = tmp_path / "other.txt"
    other.write_bytes(b"fine")
    if change == "content":
        good.write_bytes(b"0123456780")
    elif change == "truncate":
        good.write_bytes(b"01234")
    else:
        good.write_bytes(b"0123456789!")
    description = ResultDescription(type="t", name="n", items=(item_for(other, "other.txt"), item))
    with pytest.raises(IntegrityError, match=r"good.txt"):
        download(description, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --- reading no further than the recorded size -------------------------------------------


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many bytes each read of a download handed to get, recorded."""
    handed: list[int] = []
    real = Transport.open

    @contextmanager
    def counted(
        self: Transport, url: str, timeout: float | None = None, **options: Any
    ) -> Iterator[Any]:
        with real(self, url, timeout, **options) as source:

            class Counting:
                length = None

                def readinto(self, view: memoryview) -> int:
                    n: int = source.readinto(view)
                    handed.append(n)
                    return n

            yield Counting()

    monkeypatch.setattr(Transport, "open", counted)
    return handed


def test_an_item_is_never_read_past_its_recorded_size(tmp_path, handed):
    """An endless source with a recorded Size is read to one byte past it, no further."""
    item = DownloadItem(path="z", url="file:///dev/zero", size=10)
    with pytest.raises(IntegrityError, match="z: more bytes than the recorded size 10"):
        download(ResultDescription(type="t", name="r", items=(item,)), tmp_path / "out")
    assert sum(handed) == 11


def test_an_http_item_is_never_read_past_its_recorded_size(endless, tmp_path, handed):
    """An endless HTTP body of an item with a Size is read to one byte past it."""
    item = DownloadItem(path="z", url=f"{endless}/z", size=10)
    with pytest.raises(IntegrityError, match="more bytes than the recorded size 10"):
        download(ResultDescription(type="t", name="r", items=(item,)), tmp_path / "out", attempts=1)
    assert sum(handed) == 11


# --- retries -----------------------------------------------------------------------------


FAULTS = [
    "429",
    "500",
    "502",
    "503",
    "504",
    "reset",
    "stall",
    "stall-body",
    "cut",
    "short",
    "corrupt",
    "xml",
]


def fetch(item: DownloadItem, out: Path, **options: Any) -> Any:
    """download() of one item, with a timeout short enough for the stalls."""
    options.setdefault("timeout", 0.3)
    return download(ResultDescription(type="t", name="n", items=(item,)), out, **options)


@pytest.mark.parametrize("fault", FAULTS)
def test_failures_a_retry_can_fix_are_retried(flaky, pauses, tmp_path, fault):
    """Two failures, then the file: three attempts of three succeed, each from scratch."""
    item = flaky.add("dir/a.bin", PAYLOAD, script=[fault, fault])
    report = fetch(item, tmp_path / "out", attempts=3)
    assert (tmp_path / "out" / "dir" / "a.bin").read_bytes() == PAYLOAD
    assert (report.files, report.verified) == (1, 1)
    assert flaky.requests["/dir/a.bin"] == 3
    assert len(pauses) == 2


RESET = "(Connection reset by peer|the server closed the connection without a response)"


FINAL = {
    "429": (DownloadError, "HTTP 429 Too Many Requests"),
    "500": (DownloadError, "HTTP 500 Internal Server Error"),
    "502": (DownloadError, "HTTP 502 Bad Gateway"),
    "503": (DownloadError, "HTTP 503 Slow Down"),
    "504": (DownloadError, "HTTP 504 Gateway Timeout"),
    "reset": (DownloadError, RESET),
    "stall": (DownloadError, r"timed out after 0\.3 s"),
    "stall-body": (DownloadError, r"timed out after 0\.3 s while reading the body"),
    "cut": (
        DownloadError,
        f"the connection closed {len(PAYLOAD) - len(PAYLOAD) // 2} bytes "
        "short of the Content-Length",
    ),
    "short": (IntegrityError, f"got {len(PAYLOAD) // 2} bytes, the result recorded {len(PAYLOAD)}"),
    "corrupt": (
        IntegrityError,
        r"SHA-256 is \S+, the result recorded \S+; the stored bytes were changed or corrupted",
    ),
    "xml": (IntegrityError, f"more bytes than the recorded size {len(PAYLOAD)}; refusing it"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_failures_that_persist_fail_after_the_last_attempt(flaky, pauses, tmp_path, fault):
    """One error naming the attempts and the last failure; no query string, no output."""
    item = flaky.add("a.bin", PAYLOAD, then=fault)
    before = listing(tmp_path)
    error, reason = FINAL[fault]
    with pytest.raises(error) as info:
        fetch(item, tmp_path / "out", attempts=3)
    assert type(info.value) is error
    prefix = f"GET {flaky.base}/a.bin?<redacted> failed after 3 attempts: "
    assert str(info.value).startswith(prefix)
    assert re.fullmatch(reason, str(info.value)[len(prefix) :])
    assert "s3cr3t" not in str(info.value)
    assert flaky.requests["/a.bin"] == 3
    assert not (tmp_path / "out").exists()
    assert listing(tmp_path) == before


@pytest.mark.parametrize(
    ("header", "expected"), [("7", 7.0), ("100", 20.0), ("Wed, 21 Oct 2037 07:28:00 GMT", None)]
)
def test_retry_after_is_honoured_up_to_20_seconds(
    flaky, pauses, tmp_path, header, expected, monkeypatch
):
    """A 429's Retry-After in seconds sets the wait (capped); a date falls back to backoff.

    Over urllib3: the runtime does not pass a throttled reply's headers on, so the wait
    after its attempt is the backoff (test_runtime_gets.py).
    """
    monkeypatch.setenv(REQUEST_PATH_VARIABLE, "urllib3")
    item = flaky.add("a.bin", PAYLOAD, script=["429"], retry_after=header)
    fetch(item, tmp_path / "out")
    if expected is None:
        assert len(pauses) == 1
        assert 0 <= pauses[0] <= 0.25
    else:
        assert pauses == [expected]


def test_backoff_is_exponential_with_full_jitter(flaky, pauses, tmp_path):
    """Waits are drawn from [0, 0.25 s * 2**n], never above the 20 s cap."""
    item = flaky.add("a.bin", PAYLOAD, then="503")
    with pytest.raises(DownloadError, match="failed after 10 attempts: HTTP 503 Slow Down"):
        fetch(item, tmp_path / "out", attempts=10)
    assert len(pauses) == 9
    for n, wait in enumerate(pauses):
        assert 0 <= wait <= min(20.0, 0.25 * 2**n)


def test_retries_are_logged_at_debug_without_the_query_string(flaky, pauses, tmp_path, caplog):
    """Each retry is one debug line naming the object and the failure, never the signature."""
    caplog.set_level(logging.DEBUG, logger="publisher_core")
    item = flaky.add("a.bin", PAYLOAD, script=["503", "corrupt"])
    fetch(item, tmp_path / "out")
    retries = [r.getMessage() for r in caplog.records if "; attempt " in r.getMessage()]
    assert len(retries) == 2
    # The first attempt goes through the runtime, which names the store's throttling.
    assert re.match(
        rf"GET {re.escape(flaky.base)}/a.bin\?<redacted>: "
        r"the request failed \(AWS_ERROR_S3_SLOW_DOWN\); ",
        retries[0],
    )
    assert "attempt 2 of 5" in retries[0]
    assert "SHA-256 is" in retries[1] and "attempt 3 of 5" in retries[1]
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize("status", ["403", "404"])
def test_other_client_errors_are_not_retried(flaky, pauses, tmp_path, status):
    """An expired URL's 403 or a 404 fails at once: no retry can fix it."""
    item = flaky.add("a.bin", PAYLOAD, then=status)
    with pytest.raises(DownloadError) as info:
        fetch(item, tmp_path / "out")
    reason = "Forbidden" if status == "403" else "Not Found"
    assert str(info.value) == f"GET {flaky.base}/a.bin?<redacted> failed: HTTP {status} {reason}"
    assert flaky.requests["/a.bin"] == 1
    assert pauses == []
    assert not (tmp_path / "out").exists()


def test_a_client_error_after_retries_says_which_attempt(flaky, pauses, tmp_path):
    """A 503 then a 403 (the URL expired meanwhile) stops at the 403."""
    item = flaky.add("a.bin", PAYLOAD, script=["503"], then="403")
    with pytest.raises(DownloadError) as info:
        fetch(item, tmp_path / "out")
    assert str(info.value) == (
        f"GET {flaky.base}/a.bin?<redacted> failed: HTTP 403 Forbidden (on attempt 2 of 5)"
    )
    assert flaky.requests["/a.bin"] == 2


def free_port() -> int:
    """A loopback port nothing listens on (for now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_refused_connection_is_retried(monkeypatch, tmp_path):
    """Nothing listens at first; the server starts during the first wait."""
    port = free_port()
    started: list[FlakyServer] = []

    def pause(seconds: float, cancel: threading.Event) -> None:
        if not started:
            started.append(FlakyServer(port))

    monkeypatch.setattr(_fetch, "_pause", pause)
    item = DownloadItem(path="a.bin", url=f"http://127.0.0.1:{port}/a.bin", size=len(PAYLOAD))
    try:
        with pytest.raises(DownloadError, match="HTTP 404 Not Found"):
            fetch(item, tmp_path / "out")  # the server answered: nothing is served there
        assert started[0].requests["/a.bin"] == 1
        started[0].add("a.bin", PAYLOAD)
        started.append(started[0])
        fetch(item, tmp_path / "out")
    finally:
        for server in set(started):
            server.close()
    assert (tmp_path / "out" / "a.bin").read_bytes() == PAYLOAD


def test_a_refused_connection_fails_after_the_last_attempt(pauses, tmp_path):
    """Connection refused every time: one error with the count, the URL without its query."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/a.bin?X-Amz-Signature=s3cr3t"
    item = DownloadItem(path="a.bin", url=url, size=1)
    with pytest.raises(DownloadError) as info:
        fetch(item, tmp_path / "out", attempts=2)
    assert str(info.value) == (
        f"GET http://127.0.0.1:{port}/a.bin?<redacted> failed after 2 attempts: Connection refused"
    )
    assert len(pauses) == 1
    assert not (tmp_path / "out").exists()


def test_an_archive_is_retried_then_extracted(flaky, pauses, tmp_path):
    """An archive corrupted in transit once is fetched again, verified, then extracted."""
    item = flaky.add(
        "r.tar.gz", tar_gz([member("a.txt", data=b"alpha")]), script=["corrupt"], archive=True
    )
    report = fetch(item, tmp_path / "out")
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"alpha"
    assert (report.files, report.verified) == (1, 1)
    assert flaky.requests["/r.tar.gz"] == 2


def test_one_file_failing_for_good_stops_the_others(flaky, monkeypatch, tmp_path):
    """A 404 ends the get: a download waiting to retry stops waiting, and the 404 is shown.

    Over urllib3, whose downloads wait out their pauses on threads (the runtime's
    requests in flight are cancelled: test_runtime_gets.py).
    """
    monkeypatch.setenv(REQUEST_PATH_VARIABLE, "urllib3")
    interrupted: list[bool] = []

    def pause(seconds: float, cancel: threading.Event) -> None:
        interrupted.append(cancel.wait(seconds))  # True: cut short by the cancellation

    monkeypatch.setattr(_fetch, "_pause", pause)
    slow = flaky.add("slow.bin", PAYLOAD, then="503", retry_after="20")
    gone = DownloadItem(path="gone.bin", url=f"{flaky.base}/gone.bin?X-Amz-Signature=s3cr3t")
    description = ResultDescription(type="t", name="n", items=(slow, gone))
    with pytest.raises(DownloadError) as info:
        download(description, tmp_path / "out")
    assert str(info.value) == f"GET {flaky.base}/gone.bin?<redacted> failed: HTTP 404 Not Found"
    assert interrupted == [True]
    assert not (tmp_path / "out").exists()
