"""What get refuses before it writes anything (``_checks``): bad or expired URLs, item paths
publish would refuse or that clash, a target in use.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from publisher_core import (
    DownloadError,
    DownloadItem,
    ResultDescription,
    SpecError,
    TargetExistsError,
    UnsafePathError,
    download,
    quoted,
)
from tests.downloads import item_for, listing


@pytest.mark.parametrize("path", ["../x", "/etc/x", "a/../../x", "a//b", "", "a\\b"])
def test_item_paths_that_escape_are_refused(tmp_path, path):
    """Item paths are plain relative paths or nothing is fetched."""
    source = tmp_path / "s"
    source.write_bytes(b"s")
    item = item_for(source, path)
    with pytest.raises(UnsafePathError):
        download(ResultDescription(type="t", name="n", items=(item,)), tmp_path / "out")


def test_non_empty_target_is_refused(tmp_path):
    """An existing non-empty output directory is never touched."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("mine")
    source = tmp_path / "s"
    source.write_bytes(b"s")
    with pytest.raises(TargetExistsError, match="exists and is not empty"):
        download(ResultDescription(type="t", name="n", items=(item_for(source, "s"),)), out)
    assert (out / "keep").read_text() == "mine"


def test_empty_target_is_filled(tmp_path):
    """An existing empty directory is an acceptable target."""
    out = tmp_path / "out"
    out.mkdir()
    source = tmp_path / "s"
    source.write_bytes(b"s")
    download(ResultDescription(type="t", name="n", items=(item_for(source, "s"),)), out)
    assert (out / "s").read_bytes() == b"s"


def test_expired_urls_fail_early(tmp_path):
    """An expired description says to describe again."""
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    item = DownloadItem(path="a", url="https://h.invalid/a?sig", expires=past)
    with pytest.raises(DownloadError, match=r"expired .* run 'publisher describe' again"):
        download(ResultDescription(type="t", name="n", items=(item,)), tmp_path / "out")


def test_conflicting_item_paths_are_refused(tmp_path):
    """Two items for one path, or a file where a directory is needed, fail cleanly."""
    source = tmp_path / "s"
    source.write_bytes(b"s")
    twice = (item_for(source, "a"), item_for(source, "a"))
    with pytest.raises(UnsafePathError, match="appears twice"):
        download(ResultDescription(type="t", name="n", items=twice), tmp_path / "out")
    nested = (item_for(source, "a"), item_for(source, "a/b"))
    with pytest.raises(UnsafePathError) as refused:
        download(ResultDescription(type="t", name="n", items=nested), tmp_path / "out")
    assert str(refused.value) == (
        "item path 'a/b' would be written through 'a', which is a file item, not a "
        "directory; refusing it"
    )
    as_directory = ResultDescription(
        type="t", name="n", items=(item_for(source, "a"),), directories=("a/",)
    )
    with pytest.raises(UnsafePathError, match=r"^directory 'a' is also a file item; refusing it$"):
        download(as_directory, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no staging left


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/obj?X-Amz-Signature=SECRETSIG&a=b c",
        "http://[::1/obj?X-Amz-Signature=SECRETSIG",
        "http://127.0.0.1:99999/obj?X-Amz-Signature=SECRETSIG",
        "ftp://host/obj?X-Amz-Signature=SECRETSIG",
    ],
)
def test_malformed_urls_are_refused_without_their_secrets(tmp_path, url):
    """A bad URL is an invalid description; its query string never appears."""
    item = DownloadItem(path="a", url=url, size=1)
    with pytest.raises(SpecError) as info:
        download(ResultDescription(type="t", name="n", items=(item,)), tmp_path / "out")
    assert "SECRETSIG" not in str(info.value)


# --- one path rule for publish and get ---------------------------------------------------


def test_an_item_path_2000_levels_deep_is_refused_clearly(tmp_path):
    """A description path 2000 segments deep is an UnsafePathError, not a RecursionError."""
    source = tmp_path / "s"
    source.write_bytes(b"s")
    deep = "/".join(["a"] * 2000)
    with pytest.raises(UnsafePathError) as refused:
        download(
            ResultDescription(type="t", name="n", items=(item_for(source, deep),)),
            tmp_path / "out",
        )
    assert str(refused.value) == (
        f"item path {quoted(deep)}: path is 2000 levels deep; the limit is 256; refusing it"
    )
    assert listing(tmp_path) == ["s"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("x\\y", "'x\\\\\\\\y': name contains a backslash, a path separator on Windows"),
        ("tab\there", "'tab\\\\there': name contains a control character"),
        ("n" * 256, "'n+\\.\\.\\.n+': name 'n+\\.\\.\\.n+' is 256 UTF-8 bytes; the limit is 255"),
        (
            "/".join(["m" * 200] * 21),
            "'m+\\.\\.\\.m+': path is 4220 UTF-8 bytes; the limit is 4095",
        ),
    ],
)
def test_item_paths_publish_would_refuse_are_refused_with_the_reason(tmp_path, path, reason):
    """get refuses the names publish refuses, saying why, before fetching anything."""
    source = tmp_path / "s"
    source.write_bytes(b"s")
    description = ResultDescription(type="t", name="n", items=(item_for(source, path),))
    with pytest.raises(UnsafePathError) as refused:
        download(description, tmp_path / "out")
    assert re.fullmatch(f"item path {reason}.*; refusing it", str(refused.value))
    assert listing(tmp_path) == ["s"]


def test_an_empty_directory_publish_would_refuse_is_refused(tmp_path):
    """Directories of a description are held to the same path rule as items."""
    description = ResultDescription(type="t", name="n", directories=("ok/bad\nname/",))
    with pytest.raises(UnsafePathError, match="'ok/bad\\\\nname': name contains a control"):
        download(description, tmp_path / "out")
