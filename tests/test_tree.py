"""Reading result trees: links inside kept or copied, everything else refused by name."""

from __future__ import annotations

import os
import re
import socket
import sys
import tarfile
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher_core import (
    PublishError,
    SpecError,
    TreeEntry,
    empty_directories,
    open_entry,
    quoted,
    read_entry,
    safe_relative_path,
    scan_tree,
)
from publisher_core._extract import _ArchiveChecker
from publisher_core._paths import MAX_PATH_BYTES, MAX_PATH_DEPTH, MAX_SEGMENT_BYTES, path_problem


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


NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")


@pytest.mark.parametrize("follow", [True, False])
def test_names_differing_only_in_normalisation_are_refused(tree: Path, follow: bool) -> None:
    """NFC and NFD spellings of one name are two files here, one on macOS or Windows."""
    (tree / "other").mkdir()  # no link leads here, so the pair is reported once
    (tree / "other" / NFC).write_text("composed")
    (tree / "other" / NFD).mkdir()
    with pytest.raises(PublishError) as caught:
        scan_tree(tree, follow_links=follow)
    assert str(caught.value) == (
        f"1 entry of {tree} cannot be published: other/{NFD} (NFD) and other/{NFC} (NFC): "
        "names differ only in Unicode normalisation (NFC/NFD) and would collide on "
        "macOS/Windows-style filesystems"
    )


def test_a_name_in_neither_normal_form_is_labelled_so(tree: Path) -> None:
    """The Kelvin sign is K after normalisation, and is in neither form itself."""
    (tree / "K").write_text("letter")
    (tree / "\u212a").write_text("kelvin")
    with pytest.raises(
        PublishError, match=r"K \(NFC\) and \u212a \(not normalised\): names differ"
    ):
        scan_tree(tree, follow_links=False)


def test_the_same_name_in_two_forms_in_different_directories_is_fine(tree: Path) -> None:
    """Only siblings can collide."""
    (tree / NFC).write_text("composed")
    (tree / "sub" / NFD).write_text("decomposed")
    paths = {e.path for e in scan_tree(tree, follow_links=False)}
    assert {NFC, f"sub/{NFD}"} <= paths


def test_twins_through_a_copied_link_are_refused(tree: Path) -> None:
    """Directory mode walks a linked directory's children too, and checks them."""
    (tree / "sub" / NFC).write_text("composed")
    (tree / "sub" / NFD).write_text("decomposed")
    with pytest.raises(PublishError, match=rf"link-to-sub/{NFD} \(NFD\) and link-to-sub/{NFC}"):
        scan_tree(tree, follow_links=True)


@pytest.mark.parametrize("follow", [True, False])
@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("new\nline", r"'new\\nline'"),
        ("tab\there", r"'tab\\there'"),
        ("esc\x1b[31m", r"'esc\\x1b\[31m'"),
        ("del\x7f", r"'del\\x7f'"),
        ("line\u2028sep", r"'line\\u2028sep'"),
    ],
)
def test_names_with_control_characters_are_refused(
    tree: Path, follow: bool, name: str, shown: str
) -> None:
    """A control character cannot be in a key, nor safely in a file name get recreates."""
    (tree / "sub" / name).write_text("x")
    with pytest.raises(PublishError, match=rf"sub/{shown[1:]}: name contains a control character"):
        scan_tree(tree, follow_links=follow)


def test_a_directory_with_a_control_character_is_refused_without_its_contents(tree: Path) -> None:
    """The directory is named once; what is below it is not listed as well."""
    (tree / "bad\ndir").mkdir()
    (tree / "bad\ndir" / "f").write_text("x")
    with pytest.raises(PublishError, match=r"^1 entry of .*: 'bad\\ndir': name contains"):
        scan_tree(tree, follow_links=False)


def test_a_single_file_with_a_control_character_is_refused(tmp_path: Path) -> None:
    """A result that is one file is held to the same naming rules."""
    (tmp_path / "one\nfile").write_text("x")
    with pytest.raises(PublishError, match=r"'one\\nfile': name contains a control character"):
        scan_tree(tmp_path / "one\nfile", follow_links=False)


def test_new_problems_are_reported_with_the_others(tree: Path) -> None:
    """Twins, control characters and a FIFO come back together, in path order."""
    (tree / NFC).write_text("composed")
    (tree / NFD).write_text("decomposed")
    (tree / "a\tb").write_text("x")
    os.mkfifo(tree / "fifo")
    with pytest.raises(PublishError) as caught:
        scan_tree(tree, follow_links=False)
    message = str(caught.value)
    assert message.startswith(f"3 entries of {tree} cannot be published: ")
    assert "(NFC/NFD)" in message
    assert "'a\\tb': name contains a control character" in message
    assert "fifo: is a FIFO" in message


def _read_whole(entry: TreeEntry) -> bytes:
    with open_entry(entry) as handle:
        return handle.read()


