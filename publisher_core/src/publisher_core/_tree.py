"""Reading a result tree once, under the rules for files that are not regular files.

A symlink is never followed to content outside the result. A link inside the tree is kept
as a link (archive mode) or replaced by a copy of its target (directory mode). A link
leading out, a dangling link, a link loop, a FIFO, socket or device, a path that breaks
the result path rule of :func:`~publisher_core._paths.path_problem` (not valid UTF-8, a
control character or a backslash in a name, a name over 255 bytes, a path over 4095 bytes
or 256 levels deep) and two names in one directory that differ only in Unicode
normalisation are errors naming the paths; all of them are reported together. ``get``
judges the paths it writes by the same rule, so whatever publishes can be fetched.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from pathlib import Path
from typing import BinaryIO, Literal

import attrs

from ._errors import PublishError, SpecError, summarize
from ._paths import path_problem, shown_path

__all__ = ["TreeEntry", "empty_directories", "open_entry", "read_entry", "scan_tree"]

_MAX_SHOWN = 10

_Walk = tuple[str, str, tuple[str, ...]]
"""A directory to walk: its path on disk, its prefix in the result, the links expanding."""


@attrs.frozen(kw_only=True)
class TreeEntry:
    """One entry of a result tree.

    ``path`` is the relative POSIX path in the result; ``source`` is where the bytes are
    read from (the link's target for a copied link). ``link`` is the link text, relative
    to the link's directory, for a link kept as a link.
    """

    path: str
    kind: Literal["file", "dir", "symlink"]
    source: Path
    size: int = 0
    mode: int = 0o644
    mtime: int = 0
    link: str | None = None
    identity: tuple[int, int] | None = None
    """``(st_dev, st_ino)`` of a file when scanned; :func:`open_entry` checks it."""


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _form(name: str) -> str:
    for form in ("NFC", "NFD"):
        if unicodedata.is_normalized(form, name):
            return form
    return "not normalised"


def _twins_problem(paths: list[str]) -> str:
    """The problem of sibling ``paths`` that are one name after Unicode normalisation."""
    shown = [f"{p} ({_form(p.rsplit('/', 1)[-1])})" for p in paths]
    both = ", ".join(shown[:-1]) + " and " + shown[-1]
    return (
        f"{both}: names differ only in Unicode normalisation (NFC/NFD) and would collide "
        "on macOS/Windows-style filesystems"
    )


class _Scanner:
    def __init__(self, root: Path, follow_links: bool) -> None:
        self.root = root
        self.root_real = os.path.realpath(root)
        self.follow = follow_links
        self.problems: list[str] = []
        self.entries: list[TreeEntry] = []

    def inside(self, real: str) -> bool:
        return real == self.root_real or real.startswith(self.root_real.rstrip("/") + "/")

    def walk(self, directory: str, prefix: str, expanding: tuple[str, ...]) -> None:
        """Visit everything below ``directory`` depth first, in name order, without recursion.

        The stack holds one list of children per open directory, so its height is the
        depth of the tree, which :func:`path_problem` bounds.
        """
        stack = [self.children(directory, prefix, expanding)]
        while stack:
            if not stack[-1]:
                stack.pop()
                continue
            fs_path, rel, inherited = stack[-1].pop()
            below = self.visit(fs_path, rel, inherited)
            if below is not None:
                stack.append(self.children(*below))

    def children(
        self, directory: str, prefix: str, expanding: tuple[str, ...]
    ) -> list[tuple[str, str, tuple[str, ...]]]:
        """The children of ``directory`` to visit, last name first (a stack pops the first)."""
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.problems.append(f"{prefix or '.'}: cannot list directory ({exc.strerror})")
            return []
        twins: dict[str, list[str]] = {}
        for child in children:
            twins.setdefault(unicodedata.normalize("NFC", child.name), []).append(child.name)
        for names in twins.values():
            if len(names) > 1:
                self.problems.append(_twins_problem([prefix + name for name in names]))
        return [(child.path, prefix + child.name, expanding) for child in reversed(children)]

    def name_ok(self, rel: str) -> bool:
        """Whether ``rel`` can name an entry (see :func:`path_problem`); else it is recorded."""
        problem = path_problem(rel)
        if problem is not None:
            self.problems.append(f"{shown_path(rel)}: {problem}")
        return problem is None

    def visit(self, fs_path: str, rel: str, expanding: tuple[str, ...]) -> _Walk | None:
        """Add the entry at ``fs_path``; return the directory to walk next, if it is one."""
        if not self.name_ok(rel):
            return None
        try:
            st = os.lstat(fs_path)
        except OSError as exc:
            self.problems.append(f"{rel}: cannot read ({exc.strerror})")
            return None
        if stat.S_ISLNK(st.st_mode):
            return self.visit_link(fs_path, rel, expanding)
        if stat.S_ISDIR(st.st_mode):
            return self.add_dir(fs_path, rel, st, expanding)
        if stat.S_ISREG(st.st_mode):
            self.add_file(fs_path, rel, st)
        else:
            self.problems.append(f"{rel}: is {_kind_of(st.st_mode)}, which cannot be published")
        return None

    def add_dir(
        self, fs_path: str, rel: str, st: os.stat_result, expanding: tuple[str, ...]
    ) -> _Walk:
        self.entries.append(
            TreeEntry(
                path=rel,
                kind="dir",
                source=Path(fs_path),
                mode=stat.S_IMODE(st.st_mode),
                mtime=int(st.st_mtime),
            )
        )
        return fs_path, rel + "/", expanding

    def add_file(self, fs_path: str, rel: str, st: os.stat_result) -> None:
        self.entries.append(
            TreeEntry(
                path=rel,
                kind="file",
                source=Path(fs_path),
                size=st.st_size,
                mode=stat.S_IMODE(st.st_mode),
                mtime=int(st.st_mtime),
                identity=(st.st_dev, st.st_ino),
            )
        )

    def visit_link(self, fs_path: str, rel: str, expanding: tuple[str, ...]) -> _Walk | None:
        try:
            st = os.stat(fs_path)
        except OSError as exc:
            reason = "is a symlink loop" if exc.errno == errno.ELOOP else "is a dangling symlink"
            self.problems.append(f"{rel}: {reason} (-> {os.readlink(fs_path)})")
            return None
        real = os.path.realpath(fs_path)
        if not self.inside(real):
            self.problems.append(
                f"{rel}: symlink leads out of the result (-> {os.readlink(fs_path)})"
            )
            return None
        parent_real = os.path.realpath(os.path.dirname(fs_path))
        if not self.follow:
            link = os.path.relpath(real, parent_real)
            self.entries.append(
                TreeEntry(
                    path=rel,
                    kind="symlink",
                    source=Path(fs_path),
                    link=link,
                    mode=0o777,
                    mtime=int(os.lstat(fs_path).st_mtime),
                )
            )
        elif stat.S_ISREG(st.st_mode):
            self.add_file(real, rel, st)
        elif stat.S_ISDIR(st.st_mode):
            if real in expanding or (parent_real + "/").startswith(real + "/"):
                self.problems.append(f"{rel}: symlink to a directory containing it (a cycle)")
                return None
            return self.add_dir(real, rel, st, (*expanding, real))
        else:
            self.problems.append(
                f"{rel}: symlink to {_kind_of(st.st_mode)}, which cannot be published"
            )
        return None


def scan_tree(source: Path, *, follow_links: bool) -> list[TreeEntry]:
    """Every entry of the result at ``source`` (a directory or one file), sorted by path.

    ``follow_links`` True (directory mode) replaces in-tree links by their targets' content;
    False (archive mode) keeps them as links. Raises :class:`SpecError` when ``source``
    is missing and :class:`PublishError` listing every entry that cannot be published.
    """
    try:
        st = os.stat(source)
    except OSError as exc:
        raise SpecError(f"{source}: {exc.strerror}", what="result path") from None
    if stat.S_ISREG(st.st_mode):
        scanner = _Scanner(source.parent, follow_links)
        if scanner.name_ok(source.name):
            scanner.add_file(os.path.realpath(source), source.name, st)
    elif stat.S_ISDIR(st.st_mode):
        scanner = _Scanner(source, follow_links)
        scanner.walk(os.path.realpath(source), "", (scanner.root_real,))
    else:
        raise SpecError(
            f"{source}: is {_kind_of(st.st_mode)}, not a directory or file", what="result path"
        )
    if scanner.problems:
        count = len(scanner.problems)
        shown = summarize(scanner.problems, _MAX_SHOWN)
        entries = "entry" if count == 1 else "entries"
        raise PublishError(f"{count} {entries} of {source} cannot be published: {shown}")
    return scanner.entries


def empty_directories(entries: list[TreeEntry]) -> list[str]:
    """Relative paths of directories with no entries below them."""
    parents = {e.path.rsplit("/", 1)[0] for e in entries if "/" in e.path}
    return [e.path for e in entries if e.kind == "dir" and e.path not in parents]


def open_entry(entry: TreeEntry) -> BinaryIO:
    """Open a scanned file for reading, refusing it if it was replaced since the scan.

    The path is opened without following a final symlink and must still be the same
    regular file (device and inode) the scan saw, so swapping a file for a link to
    something outside the result between scan and read publishes nothing from outside.
    A scanned file must also still have the size the scan saw: one that grew or shrank
    in between is still being written, and is refused rather than published half-done.
    """
    return os.fdopen(_open_checked(entry), "rb")


def read_entry(entry: TreeEntry) -> bytes:
    """The whole of a scanned file, opened with :func:`open_entry`'s checks; for small files.

    Reads with one system call where the file allows it, without a buffered file object:
    for 20,000 small files that is a third fewer system calls than ``open_entry(...).read()``,
    each of which hands the interpreter lock to another thread. Raises
    :class:`PublishError` as :func:`open_entry` does, and also when the file grew or shrank
    while it was read.
    """
    fd = _open_checked(entry)
    try:
        want = entry.size + 1  # one byte more than scanned: a file still growing shows it
        data = os.read(fd, want)
        while entry.size > len(data):  # a short read: go on to the end (or past it)
            more = os.read(fd, want - len(data))
            if not more:
                break
            data += more
    except OSError as exc:
        raise PublishError(f"{entry.path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) != entry.size:
        raise PublishError(f"{entry.path}: changed size while publishing; nothing was published")
    return data


def _open_checked(entry: TreeEntry) -> int:
    """A descriptor of ``entry``'s file, opened as :func:`open_entry` describes."""
    try:
        fd = os.open(entry.source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP and entry.kind == "file":  # O_NOFOLLOW met a link
            raise PublishError(
                f"{entry.path}: was replaced by a symlink while publishing; nothing was published"
            ) from None
        raise PublishError(f"{entry.path}: cannot open ({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (
        entry.identity is not None and (st.st_dev, st.st_ino) != entry.identity
    ):
        os.close(fd)
        raise PublishError(f"{entry.path}: was replaced while publishing; nothing was published")
    if entry.identity is not None and st.st_size != entry.size:
        os.close(fd)
        raise PublishError(
            f"{entry.path}: changed size while publishing ({entry.size} bytes when scanned, "
            f"{st.st_size} when read); nothing was published"
        )
    return fd
