"""``publisher get`` on the command line (in process): --attempts, --timeout and --max-size,
and the one error line a failed get prints.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from publisher_core import DownloadItem, ResultDescription
from publisher_core._documents import description_to_document, dump_document
from tests.conftest import CLIResult
from tests.downloads import PAYLOAD, item_for, member, tar_gz


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