READERS = pytest.mark.parametrize("read", [_read_whole, read_entry], ids=["open", "read"])
"""open_entry and read_entry make the same checks."""


@READERS
@pytest.mark.parametrize(("size", "when_read"), [(b"a" * 5, 5), (b"", 0)])
def test_a_file_that_changed_size_since_the_scan_is_not_opened(
    tree: Path, size: bytes, when_read: int, read: Callable[[TreeEntry], bytes]
) -> None:
    """A file still being written when it is read is refused, naming both sizes."""
    entry = next(e for e in scan_tree(tree, follow_links=False) if e.path == "a.txt")
    (tree / "a.txt").write_bytes(size)
    with pytest.raises(
        PublishError,
        match=rf"^a\.txt: changed size while publishing \(1 bytes when scanned, {when_read} "
        r"when read\); nothing was published$",
    ):
        read(entry)


@READERS
def test_a_file_replaced_by_a_link_says_so(tree: Path, read: Callable[[TreeEntry], bytes]) -> None:
    """A link swapped in after the scan is not followed, and the error says what happened."""
    entry = next(e for e in scan_tree(tree, follow_links=False) if e.path == "a.txt")
    (tree / "a.txt").unlink()
    os.symlink("sub/b.txt", tree / "a.txt")
    with pytest.raises(PublishError, match=r"^a\.txt: was replaced by a symlink while publishing"):
        read(entry)


@READERS
def test_a_file_replaced_by_another_is_refused(
    tree: Path, read: Callable[[TreeEntry], bytes]
) -> None:
    """A different file of the same size at the same path (a new inode) is not read."""
    entry = next(e for e in scan_tree(tree, follow_links=False) if e.path == "a.txt")
    (tree / "a.txt").rename(tree / "kept.txt")  # kept: its inode cannot be reused
    (tree / "a.txt").write_bytes(b"z")
    with pytest.raises(PublishError, match=r"^a\.txt: was replaced while publishing"):
        read(entry)


@READERS
def test_an_unchanged_file_opens(tree: Path, read: Callable[[TreeEntry], bytes]) -> None:
    """The checks let through a file that is as the scan saw it."""
    entry = next(e for e in scan_tree(tree, follow_links=False) if e.path == "sub/b.txt")
    assert read(entry) == b"bb"


@given(content=st.binary(max_size=70_000))
def test_read_entry_returns_every_byte(content: bytes) -> None:
    """read_entry gives back exactly what the file holds, whatever its size."""
    with tempfile.TemporaryDirectory() as name:
        (Path(name) / "f").write_bytes(content)
        (entry,) = scan_tree(Path(name), follow_links=False)
        assert read_entry(entry) == content


def test_read_entry_refuses_a_file_that_grows_while_it_is_read(tree: Path) -> None:
    """Past the check at open (no identity to compare), a longer file is still refused."""
    entry = next(e for e in scan_tree(tree, follow_links=False) if e.path == "a.txt")
    (tree / "a.txt").write_bytes(b"longer")
    with pytest.raises(
        PublishError, match=r"^a\.txt: changed size while publishing; nothing was published$"
    ):
        read_entry(attrs.evolve(entry, identity=None))


