"""The streamed tar writer and its pluggable gzip stream."""

from __future__ import annotations

import gzip
import io
import os
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from isal import igzip_threaded

from publisher_core import (
    BinarySink,
    GzipStream,
    PublishError,
    TreeEntry,
    scan_tree,
    write_archive,
    zlib_gzip,
)
from publisher_core._archive import _tarinfo
from publisher_core._extract import extract_archive
from publisher_core._paths import MAX_PATH_DEPTH, MAX_SEGMENT_BYTES

from .trees import build, trees


class _Plain:
    """A "gzip" factory that does not compress: the archive's tar bytes as they are."""

    def __init__(self, sink: BinarySink, level: int) -> None:
        self.sink = sink

    def write(self, data: bytes | memoryview, /) -> int:
        self.sink.write(bytes(data))
        return len(data)

    def close(self) -> None:
        pass


def _tarfile_bytes(entries: list[TreeEntry]) -> bytes:
    """What tarfile itself writes for the same entries and headers."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = _tarinfo(entry, entry.size)
            if entry.kind == "file":
                with open(entry.source, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return out.getvalue()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees)
def test_tar_stream_is_byte_for_byte_what_tarfile_writes(tree: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        entries = scan_tree(build(tree, Path(tmp) / "r"), follow_links=False)  # type: ignore[arg-type]
        out = io.BytesIO()
        summary = write_archive(entries, out, gzip=_Plain)
        assert out.getvalue() == _tarfile_bytes(entries)
        assert summary.size == len(out.getvalue())
        assert summary.files == sum(e.kind == "file" for e in entries)
        assert summary.input_bytes == sum(e.size for e in entries if e.kind == "file")


def _isal(threads: int) -> object:
    def factory(sink: BinarySink, level: int) -> GzipStream:
        stream: GzipStream = igzip_threaded.open(  # type: ignore[no-untyped-call]
            sink, "wb", compresslevel=level, threads=threads
        )
        return stream

    return factory


def _big_tree(root: Path) -> list[TreeEntry]:
    root.mkdir()
    (root / "text.csv").write_bytes(b"".join(b"%d,row,%d\n" % (i, i * 7) for i in range(400_000)))
    (root / "random.bin").write_bytes(os.urandom(3 << 20))
    (root / "sub").mkdir()
    (root / "sub" / "empty").write_bytes(b"")
    return scan_tree(root, follow_links=False)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threaded_isal_archive_is_one_reproducible_gzip_member(
    tmp_path: Path, threads: int
) -> None:
    entries = _big_tree(tmp_path / "r")
    first, second, plain = io.BytesIO(), io.BytesIO(), io.BytesIO()
    summary = write_archive(entries, first, level=1, gzip=_isal(threads))  # type: ignore[arg-type]
    write_archive(entries, second, level=1, gzip=_isal(threads))  # type: ignore[arg-type]
    write_archive(entries, plain, gzip=_Plain)
    assert first.getvalue() == second.getvalue()  # same tree, same bytes
    assert gzip.decompress(first.getvalue()) == plain.getvalue()
    assert summary.size == len(first.getvalue())
    header = first.getvalue()[:10]
    assert header[4:8] == b"\0\0\0\0"  # no timestamp in the gzip header
    with tarfile.open(fileobj=io.BytesIO(first.getvalue()), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["random.bin", "sub", "sub/empty", "text.csv"]


def test_zlib_gzip_is_the_default_and_standard(tmp_path: Path) -> None:
    entries = _big_tree(tmp_path / "r")
    out, plain = io.BytesIO(), io.BytesIO()
    write_archive(entries, out)
    write_archive(entries, plain, gzip=zlib_gzip)
    assert out.getvalue() == plain.getvalue()
    assert out.getvalue()[4:8] == b"\0\0\0\0"


def test_a_file_that_shrinks_after_the_scan_fails_the_archive(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "data").write_bytes(b"x" * 5000)
    entries = scan_tree(root, follow_links=False)

    class Truncating:
        """Cuts the file short once its header has been written."""

        def __init__(self, sink: BinarySink, level: int) -> None:
            self.done = False

        def write(self, data: bytes | memoryview, /) -> int:
            if not self.done:
                self.done = True
                os.truncate(root / "data", 100)
            return len(data)

        def close(self) -> None:
            pass

    with pytest.raises(PublishError, match="data: shrank while publishing"):
        write_archive(entries, io.BytesIO(), gzip=Truncating)


def test_bytes_appended_after_the_open_are_not_archived(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    (root / "log").write_bytes(b"a" * 1000)
    entries = scan_tree(root, follow_links=False)

    class Appending(_Plain):
        def write(self, data: bytes | memoryview, /) -> int:
            with open(root / "log", "ab") as handle:
                handle.write(b"late")
            return super().write(data)

    out = io.BytesIO()
    write_archive(entries, out, gzip=Appending)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        member = tar.extractfile("log")
        assert member is not None
        assert member.read() == b"a" * 1000


def test_a_tree_at_the_path_limits_archives_and_extracts(tmp_path: Path) -> None:
    """A file 256 levels down, next to a 255-byte name, round-trips with little stack."""
    source = tmp_path / "src"
    deep = "/".join(["d"] * (MAX_PATH_DEPTH - 1) + ["f"])
    (source / deep).parent.mkdir(parents=True)
    (source / deep).write_bytes(b"deep")
    (source / ("n" * MAX_SEGMENT_BYTES)).write_bytes(b"long")
    archive = tmp_path / "r.tar.gz"
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(250)  # less than one frame per level of the tree
    try:
        with open(archive, "wb") as out:
            write_archive(scan_tree(source, follow_links=False), out)
        tree = tmp_path / "tree"
        tree.mkdir()
        assert extract_archive(archive, tree) == (2, 8)
    finally:
        sys.setrecursionlimit(before)
    assert (tree / deep).read_bytes() == b"deep"
    assert (tree / ("n" * MAX_SEGMENT_BYTES)).read_bytes() == b"long"
