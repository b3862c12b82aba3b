"""The downloader behind get: verification first, safe extraction, all-or-nothing."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from publisher_core import (
    DownloadError,
    DownloadItem,
    IntegrityError,
    ResultDescription,
    SpecError,
    TargetExistsError,
    UnsafePathError,
    download,
    get,
    sha256_b64,
)


def item_for(
    path: Path, name: str, *, archive: bool = False, url: str | None = None
) -> DownloadItem:
    data = path.read_bytes()
    return DownloadItem(
        path=name,
        url=url or path.as_uri(),
        size=len(data),
        checksum_sha256=sha256_b64(hashlib.sha256(data).digest()),
        archive=archive,
    )


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A loopback HTTP server over a folder."""
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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


@pytest.mark.parametrize(
    "members",
    [
        [member("../escape.txt", data=b"x")],
        [member("/abs/escape.txt", data=b"x")],
        [member("link", tarfile.SYMTYPE, link="/etc/passwd")],
        [member("link", tarfile.SYMTYPE, link="../../outside")],
        [member("hard", tarfile.LNKTYPE, link="../outside")],
        [member("dev", tarfile.CHRTYPE)],
        [member("fifo", tarfile.FIFOTYPE)],
    ],
    ids=["dotdot", "absolute", "abs-symlink", "symlink-out", "hardlink-out", "device", "fifo"],
)
def test_hostile_archives_are_refused(tmp_path, members):
    """No archive member may land outside the target or create a device."""
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(tar_gz([member("ok.txt", data=b"ok"), *members]))
    item = item_for(archive, "evil.tar.gz", archive=True)
    with pytest.raises(UnsafePathError, match="archive entry"):
        download(ResultDescription(type="t", name="e", items=(item,)), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escape.txt").exists()


def test_a_corrupt_gzip_stream_is_a_download_error(tmp_path):
    """Bytes that match their checksum but are not a .tar.gz fail clearly."""
    archive = tmp_path / "junk.tar.gz"
    archive.write_bytes(b"not gzip at all")
    item = item_for(archive, "junk.tar.gz", archive=True)
    with pytest.raises(DownloadError, match=r"not a readable .tar.gz"):
        download(ResultDescription(type="t", name="j", items=(item,)), tmp_path / "out")


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
    with pytest.raises(DownloadError, match="rebuilding the result failed"):
        download(ResultDescription(type="t", name="n", items=nested), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def hostile(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(tar_gz(members))
    item = item_for(archive, "evil.tar.gz", archive=True)
    with pytest.raises(UnsafePathError, match="refusing the archive"):
        download(ResultDescription(type="t", name="e", items=(item,)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_long_symlink_chain_cannot_lead_a_file_outside(tmp_path):
    """The realpath-overflow escape (CVE-2025-4517 class) is refused from names alone."""
    members = []
    path = ""
    comp = "d" * 247
    for step in "abcdefghijklmnop":
        members.append(member(f"{path}{comp}", tarfile.DIRTYPE))
        members.append(member(f"{path}{step}", tarfile.SYMTYPE, link=comp))
        path = f"{path}{comp}/"
    chain = "/".join("abcdefghijklmnop") + "/" + "l" * 254
    members.append(member(chain, tarfile.SYMTYPE, link="../" * 16))
    members.append(member("escape", tarfile.SYMTYPE, link=chain + "/../.."))
    members.append(member("escape/PWNED", data=b"outside"))
    hostile(tmp_path, members)
    assert not (tmp_path / "PWNED").exists()


def test_a_member_below_a_symlink_is_refused(tmp_path):
    """Nothing is written through a link, even one pointing inside the tree."""
    hostile(
        tmp_path,
        [
            member("dir", tarfile.DIRTYPE),
            member("l", tarfile.SYMTYPE, link="dir"),
            member("l/file", data=b"x"),
        ],
    )


def test_a_symlink_through_another_symlink_is_refused(tmp_path):
    """b -> '.' plus a -> 'b/../x' would leave the tree once b is followed."""
    hostile(
        tmp_path,
        [member("a", tarfile.SYMTYPE, link="b/../x"), member("b", tarfile.SYMTYPE, link=".")],
    )


def test_duplicate_members_are_refused(tmp_path):
    """An archive naming one path twice is refused rather than silently overwritten."""
    hostile(tmp_path, [member("a.txt", data=b"1"), member("./a.txt", data=b"2")])


def test_links_inside_the_tree_are_extracted(tmp_path):
    """Ordinary relative links and hard links to earlier files are fine."""
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(
        tar_gz(
            [
                member("./", tarfile.DIRTYPE),
                member("./d", tarfile.DIRTYPE),
                member("./d/f.txt", data=b"f"),
                member("./up", tarfile.SYMTYPE, link="d/f.txt"),
                member("./d/side", tarfile.SYMTYPE, link="../up-target"),
                member("./hard", tarfile.LNKTYPE, link="d/f.txt"),
            ]
        )
    )
    item = item_for(archive, "ok.tar.gz", archive=True)
    download(ResultDescription(type="t", name="ok", items=(item,)), tmp_path / "out")
    assert (tmp_path / "out" / "up").read_bytes() == b"f"
    assert (tmp_path / "out" / "hard").read_bytes() == b"f"


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


@pytest.mark.parametrize("name", ["../escaped", "/tmp/abs", "a/b", ".hidden", ".."])
def test_the_default_target_must_be_a_plain_name(tmp_path, monkeypatch, name):
    """get without -o never trusts a result's Name as a path."""
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "s"
    source.write_bytes(b"s")
    description = ResultDescription(type="t", name=name, items=(item_for(source, "s"),))
    with pytest.raises(SpecError, match="not a plain directory name"):
        get(description)
