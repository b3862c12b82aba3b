"""The downloader behind get: verification first, safe extraction, all-or-nothing."""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.server
import io
import logging
import re
import shutil
import socket
import struct
import sys
import tarfile
import threading
import types
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from publisher_core import (
    DownloadError,
    DownloadItem,
    IntegrityError,
    ResultDescription,
    SpecError,
    TargetExistsError,
    UnsafePathError,
    _extract,
    download,
    get,
    quoted,
    sha256_b64,
)
from publisher_core import _fetch as _download  # where _pause and _open_url live now
from publisher_core._documents import description_to_document, dump_document
from publisher_core._extract import extract_archive
from publisher_core._sizes import parse_size
from tests.conftest import CLIResult


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


def tar_raw(
    members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT
) -> bytes:
    """An uncompressed tar, to be padded or compressed by hand."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    return gzip.compress(tar_raw(members))


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


def listing(root: Path) -> list[str]:
    """Every path below ``root``: a failed get must leave this unchanged."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


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


# --- decompression bombs -------------------------------------------------------------


@pytest.fixture(params=["isal", "zlib"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each decompressor _gunzip may use: ISA-L's threaded reader, or the standard gzip."""
    if request.param == "isal":
        pytest.importorskip("isal")
    else:
        monkeypatch.setitem(sys.modules, "isal", None)  # `from isal import ...` now fails
    return str(request.param)


def refuse_archive(
    tmp_path: Path, data: bytes, error: type[Exception], **options: Any
) -> pytest.ExceptionInfo[Exception]:
    """Serve ``data`` as a verified archive; get must fail with exactly ``error``.

    The target must not appear and nothing may change anywhere under ``tmp_path``.
    """
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(data)
    item = item_for(archive, "r.tar.gz", archive=True)
    before = listing(tmp_path)
    with pytest.raises(error) as info:
        download(ResultDescription(type="t", name="r", items=(item,)), tmp_path / "out", **options)
    assert type(info.value) is error
    assert not (tmp_path / "out").exists()
    assert listing(tmp_path) == before
    return info


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


def test_the_default_limit_is_the_free_space_beside_the_target(tmp_path, monkeypatch):
    """Without max_bytes an archive may not unpack to more than the disk can hold."""
    real = shutil.disk_usage

    def one_mib_free(path: str | Path) -> Any:
        return types.SimpleNamespace(total=real(path).total, used=0, free=2**20)

    monkeypatch.setattr(shutil, "disk_usage", one_mib_free)
    data = tar_gz([member("a.bin", data=b"a" * (2**20 + 1))])
    refused = refuse_archive(tmp_path, data, DownloadError)
    assert str(refused.value) == (
        "archive declares 1048577 bytes of content (up to entry 'a.bin'), over the limit of "
        f"1048576 bytes (the free space beside {tmp_path / 'out'}; see publisher get --max-size); "
        "refusing a possible decompression bomb"
    )


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


# --- retries ---------------------------------------------------------------------------

REASONS = {
    403: "Forbidden",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Slow Down",
    504: "Gateway Timeout",
}


@dataclass
class Route:
    """What the server does for one path: ``script`` for the first requests, then ``then``.

    A fault is an HTTP status (``"503"``), ``reset``, ``stall`` (say nothing),
    ``stall-body`` (half the body, then nothing), ``cut`` (half the body, then close),
    ``short`` (a complete reply of half the body), ``corrupt`` (one byte flipped) or
    ``xml`` (a 200 with an XML error longer than the file); None serves the file.
    """

    data: bytes
    script: list[str]
    then: str | None = None
    retry_after: str | None = None


class FlakyServer:
    """A threaded loopback HTTP server over in-memory files, misbehaving as told."""

    def __init__(self, port: int = 0) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.release = threading.Event()  # wakes stalled handlers when the server stops
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = False  # server_close joins every handler

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up on a stalled reply

        self.server = Server(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(
        self,
        name: str,
        data: bytes,
        script: list[str] | None = None,
        then: str | None = None,
        retry_after: str | None = None,
        archive: bool = False,
    ) -> DownloadItem:
        """Serve ``data`` at ``/name``; the item has a secret query string."""
        self.routes[f"/{name}"] = Route(data, list(script or []), then, retry_after)
        return DownloadItem(
            path=name,
            url=f"{self.base}/{name}?X-Amz-Signature=s3cr3t",
            size=len(data),
            checksum_sha256=sha256_b64(hashlib.sha256(data).digest()),
            archive=archive,
        )

    def serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        """Answer one GET as its route says."""
        path = urlsplit(handler.path).path
        with self.lock:
            self.requests[path] += 1
            route = self.routes.get(path)
            fault = None
            if route is not None:
                fault = route.script.pop(0) if route.script else route.then
        if route is None:
            self.reply(handler, 404, b"<Error><Code>NoSuchKey</Code></Error>")
            return
        data = route.data
        half = data[: len(data) // 2]
        if fault is None:
            self.reply(handler, 200, data)
        elif fault.isdigit():
            headers = {"Retry-After": route.retry_after} if route.retry_after else {}
            self.reply(handler, int(fault), b"<Error><Code>SlowDown</Code></Error>", headers)
        elif fault == "reset":
            linger = struct.pack("ii", 1, 0)  # close with a TCP RST
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            handler.close_connection = True
        elif fault == "stall":
            self.release.wait(30)
        elif fault in ("stall-body", "cut"):
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(half)
            if fault == "stall-body":
                self.release.wait(30)
        elif fault == "short":
            self.reply(handler, 200, half)
        elif fault == "corrupt":
            self.reply(handler, 200, bytes([data[0] ^ 1]) + data[1:])
        else:
            assert fault == "xml", fault
            error = b"<?xml version='1.0'?><Error><Code>InternalError</Code></Error>"
            self.reply(handler, 200, error + b" " * len(data))

    @staticmethod
    def reply(
        handler: http.server.BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        """A complete reply with a Content-Length."""
        handler.send_response(status, REASONS.get(status))
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        """Wake stalled handlers, stop serving, and join every thread."""
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    """A loopback server that fails as each test tells it to."""
    server = FlakyServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between attempts, recorded instead of slept."""
    waits: list[float] = []

    def pause(seconds: float, cancel: threading.Event) -> None:
        waits.append(seconds)

    monkeypatch.setattr(_download, "_pause", pause)
    return waits


PAYLOAD = bytes(range(256)) * 300 + b"tail"
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
def test_retry_after_is_honoured_up_to_20_seconds(flaky, pauses, tmp_path, header, expected):
    """A 429's Retry-After in seconds sets the wait (capped); a date falls back to backoff."""
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
    assert retries[0].startswith(f"GET {flaky.base}/a.bin?<redacted>: HTTP 503 Slow Down; ")
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

    monkeypatch.setattr(_download, "_pause", pause)
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
    """A 404 ends the get: a download waiting to retry stops waiting, and the 404 is shown."""
    interrupted: list[bool] = []

    def pause(seconds: float, cancel: threading.Event) -> None:
        interrupted.append(cancel.wait(seconds))  # True: cut short by the cancellation

    monkeypatch.setattr(_download, "_pause", pause)
    slow = flaky.add("slow.bin", PAYLOAD, then="503", retry_after="20")
    gone = DownloadItem(path="gone.bin", url=f"{flaky.base}/gone.bin?X-Amz-Signature=s3cr3t")
    description = ResultDescription(type="t", name="n", items=(slow, gone))
    with pytest.raises(DownloadError) as info:
        download(description, tmp_path / "out")
    assert str(info.value) == f"GET {flaky.base}/gone.bin?<redacted> failed: HTTP 404 Not Found"
    assert interrupted == [True]
    assert not (tmp_path / "out").exists()


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


# --- the command line ------------------------------------------------------------------


def run_get(
    cli_in_process: Callable[..., CLIResult],
    tmp_path: Path,
    items: tuple[DownloadItem, ...],
    *args: str,
) -> tuple[int, str, str]:
    """Run 'publisher get' in-process on a description of ``items``: (code, out, err)."""
    document = tmp_path / "download.json"
    description = ResultDescription(type="t", name="n", items=items)
    document.write_text(dump_document(description_to_document(description), "json"))
    ran = cli_in_process("get", str(document), "-o", str(tmp_path / "out"), *args)
    return ran.code, ran.out, ran.err


def test_cli_attempts_and_timeout(flaky, pauses, tmp_path, cli_in_process):
    """--attempts bounds the tries and --timeout the silence: one error line, exit 1."""
    item = flaky.add("a.bin", PAYLOAD, then="stall")
    code, out, err = run_get(
        cli_in_process, tmp_path, (item,), "--attempts", "2", "--timeout", "0.3"
    )
    assert (code, out) == (1, "")
    assert err == (
        f"error: GET {flaky.base}/a.bin?<redacted> failed after 2 attempts: timed out after 0.3 s\n"
    )
    assert flaky.requests["/a.bin"] == 2
    assert not (tmp_path / "out").exists()


def test_cli_retries_by_default(flaky, pauses, tmp_path, cli_in_process):
    """Without options, four failures of five attempts still succeed."""
    item = flaky.add("a.bin", PAYLOAD, script=["503", "reset", "corrupt", "xml"])
    code, out, err = run_get(cli_in_process, tmp_path, (item,))
    assert (code, err) == (0, "")
    assert out.startswith("verified 1 of 1 downloads")
    assert (tmp_path / "out" / "a.bin").read_bytes() == PAYLOAD


@pytest.mark.parametrize(("size", "ok"), [("1K", False), ("4096", False), ("4.1k", True)])
def test_cli_max_size(tmp_path, cli_in_process, size, ok):
    """--max-size bounds what an archive may unpack to."""
    archive = tmp_path / "r.tar.gz"
    archive.write_bytes(tar_gz([member("a.bin", data=b"a" * 4097)]))
    code, out, err = run_get(
        cli_in_process, tmp_path, (item_for(archive, "r.tar.gz", archive=True),), "--max-size", size
    )
    if ok:
        assert (code, err) == (0, "")
        assert (tmp_path / "out" / "a.bin").stat().st_size == 4097
        return
    declared, limit = ("4.0 KiB", "1.0 KiB") if size == "1K" else ("4097 bytes", "4096 bytes")
    assert (code, out) == (1, "")
    assert err == (
        f"error: archive declares {declared} of content (up to entry 'a.bin'), over the limit "
        f"of {limit} (publisher get --max-size); refusing a possible decompression bomb\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", ["12X", "-1", "1KB", "", "M", "1e3", "1.2.3"])
def test_cli_rejects_a_bad_max_size(tmp_path, cli_in_process, size):
    """A bad SIZE is a usage error naming the value and the accepted forms; nothing runs."""
    code, out, err = run_get(cli_in_process, tmp_path, (), "--max-size", size)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: Invalid value for '--max-size': {size!r} is not a size: ")
    assert "K, M, G or T (or KiB, MiB, GiB, TiB; any case)" in err
    assert not (tmp_path / "out").exists()


# --- parse_size --------------------------------------------------------------------------

UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def exact(size: int) -> str:
    """``size`` in the largest unit that divides it, spelt in a few of the accepted ways."""
    for suffix, factor in reversed(UNITS.items()):
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


@given(st.integers(min_value=0, max_value=2**80))
def test_parse_size_round_trips(size):
    """Printing a size with the largest exact unit and parsing it gives it back."""
    assert parse_size(exact(size)) == size


@given(
    st.integers(min_value=0, max_value=10**12),
    st.sampled_from(list(UNITS)),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["", " "]),
)
@example(1, "K", True, True, "")
def test_parse_size_accepts_every_spelling(number, suffix, lower, iec, space):
    """K and KiB, k and kib, with or without a space, all mean 1024."""
    spelt = suffix + ("iB" if iec and suffix else "")
    text = f"{number}{space}{spelt.lower() if lower else spelt}"
    assert parse_size(text) == number * UNITS[suffix]


@given(st.integers(min_value=0, max_value=10**6), st.integers(0, 999), st.sampled_from(list(UNITS)))
def test_parse_size_rounds_fractions_down(whole, thousandths, suffix):
    """1.5G is 1.5 * 2**30 bytes; a fraction of a byte is dropped."""
    text = f"{whole}.{thousandths:03d}{suffix}"
    assert parse_size(text) == (whole * 1000 + thousandths) * UNITS[suffix] // 1000


@given(st.text())
@example("12X")
@example("1KB")
@example("-5")
@example(".")
@example("1" * 40)
def test_parse_size_is_an_int_or_a_clear_error(text):
    """Any string is either a size or a ValueError naming it and the accepted forms."""
    try:
        size = parse_size(text)
    except ValueError as exc:
        assert str(exc).startswith(f"{text!r} is not a size: ")
    else:
        assert isinstance(size, int) and size >= 0
        assert text.strip()[:1].isdigit() or text.strip().startswith(".")


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


# --- one size limit for every item --------------------------------------------------------


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


def test_a_file_item_without_a_size_stops_at_max_bytes(tmp_path):
    """file:///dev/zero with no recorded Size stops at --max-size with an error naming it."""
    item = DownloadItem(path="zero.bin", url="file:///dev/zero")
    refused = refuse_description(tmp_path, (item,), max_bytes=3 * 2**20)
    assert str(refused) == (
        "downloading 'zero.bin' went over the limit of 3.0 MiB for the whole result "
        "(publisher get --max-size); refusing it"
    )


def test_a_file_item_without_a_size_stops_at_the_free_space(tmp_path, monkeypatch):
    """Without --max-size, the free space beside the target bounds a download of no Size."""
    real = shutil.disk_usage

    def one_mib_free(path: str | Path) -> Any:
        return types.SimpleNamespace(total=real(path).total, used=0, free=2**20)

    monkeypatch.setattr(shutil, "disk_usage", one_mib_free)
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

    def never(url: str, timeout: float) -> Any:
        raise AssertionError(f"{url} was opened")

    monkeypatch.setattr(_download, "_open_url", never)
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


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many bytes each read of a download handed to get, recorded."""
    handed: list[int] = []
    real = _download._open_url

    @contextmanager
    def counted(url: str, timeout: float) -> Iterator[Any]:
        with real(url, timeout) as source:

            class Counting:
                length = None

                def readinto(self, view: memoryview) -> int:
                    n: int = source.readinto(view)  # type: ignore[attr-defined]
                    handed.append(n)
                    return n

            yield Counting()

    monkeypatch.setattr(_download, "_open_url", counted)
    return handed


def test_an_item_is_never_read_past_its_recorded_size(tmp_path, handed):
    """An endless source with a recorded Size is read to one byte past it, no further."""
    item = DownloadItem(path="z", url="file:///dev/zero", size=10)
    with pytest.raises(IntegrityError, match="z: more bytes than the recorded size 10"):
        download(ResultDescription(type="t", name="r", items=(item,)), tmp_path / "out")
    assert sum(handed) == 11


@pytest.fixture
def endless() -> Iterator[str]:
    """A loopback HTTP server whose every body is zeros without end (no Content-Length)."""

    class Endless(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            chunk = bytes(64 * 1024)
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:  # the client stopped reading and hung up
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_item_without_a_size_stops_at_max_bytes(endless, tmp_path):
    """An endless HTTP body with no recorded Size stops at the limit, without a retry."""
    item = DownloadItem(path="zero.bin", url=f"{endless}/zero.bin?X-Amz-Signature=secret")
    refused = refuse_description(tmp_path, (item,), max_bytes=2**20)
    assert str(refused) == (
        "downloading 'zero.bin' went over the limit of 1.0 MiB for the whole result "
        "(publisher get --max-size); refusing it"
    )


def test_an_http_item_is_never_read_past_its_recorded_size(endless, tmp_path, handed):
    """An endless HTTP body of an item with a Size is read to one byte past it."""
    item = DownloadItem(path="z", url=f"{endless}/z", size=10)
    with pytest.raises(IntegrityError, match="more bytes than the recorded size 10"):
        download(ResultDescription(type="t", name="r", items=(item,)), tmp_path / "out", attempts=1)
    assert sum(handed) == 11


def test_cli_bounds_an_item_without_a_size(tmp_path, cli_in_process):
    """publisher get --max-size stops an unbounded item with one error line and exit 1."""
    item = DownloadItem(path="zero.bin", url="file:///dev/zero")
    code, out, err = run_get(cli_in_process, tmp_path, (item,), "--max-size", "1M")
    assert (code, out) == (1, "")
    assert err == (
        "error: downloading 'zero.bin' went over the limit of 1.0 MiB for the whole result "
        "(publisher get --max-size); refusing it\n"
    )
    assert not (tmp_path / "out").exists()


# --- extraction failures name the member and why -------------------------------------------


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
