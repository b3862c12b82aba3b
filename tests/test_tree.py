"""Reading result trees: links inside kept or copied, everything else refused by name."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from publisher_core import PublishError, SpecError, empty_directories, scan_tree


def make_loop(first: Path, second: Path) -> None:
    os.symlink(second.name, first)
    os.symlink(first.name, second)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "result"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("bb")
    os.symlink("a.txt", root / "link-to-a")
    os.symlink("sub", root / "link-to-sub")
    return root


def test_archive_mode_keeps_links_inside_as_links(tree):
    """In archive mode an in-tree link is an entry of kind symlink with a relative target."""
    entries = {e.path: e for e in scan_tree(tree, follow_links=False)}
    assert entries["link-to-a"].kind == "symlink"
    assert entries["link-to-a"].link == "a.txt"
    assert entries["link-to-sub"].link == "sub"
    assert "link-to-sub/b.txt" not in entries


def test_directory_mode_copies_link_targets(tree):
    """In directory mode a link becomes a copy of its target, directories included."""
    entries = {e.path: e for e in scan_tree(tree, follow_links=True)}
    assert entries["link-to-a"].kind == "file"
    assert entries["link-to-a"].size == 1
    assert entries["link-to-sub/b.txt"].kind == "file"
    assert entries["link-to-sub/deep"].kind == "dir"


def test_empty_directories_are_entries(tree):
    """Empty directories survive the scan."""
    entries = scan_tree(tree, follow_links=False)
    assert sorted(empty_directories(entries)) == ["empty", "sub/deep"]


def test_absolute_link_inside_the_tree_is_stored_relative(tree):
    """An absolute link to a file inside the result is stored as a relative link."""
    os.symlink(tree / "sub" / "b.txt", tree / "abs-link")
    entries = {e.path: e for e in scan_tree(tree, follow_links=False)}
    assert entries["abs-link"].link == "sub/b.txt"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: os.symlink("/etc/hostname", r / "out"), "out: symlink leads out of the result"),
        (lambda r: os.symlink("../../x", r / "up"), "up: is a dangling symlink"),
        (lambda r: os.symlink("nowhere", r / "dangling"), "dangling: is a dangling symlink"),
        (
            lambda r: make_loop(r / "loop1", r / "loop2"),
            "loop1: is a symlink loop",
        ),
        (lambda r: os.mkfifo(r / "fifo"), "fifo: is a FIFO, which cannot be published"),
    ],
)
def test_unpublishable_entries_are_named(tree, make, message):
    """Links leading out, dangling links, loops and FIFOs fail, naming the path."""
    make(tree)
    for follow in (True, False):
        with pytest.raises(PublishError, match=message):
            scan_tree(tree, follow_links=follow)


def test_socket_is_refused(tree):
    """A socket in the result is named."""
    path = tree / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(PublishError, match=r"s.sock: is a socket"):
            scan_tree(tree, follow_links=False)


def test_link_cycle_through_a_directory_is_refused(tree):
    """A link to an ancestor would make directory mode copy forever."""
    os.symlink("..", tree / "sub" / "parent")
    with pytest.raises(PublishError, match="cycle"):
        scan_tree(tree, follow_links=True)


def test_all_problems_are_reported_together(tree):
    """Several bad entries come back in one error with a count."""
    os.symlink("/etc/hostname", tree / "x1")
    os.symlink("missing", tree / "x2")
    with pytest.raises(PublishError, match=r"2 entries of .* cannot be published"):
        scan_tree(tree, follow_links=False)


def test_invalid_utf8_name_is_refused(tree):
    """A name that is not UTF-8 cannot become a key."""
    with open(os.path.join(os.fsencode(tree), b"bad\xffname"), "wb") as handle:
        handle.write(b"x")
    with pytest.raises(PublishError, match="name is not valid UTF-8"):
        scan_tree(tree, follow_links=False)


def test_a_single_file_is_a_result(tree):
    """A single file is published under its own name."""
    (entry,) = scan_tree(tree / "a.txt", follow_links=True)
    assert entry.path == "a.txt"


def test_missing_source_is_a_spec_error(tmp_path):
    """A result path that does not exist is bad usage."""
    with pytest.raises(SpecError, match="No such file or directory"):
        scan_tree(tmp_path / "missing", follow_links=False)
