"""Extracting an untrusted .tar.gz (``_extract``): nothing lands or points outside the tree,
no decompression bomb gets through, and every refusal names the member and why.
"""

from __future__ import annotations

import errno
import gzip
import io
import re
import sys
import tarfile
from pathlib import Path

import pytest

from publisher_core import DownloadError, ResultDescription, UnsafePathError, _extract, download
from publisher_core._extract import extract_archive
from tests.downloads import item_for, listing, member, refuse_archive, tar_gz, tar_raw


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
    before = listing(tmp_path)
    with pytest.raises(UnsafePathError, match="archive entry"):
        download(ResultDescription(type="t", name="e", items=(item,)), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "escape.txt").exists()
    assert listing(tmp_path) == before


def test_a_corrupt_gzip_stream_is_a_download_error(tmp_path):
    """Bytes that match their checksum but are not a .tar.gz fail clearly."""
    archive = tmp_path / "junk.tar.gz"
    archive.write_bytes(b"not gzip at all")
    item = item_for(archive, "junk.tar.gz", archive=True)
    with pytest.raises(DownloadError, match=r"not a readable .tar.gz"):
        download(ResultDescription(type="t", name="j", items=(item,)), tmp_path / "out")


def hostile(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(tar_gz(members))
    item = item_for(archive, "evil.tar.gz", archive=True)
    before = listing(tmp_path)
    with pytest.raises(UnsafePathError, match="refusing the archive"):
        download(ResultDescription(type="t", name="e", items=(item,)), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert listing(tmp_path) == before


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


# --- decompression bombs -----------------------------------------------------------------


@pytest.fixture(params=["isal", "zlib"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each decompressor _gunzip may use: ISA-L's threaded reader, or the standard gzip."""
    if request.param == "isal":
        pytest.importorskip("isal")
    else:
        monkeypatch.setitem(sys.modules, "isal", None)  # `from isal import ...` now fails
    return str(request.param)


def test_an_archive_declaring_too_much_is_refused_before_extraction(tmp_path, reader):
    """A member whose header declares 12 GiB is refused before a byte of it is written."""
    info = tarfile.TarInfo("big.bin")
    info.size = 12 * 2**30
    small = tar_raw([member("small.txt", data=b"s")])[:1024]  # its header and data block
    data = gzip.compress(small + info.tobuf() + b"x" * 4096)  # then far less than declared
    refused = refuse_archive(tmp_path, data, DownloadError, max_bytes=2**30)
    assert str(refused.value) == (
        "archive declares 12.0 GiB of content (up to entry 'big.bin'), over the limit of "
        "1.0 GiB (publisher get --max-size); refusing a possible decompression bomb"
    )


def test_declared_sizes_are_a_running_total_checked_before_each_member(tmp_path):
    """The member that takes the total over the limit is never written; earlier ones were."""
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(
        tar_gz([member(f"{n}.bin", data=bytes([n]) * 400 * 1024) for n in (1, 2, 3)])
    )
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(DownloadError) as refused:
        extract_archive(archive, tree, max_bytes=2**20)
    assert str(refused.value) == (
        "archive declares 1.2 MiB of content (up to entry '3.bin'), over the limit of "
        "1.0 MiB (publisher get --max-size); refusing a possible decompression bomb"
    )
    assert sorted(p.name for p in tree.iterdir()) == ["1.bin", "2.bin"]


def bomb(kind: str) -> bytes:
    """Archives whose declared sizes are tiny but which decompress to over 4 MiB."""
    small = member("a.txt", data=b"a")
    if kind == "pax-header":
        info, data = member("b.txt", data=b"b")
        info.pax_headers = {"comment": "x" * 4 * 2**20}
        return gzip.compress(tar_raw([small, (info, data)]))
    if kind == "long-name":
        info, data = member("d/" * 2 * 2**20 + "c.txt", data=b"c")
        return gzip.compress(tar_raw([small, (info, data)], fmt=tarfile.GNU_FORMAT))
    assert kind == "zeros-after-the-end"
    return gzip.compress(tar_raw([small]) + bytes(4 * 2**20))


@pytest.mark.parametrize("kind", ["pax-header", "long-name", "zeros-after-the-end"])
def test_an_archive_decompressing_to_too_much_is_refused(tmp_path, reader, kind):
    """Headers or padding are counted too: what is decompressed is bounded, not only files."""
    refused = refuse_archive(tmp_path, bomb(kind), DownloadError, max_bytes=2**20)
    assert str(refused.value) == (
        "archive decompresses to more than 2.0 MiB, over the limit of 1.0 MiB "
        "(publisher get --max-size) plus tar's overhead; refusing a possible decompression bomb"
    )


def test_an_archive_of_many_small_files_fits_a_limit_of_its_content(tmp_path, monkeypatch):
    """Tar's per-member overhead (about 200 KiB here, for 200 bytes of content, over a fixed
    allowance cut to 64 KiB) is not held against it."""
    monkeypatch.setattr(_extract, "_TAR_SLACK", 64 * 1024)
    names = [f"dir-{n // 20}/{'long-name-' * 12}{n:04d}.txt" for n in range(200)]
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(tar_gz([member(name, data=b"x") for name in names]))
    item = item_for(archive, "r.tar.gz", archive=True)
    report = download(
        ResultDescription(type="t", name="r", items=(item,)), tmp_path / "out", max_bytes=200
    )
    assert (report.files, report.bytes) == (200, 200)
    assert (tmp_path / "out" / names[-1]).read_bytes() == b"x"


@pytest.mark.parametrize("field", ["crc32", "isize"])
def test_a_corrupt_gzip_trailer_is_refused(tmp_path, reader, field):
    """A wrong CRC-32 or length after the tar's end is noticed, though the SHA-256 matches."""
    data = bytearray(tar_gz([member("a.txt", data=b"alpha\n" * 1000)]))
    data[-8 if field == "crc32" else -4] ^= 0xFF
    refused = refuse_archive(tmp_path, bytes(data), DownloadError)
    assert str(refused.value).startswith(
        "archive is corrupt: its gzip trailer does not match the decompressed data ("
    )
    expected = "CRC check failed" if field == "crc32" else "Incorrect length of data produced"
    assert expected in str(refused.value)


# --- extraction failures name the member and why -----------------------------------------


def refuse_members(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> str:
    """get of an archive of ``members`` fails with UnsafePathError; its message."""
    refused = refuse_archive(tmp_path, tar_gz(members), UnsafePathError)
    return str(refused.value)


def test_a_member_written_through_a_hard_link_is_refused_by_name(tmp_path):
    """A hard link is a file: a member below it is named, not an unreadable archive."""
    message = refuse_members(
        tmp_path,
        [
            member("f", data=b"f"),
            member("d", tarfile.LNKTYPE, link="f"),
            member("d/x", data=b"x"),
        ],
    )
    assert message == (
        "archive entry 'd/x' would be written through 'd', which is not a directory "
        "(a file or hard link earlier in the archive); refusing the archive"
    )


def test_a_member_written_through_a_file_is_refused_by_name(tmp_path):
    """A member below a regular file of the same archive names both."""
    message = refuse_members(tmp_path, [member("d", data=b"d"), member("./d/x", data=b"x")])
    assert message == (
        "archive entry './d/x' would be written through 'd', which is not a directory "
        "(a file or hard link earlier in the archive); refusing the archive"
    )


@pytest.mark.parametrize(
    "last",
    [
        member("d", data=b"file"),
        member("d", tarfile.SYMTYPE, link="elsewhere"),
        member("d", tarfile.LNKTYPE, link="f"),
    ],
    ids=["file", "symlink", "hard-link"],
)
def test_a_member_replacing_a_directory_in_use_is_refused_by_name(tmp_path, last):
    """A file or link where earlier members made a directory is named, not an OSError."""
    message = refuse_members(tmp_path, [member("f", data=b"f"), member("d/x", data=b"x"), last])
    assert message == (
        "archive entry 'd' would replace the directory of the same name that earlier entries "
        "are in; refusing the archive"
    )


def test_a_write_failure_names_the_member_and_the_reason(tmp_path, monkeypatch):
    """A full disk while extracting says so and names the member, not 'not a readable'."""

    def full(self: tarfile.TarFile, tarinfo: tarfile.TarInfo, targetpath: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", targetpath)

    monkeypatch.setattr(tarfile.TarFile, "makefile", full)
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(tar_gz([member("d", tarfile.DIRTYPE), member("d/a.txt", data=b"a")]))
    refused = refuse_archive(tmp_path, archive.read_bytes(), DownloadError)
    assert str(refused.value) == (
        "extracting archive entry 'd/a.txt' failed: No space left on device"
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("x\\y", "'x\\\\\\\\y': name contains a backslash"),
        ("a/t\tb", "'a/t\\\\tb': name contains a control character"),
        ("/".join("a" * 257), "'a/a/.*: path is 257 levels deep; the limit is 256"),
    ],
)
def test_members_publish_would_refuse_are_refused_with_the_reason(tmp_path, name, reason):
    """Archive members are held to the path rule of publish and of item paths."""
    message = refuse_members(tmp_path, [member(name, data=b"x")])
    assert re.fullmatch(f"archive entry {reason}.*; refusing the archive", message)


def test_a_member_name_that_is_not_utf8_is_refused_by_its_bytes(tmp_path):
    """A member name that is not UTF-8 is refused, as publish refuses it, shown as bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT, encoding="latin-1") as t:
        info, _ = member("caf\xe9.txt", data=b"x")
        t.addfile(info, io.BytesIO(b"x"))
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(gzip.compress(buffer.getvalue()))
    tree = tmp_path / "tree"
    tree.mkdir()
    with pytest.raises(UnsafePathError) as refused:
        extract_archive(archive, tree, max_bytes=1)  # the name is measured as its bytes too
    assert str(refused.value) == (
        "archive entry b'caf\\xe9.txt': name is not valid UTF-8; refusing the archive"
    )
    assert list(tree.iterdir()) == []