def test_read_entry_goes_on_after_a_short_read(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that returns less than asked (a network file system) is continued."""
    entry = next(e for e in scan_tree(tree, follow_links=False) if e.path == "sub/b.txt")
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: real_read(fd, 1))
    assert read_entry(entry) == b"bb"


# -- The result path rule: what publish accepts, get fetches ---------------------------------


@pytest.mark.parametrize("follow", [True, False])
def test_a_name_with_a_backslash_is_refused_naming_it(tree: Path, follow: bool) -> None:
    """A backslash in a name is refused at publish, as get would refuse the path."""
    (tree / "sub" / "x\\y").write_text("1\n")
    with pytest.raises(PublishError) as refused:
        scan_tree(tree, follow_links=follow)
    assert str(refused.value).endswith(
        "'sub/x\\\\y': name contains a backslash, a path separator on Windows, which a key "
        "or a restored file name cannot hold safely"
    )


def test_a_single_file_with_a_backslash_is_refused(tmp_path: Path) -> None:
    """A result that is one file with a backslash in its name is refused too."""
    (tmp_path / "a\\b").write_text("x")
    with pytest.raises(PublishError, match=r"'a\\\\b': name contains a backslash"):
        scan_tree(tmp_path / "a\\b", follow_links=False)


def nest(root: Path, depth: int) -> str:
    """A file ``depth`` levels down below ``root`` (directories named ``d``); its path."""
    rel = "/".join(["d"] * (depth - 1) + ["f"])
    (root / rel).parent.mkdir(parents=True)
    (root / rel).write_text("deep")
    return rel


@pytest.mark.parametrize("follow", [True, False])
def test_a_tree_deeper_than_the_limit_is_refused_once(tmp_path: Path, follow: bool) -> None:
    """A path over MAX_PATH_DEPTH levels is one problem naming it; nothing below is walked."""
    nest(tmp_path / "r", MAX_PATH_DEPTH + 3)
    with pytest.raises(PublishError) as refused:
        scan_tree(tmp_path / "r", follow_links=follow)
    deepest = quoted("/".join(["d"] * (MAX_PATH_DEPTH + 1)))  # cut to 80 characters
    assert str(refused.value) == (
        f"1 entry of {tmp_path / 'r'} cannot be published: {deepest}: path is "
        f"{MAX_PATH_DEPTH + 1} levels deep; the limit is {MAX_PATH_DEPTH}"
    )


@pytest.mark.parametrize("follow", [True, False])
def test_a_tree_at_the_depth_limit_is_scanned_without_recursion(
    tmp_path: Path, follow: bool
) -> None:
    """A file MAX_PATH_DEPTH levels down is accepted, even with a small recursion limit."""
    rel = nest(tmp_path / "r", MAX_PATH_DEPTH)
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(400)  # a recursive walk needs a frame or more per level
    try:
        entries = scan_tree(tmp_path / "r", follow_links=follow)
    finally:
        sys.setrecursionlimit(before)
    assert [e.path for e in entries][-1] == rel
    assert len(entries) == MAX_PATH_DEPTH


def test_the_walk_keeps_depth_first_name_order(tree: Path) -> None:
    """Entries come depth first, siblings in name order, as before the walk was iterative."""
    paths = [e.path for e in scan_tree(tree, follow_links=True)]
    assert paths == [
        "a.txt",
        "empty",
        "link-to-a",
        "link-to-sub",
        "link-to-sub/b.txt",
        "link-to-sub/deep",
        "sub",
        "sub/b.txt",
        "sub/deep",
    ]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "path is empty"),
        ("/a", "path is absolute (starts with '/')"),
        ("a//b", "path has an empty, '.' or '..' segment"),
        ("a/./b", "path has an empty, '.' or '..' segment"),
        ("a/..", "path has an empty, '.' or '..' segment"),
        ("a/", "path has an empty, '.' or '..' segment"),
        ("a\udcffb", "name is not valid UTF-8"),
        ("a\x00b", "name contains a control character"),
        ("a\\b", "name contains a backslash"),
        ("/".join("a" * (MAX_PATH_DEPTH + 1)), f"path is {MAX_PATH_DEPTH + 1} levels deep"),
        ("/".join(["b" * 250] * 17), f"path is 4266 UTF-8 bytes; the limit is {MAX_PATH_BYTES}"),
        ("é" * 128, f"name 'ééé.*' is 256 UTF-8 bytes; the limit is {MAX_SEGMENT_BYTES}"),
    ],
)
def test_the_path_rule_names_the_problem(path: str, problem: str) -> None:
    """Each way a result path can be wrong has its own reason."""
    found = path_problem(path)
    assert found is not None
    assert re.match(problem if ".*" in problem else re.escape(problem), found)


@pytest.mark.parametrize(
    "path",
    [
        "a",
        "a b/c-d.txt",
        "é" * 127 + "e",  # 255 bytes
        "/".join(["a"] * MAX_PATH_DEPTH),
        "/".join(["b" * 254] * 16)[: MAX_PATH_BYTES - 1] + "c",  # 4095 bytes
    ],
)
def test_the_path_rule_accepts_paths_up_to_its_limits(path: str) -> None:
    """Paths at the limits of bytes, segment bytes and depth are accepted."""
    assert path_problem(path) is None


RISKY = st.sampled_from(["a", "b", "é", " ", "-", ".", "\\", "\t", "\n", "\x7f", "\x85", "\u2028"])
segments = st.text(alphabet=RISKY, min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))


@given(st.lists(st.lists(segments, min_size=1, max_size=3), min_size=1, max_size=3))
def test_whatever_scan_tree_accepts_get_accepts(paths: list[list[str]]) -> None:
    """Any tree scan_tree accepts has only paths get and archive extraction accept, and a
    tree it refuses has a path they refuse."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "r")
        root.mkdir()
        made = []
        for parts in paths:
            try:
                root.joinpath(*parts[:-1]).mkdir(parents=True, exist_ok=True)
                root.joinpath(*parts).write_text("x")
            except OSError:  # a file where a directory is wanted, or the reverse
                continue
            made.append("/".join(parts))
        try:
            entries = scan_tree(root, follow_links=False)
        except PublishError:
            assert any(path_problem(p) is not None for p in made)
            return
    checker = _ArchiveChecker()
    for entry in entries:
        assert safe_relative_path(entry.path) == entry.path
        info = tarfile.TarInfo(entry.path)
        info.type = tarfile.DIRTYPE if entry.kind == "dir" else tarfile.REGTYPE
        assert checker.check(info) == entry.path
