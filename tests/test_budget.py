"""One byte limit on everything a get writes (``_budget``): recorded sizes, items without a
Size, archives' content; --max-size, or else the free space beside the target.
"""

from __future__ import annotations

import re
import shutil
import types
from pathlib import Path
from typing import Any

import pytest

from publisher_core import DownloadError, DownloadItem, ResultDescription, download
from publisher_core._transport import Transport
from tests.downloads import item_for, listing, member, refuse_archive, tar_gz


def refuse_description(
    tmp_path: Path, items: tuple[DownloadItem, ...], **options: Any
) -> DownloadError:
    """get must fail with exactly DownloadError, leaving nothing (no staging) behind."""
    before = listing(tmp_path)
    with pytest.raises(DownloadError) as refused:
        download(ResultDescription(type="t", name="r", items=items), tmp_path / "out", **options)
    assert type(refused.value) is DownloadError
    assert listing(tmp_path) == before
    return refused.value


@pytest.fixture
def one_mib_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk beside the target has 1 MiB free."""
    real = shutil.disk_usage

    def disk_usage(path: str | Path) -> Any:
        return types.SimpleNamespace(total=real(path).total, used=0, free=2**20)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)


def test_a_file_item_without_a_size_stops_at_max_bytes(tmp_path):
    """file:///dev/zero with no recorded Size stops at --max-size with an error naming it."""
    item = DownloadItem(path="zero.bin", url="file:///dev/zero")
    refused = refuse_description(tmp_path, (item,), max_bytes=3 * 2**20)
    assert str(refused) == (
        "downloading 'zero.bin' went over the limit of 3.0 MiB for the whole result "
        "(publisher get --max-size); refusing it"
    )


def test_a_file_item_without_a_size_stops_at_the_free_space(tmp_path, one_mib_free):
    """Without --max-size, the free space beside the target bounds a download of no Size."""
    item = DownloadItem(path="zero.bin", url="file:///dev/zero")
    refused = refuse_description(tmp_path, (item,))
    assert str(refused) == (
        "downloading 'zero.bin' went over the limit of 1.0 MiB for the whole result "
        f"(the free space beside {tmp_path / 'out'}; see publisher get --max-size); refusing it"
    )


def test_the_limit_is_for_all_items_together(tmp_path):
    """Two files without Sizes, each under the limit, are refused when together over it."""
    items = []
    for name in ("a.bin", "b.bin"):
        (tmp_path / name).write_bytes(bytes(700 * 1024))
        items.append(DownloadItem(path=name, url=(tmp_path / name).as_uri()))
    refused = refuse_description(tmp_path, tuple(items), max_bytes=2**20)
    assert re.fullmatch(
        "downloading '[ab].bin' went over the limit of 1.0 MiB for the whole result "
        "\\(publisher get --max-size\\); refusing it",
        str(refused),
    )


def test_an_archive_without_a_size_cannot_fill_the_disk(tmp_path):
    """An archive item of no Size is bounded too, with tar's allowance on top of the limit."""
    item = DownloadItem(path="r.tar.gz", url="file:///dev/zero", archive=True)
    refused = refuse_description(tmp_path, (item,), max_bytes=2**20)
    assert str(refused) == (
        "downloading 'r.tar.gz' went over the limit of 1.0 MiB for the whole result "
        "(publisher get --max-size) plus 1.0 MiB for tar's overhead; refusing it"
    )


def test_files_and_archive_content_share_the_limit(tmp_path):
    """What the files took is subtracted from what an archive may unpack to."""
    (tmp_path / "f.bin").write_bytes(bytes(600 * 1024))
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(tar_gz([member("a.bin", data=bytes(600 * 1024))]))
    items = (item_for(tmp_path / "f.bin", "f.bin"), item_for(archive, "r.tar.gz", archive=True))
    refused = refuse_description(tmp_path, items, max_bytes=2**20)
    assert str(refused) == (
        "archive declares 600.0 KiB of content (up to entry 'a.bin'), over the limit of "
        "424.0 KiB (publisher get --max-size, less 600.0 KiB already downloaded); "
        "refusing a possible decompression bomb"
    )


def test_recorded_sizes_over_the_limit_are_refused_before_any_download(tmp_path, monkeypatch):
    """Files whose recorded Sizes add up to more than the limit are refused unopened."""

    def never(self: Transport, url: str, timeout: float | None = None, **_: Any) -> Any:
        raise AssertionError(f"{url} was opened")

    monkeypatch.setattr(Transport, "open", never)
    items = tuple(
        DownloadItem(path=name, url=f"file:///nowhere/{name}", size=600 * 1024)
        for name in ("a.bin", "b.bin")
    )
    refused = refuse_description(tmp_path, items, max_bytes=2**20)
    assert str(refused) == (
        "the items record 1.2 MiB in all (up to 'b.bin'), over the limit of 1.0 MiB "
        "(publisher get --max-size); refusing the result"
    )


def test_a_result_that_fits_the_limit_exactly_is_fetched(tmp_path):
    """Files without Sizes and an archive's content adding up to the limit are fine."""
    (tmp_path / "f.bin").write_bytes(b"f" * 1000)
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(tar_gz([member("a.bin", data=b"a" * 24)]))
    items = (
        DownloadItem(path="f.bin", url=(tmp_path / "f.bin").as_uri()),
        item_for(archive, "r.tar.gz", archive=True),
    )
    report = download(
        ResultDescription(type="t", name="r", items=items), tmp_path / "out", max_bytes=1024
    )
    assert (report.files, report.bytes) == (2, 1024)


def test_an_http_item_without_a_size_stops_at_max_bytes(endless, tmp_path):
    """An endless HTTP body with no recorded Size stops at the limit, without a retry."""
    item = DownloadItem(path="zero.bin", url=f"{endless}/zero.bin?X-Amz-Signature=secret")
    refused = refuse_description(tmp_path, (item,), max_bytes=2**20)
    assert str(refused) == (
        "downloading 'zero.bin' went over the limit of 1.0 MiB for the whole result "
        "(publisher get --max-size); refusing it"
    )


def test_the_default_limit_is_the_free_space_beside_the_target(tmp_path, one_mib_free):
    """Without max_bytes an archive may not unpack to more than the disk can hold."""
    data = tar_gz([member("a.bin", data=b"a" * (2**20 + 1))])
    refused = refuse_archive(tmp_path, data, DownloadError)
    assert str(refused.value) == (
        "archive declares 1048577 bytes of content (up to entry 'a.bin'), over the limit of "
        f"1048576 bytes (the free space beside {tmp_path / 'out'}; see publisher get --max-size); "
        "refusing a possible decompression bomb"
    )
