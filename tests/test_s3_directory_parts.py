"""Directory mode's large files: their parts go up several at once, within bounds.

A file of a part size or more is a multipart upload whose parts are read and hashed in
file order and sent concurrently (``publisher_s3._transfer.PartSender``); the parts in
flight across all files are bounded (``_directory.PARTS_IN_FLIGHT``, ``PART_MEMORY``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from publisher_core import Manifest, PublishError, publish
from tests.s3_servers import s3_spec
from tests.test_s3_publish import inject

MIB = 2**20
PARTS = {"part_size": 5 * MIB, "concurrency": 8}
SLOW_PART = 0.15  # seconds each part waits before it is sent, so parts overlap


class PartWatch:
    """What parts do, seen from inside the publisher: started, sent, held in memory.

    ``in_flight`` counts parts being sent; ``held`` counts parts read from their file and
    not yet sent (the memory parts take); both record their maximum. Each part waits
    ``delay(number)`` seconds before it is sent, so that parts overlap.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.held = self.most_held = 0
        self.started_parts: list[int] = []
        self.delay: Callable[[int], float] = lambda number: SLOW_PART

    def started(self, number: int) -> None:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.started_parts.append(number)

    def ended(self) -> None:
        with self.lock:
            self.in_flight -= 1
            self.held -= 1

    def read(self) -> None:
        with self.lock:
            self.held += 1
            self.most_held = max(self.most_held, self.held)


class _CountingFile:
    """A file handle that tells ``watch`` about every part read from it."""

    def __init__(self, handle: Any, watch: PartWatch) -> None:
        self.handle, self.watch = handle, watch

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.handle.read(size)
        if data:
            self.watch.read()
        return data

    def tell(self) -> int:
        return int(self.handle.tell())

    def __enter__(self) -> _CountingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> PartWatch:
    """A :class:`PartWatch` on every part of the publishes in the test."""
    import publisher_s3._directory as directory
    from publisher_core import open_entry
    from publisher_s3._transfer import Multipart

    seen = PartWatch()
    upload = Multipart.upload

    def watched_upload(self: Multipart, number: int, data: bytes) -> None:
        seen.started(number)
        try:
            time.sleep(seen.delay(number))
            upload(self, number, data)
        finally:
            seen.ended()

    monkeypatch.setattr(Multipart, "upload", watched_upload)
    monkeypatch.setattr(directory, "open_entry", lambda e: _CountingFile(open_entry(e), seen))
    return seen


def _large_files(root: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    root.mkdir()
    contents = {name: os.urandom(size) for name, size in sizes.items()}
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return contents


def _sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_a_file_of_many_parts_round_trips_with_its_sha256(s3, tmp_path):
    """A five-part file is stored byte for byte, as five parts, with the whole file's SHA-256."""
    contents = _large_files(tmp_path / "src", {"big.bin": 4 * 5 * MIB + 12345})
    bucket = s3.new_bucket()
    result = publish(s3_spec(s3, bucket, "many", False), tmp_path / "src", settings=PARTS)
    client = s3.client()
    stored = client.get_object(Bucket=bucket, Key="many/big.bin")
    assert stored["Body"].read() == contents["big.bin"]
    assert stored["ETag"].endswith('-5"')  # a multipart object of five parts
    manifest = client.get_object(Bucket=bucket, Key=result.params["Manifest"])["Body"].read()
    (entry,) = Manifest.from_bytes(manifest).files
    assert (entry.path, entry.size) == ("big.bin", len(contents["big.bin"]))
    assert entry.checksum_sha256 == _sha256(contents["big.bin"])


def test_the_parts_of_one_file_are_sent_concurrently(s3, tmp_path, watch):
    """One large file alone has several UploadPart calls under way at once."""
    _large_files(tmp_path / "src", {"one.bin": 6 * 5 * MIB})
    publish(s3_spec(s3, s3.new_bucket(), "one", False), tmp_path / "src", settings=PARTS)
    assert sorted(watch.started_parts) == [1, 2, 3, 4, 5, 6]
    assert watch.most_in_flight > 1


def test_a_failing_part_stops_the_publish_and_leaves_nothing(s3, tmp_path, monkeypatch, watch):
    """Part 3 of 8 refused at once while parts 1, 2 and 4 are under way: the publish fails
    naming the file, no later part starts, the upload is aborted and nothing is left."""

    def refuse_third(params, **_):
        if params["PartNumber"] == 3:
            raise RuntimeError("part 3 refused by the test")

    inject(monkeypatch, "before-call.s3.UploadPart", refuse_third)
    watch.delay = lambda number: 0 if number == 3 else SLOW_PART
    _large_files(tmp_path / "src", {"big.bin": 8 * 5 * MIB})
    bucket = s3.new_bucket()
    with pytest.raises(PublishError, match=r"parts/big\.bin.*part 3 refused by the test") as e:
        publish(s3_spec(s3, bucket, "parts", False), tmp_path / "src", settings=PARTS)
    assert "could not remove" not in str(e.value)
    assert 3 in watch.started_parts
    assert set(watch.started_parts) <= {1, 2, 3, 4}  # the four in flight; 5 to 8 never start
    assert watch.in_flight == 0  # those in flight ended before the publish did
    client = s3.client()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []


@pytest.mark.parametrize(
    ("parts", "memory", "bound"),
    [(2, 64 * MIB, 2), (4, 15 * MIB, 3), (4, 4 * MIB, 1)],
    ids=["by-count", "by-memory", "larger-than-memory-goes-alone"],
)
def test_parts_in_flight_stay_within_the_bound_across_files(
    s3, tmp_path, monkeypatch, watch, parts, memory, bound
):
    """Three large files at once never hold more parts, read or being sent, than the bound."""
    import publisher_s3._directory as directory

    monkeypatch.setattr(directory, "PARTS_IN_FLIGHT", parts)
    monkeypatch.setattr(directory, "PART_MEMORY", memory)
    sizes = {f"f{i}.bin": 3 * 5 * MIB + 1000 * (i + 1) for i in range(3)}  # four parts each
    contents = _large_files(tmp_path / "src", sizes)
    bucket = s3.new_bucket()
    publish(s3_spec(s3, bucket, "bound", False), tmp_path / "src", settings=PARTS)
    assert watch.most_held == bound  # reached, never passed: memory is bounded
    assert watch.most_in_flight == bound
    client = s3.client()
    for name, data in contents.items():
        assert client.get_object(Bucket=bucket, Key=f"bound/{name}")["Body"].read() == data


def test_sending_stops_for_a_stop_and_waits_for_the_parts_in_flight():
    """Once the pool stops, no further part starts; send returns only after those in flight."""
    from publisher_s3._transfer import BoundedPool, PartSender, Stopped

    pool = BoundedPool(1, limit=1)
    sender = PartSender(pool, parts=2, memory=64 * MIB)
    sent: list[int] = []
    ended: list[int] = []

    class SlowUpload:
        bucket, key = "b", "k"

        def upload(self, number: int, data: bytes) -> None:
            sent.append(number)
            if number == 2:
                pool.stop.set()  # as an interrupt or another file's failure would
            time.sleep(0.2)
            ended.append(number)

    chunks = iter([b"1", b"2", b"3", b"4"])
    with pytest.raises(Stopped):
        sender.send(SlowUpload(), lambda: next(chunks), 4, 1)  # type: ignore[arg-type]
    assert sorted(sent) == [1, 2]  # both started before the stop; none after
    assert sorted(ended) == [1, 2]  # and both ended before send returned
    sender.close()
    pool.close(cancel=False)
