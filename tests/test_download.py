"""download() end to end: verified before extracted, moved into place whole, its options.

What one step of get does is tested in the file of its module (see tests/README.md); here
is what only the whole run shows, and get's default target.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from publisher_core import IntegrityError, ResultDescription, SpecError, download, get
from tests.downloads import item_for, member, tar_gz


def test_http_items_are_fetched_and_verified(served, tmp_path):
    """Files over HTTP are checked and placed at their relative paths."""
    folder, base = served
    (folder / "a.txt").write_bytes(b"alpha")
    item = item_for(folder / "a.txt", "dir/a.txt", url=f"{base}/a.txt?X-Amz-Signature=s3cr3t")
    report = download(
        ResultDescription(type="t", name="n", items=(item,), directories=("empty",)),
        tmp_path / "out",
    )
    assert (tmp_path / "out" / "dir" / "a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "out" / "empty").is_dir()
    assert (report.files, report.verified, report.unverified) == (1, 1, 0)


def test_archive_is_verified_before_extraction(tmp_path):
    """A corrupted archive is refused before a single member is extracted."""
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(tar_gz([member("a.txt", data=b"a")]))
    item = item_for(archive, "r.tar.gz", archive=True)
    data = bytearray(archive.read_bytes())
    data[-12] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="SHA-256"):
        download(ResultDescription(type="t", name="r", items=(item,)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../escaped", "/tmp/abs", "a/b", ".hidden", ".."])
def test_the_default_target_must_be_a_plain_name(tmp_path, monkeypatch, name):
    """get without -o never trusts a result's Name as a path."""
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "s"
    source.write_bytes(b"s")
    description = ResultDescription(type="t", name=name, items=(item_for(source, "s"),))
    with pytest.raises(SpecError, match="not a plain directory name"):
        get(description)


def test_an_item_at_the_depth_limit_is_fetched_without_recursion(tmp_path):
    """A file 256 levels down is fetched even with a recursion limit below its depth."""
    source = tmp_path / "s"
    source.write_bytes(b"s")
    deep = "/".join(["d"] * 255 + ["f"])
    description = ResultDescription(
        type="t", name="n", items=(item_for(source, deep),), directories=("e/" * 256,)
    )
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(250)  # pathlib's and os.makedirs recurse once per level
    try:
        download(description, tmp_path / "out")
    finally:
        sys.setrecursionlimit(before)
    assert (tmp_path / "out" / deep).read_bytes() == b"s"
    assert (tmp_path / "out").joinpath(*["e"] * 256).is_dir()


def test_out_of_range_options_are_value_errors(tmp_path):
    """attempts, timeout and max_bytes are checked before anything happens."""
    description = ResultDescription(type="t", name="n", items=())
    cases: list[tuple[dict[str, Any], str]] = [
        ({"attempts": 0}, "attempts must be 1 or more, not 0"),
        ({"timeout": 0}, "timeout must be more than 0 seconds, not 0"),
        ({"max_bytes": -1}, "max_bytes must be 0 or more, not -1"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            download(description, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()
