"""Putting a finished result in place under the local root, with or without replacing one.

A result is always built first under a temporary name in its destination's directory
(see :class:`Staging`) and only then moved into place, by renames within that directory:

- :func:`place_new` (``Overwrite: false``) never replaces anything: the directory goes in
  with ``renameat2(RENAME_NOREPLACE)`` and the manifest, last, with a hard link.
- :func:`swap_in` (``Overwrite: true``) replaces an earlier directory result in steps a
  reader can never mistake for a complete result made of two publishes (the earlier one
  turns incomplete first, the new one complete last), and undoes the steps already taken
  if one fails, leaving the earlier result as it was; :meth:`Staging.discard` then removes
  the earlier result's parts.
- :func:`replace_file` and :func:`link_new_file` do the same for one file (an archive).

Concurrent local publishers into one directory take turns for these few renames
(:func:`turn`), so two results published over each other at once cannot end up with
one's directory and the other's manifest.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import logging
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from publisher_core import Manifest, PublishError, SpecError, summarize

if sys.platform != "win32":
    import fcntl

__all__ = [
    "RENAME_EXCHANGE",
    "RENAME_NOREPLACE",
    "Staging",
    "check_destination",
    "link_new_file",
    "place_new",
    "renameat2",
    "replace_file",
    "swap_in",
    "turn",
]

_log = logging.getLogger(__name__)

RENAME_NOREPLACE = 1
"""``renameat2`` flag: fail with ``EEXIST`` instead of replacing the destination."""
RENAME_EXCHANGE = 2
"""``renameat2`` flag: swap source and destination atomically; both must exist."""

_AT_FDCWD = -100
_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


@functools.cache
def _libc_renameat2() -> Callable[..., Any] | None:
    """The C library's ``renameat2``, or None where there is none (not Linux, glibc < 2.28)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    # int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
    #               unsigned int flags);
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


def renameat2(source: Path, destination: Path, flags: int) -> bool:
    """Rename ``source`` to ``destination`` with Linux ``renameat2(2)`` and ``flags``.

    ``flags`` is :data:`RENAME_NOREPLACE` or :data:`RENAME_EXCHANGE`. Returns True when the
    rename was done, False when it could not even be tried here: no ``renameat2`` in the
    C library, a kernel without the system call (``ENOSYS``), or a filesystem that does not
    support the flag (``EINVAL``, ``ENOTSUP``); the caller then falls back to plain renames.
    Any other failure is raised as :class:`OSError` (``EEXIST`` for a destination that
    exists under ``RENAME_NOREPLACE``, ``ENOENT`` for a missing one under
    ``RENAME_EXCHANGE``).
    """
    function = _libc_renameat2()
    if function is None:
        return False
    status: int = function(
        _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(destination), flags
    )
    if status == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(source), None, str(destination))


@contextlib.contextmanager
def turn(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` while placing a result in it.

    Local publishers into one directory (of any key) take turns, for a few renames each.
    Best effort: where the directory cannot be locked (no ``flock`` on this system or
    filesystem) the placement still goes ahead, and the renames alone protect it.
    """
    if sys.platform == "win32":
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        fd = -1
    try:
        if fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd >= 0:
            os.close(fd)  # closing releases the lock


def _exists(path: Path) -> PublishError:
    return PublishError(
        f"{path} already exists; Overwrite is false, so nothing was written: choose another "
        "Key (e.g. with {executionID}) or set Overwrite: true"
    )


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a regular file" if stat.S_ISREG(mode) else "a special file"


def _check_kind(path: Path, *, directory: bool, right: str) -> None:
    """Refuse ``path`` unless it is a real directory (``directory``) or a regular file.

    A symbolic link is refused either way, whatever it points to.
    """
    mode = os.lstat(path).st_mode
    if stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode):
        return
    raise PublishError(
        f"{path} is {_kind(mode)}, where {right} goes; Overwrite replaces only an earlier "
        "result, so it is left alone - remove it or choose another Key"
    )


_MANIFEST_SUFFIX = ".manifest.json"


def _own_files(manifest: Path) -> set[str]:
    """The relative paths of the files ``manifest`` lists (none if it is absent or unreadable)."""
    try:
        return {f.path for f in Manifest.from_bytes(manifest.read_bytes()).files}
    except (OSError, SpecError, ValueError):
        return set()


def _nested_results(directory: Path, own: set[str]) -> list[Path]:
    """Manifests inside ``directory`` whose directory result lies beside them.

    As the S3 publisher judges a prefix: ``NAME.manifest.json`` next to a directory
    ``NAME``, at any depth, is another result, unless the manifest is one of ``own``, the
    files of the result at ``directory`` itself (a result may hold files named like
    that). Links are not followed.
    """
    found: list[Path] = []
    for current, dirs, files in os.walk(directory):
        for name in sorted(files):
            stem = name[: -len(_MANIFEST_SUFFIX)]
            if not name.endswith(_MANIFEST_SUFFIX) or stem not in dirs:
                continue
            manifest = Path(current, name)
            if manifest.relative_to(directory).as_posix() not in own:
                found.append(manifest)
    return found


def check_destination(
    target: Path, manifest: Path | None, *, overwrite: bool, thorough: bool = True
) -> None:
    """Refuse a destination that this publish may not write to.

    ``manifest`` is None for an archive (``target`` is then the ``.tar.gz`` file). With
    ``overwrite`` False, anything at ``target`` or ``manifest`` is refused. With it True,
    only what an earlier result of the same mode would have left is replaced: a real
    directory (and a regular file for its manifest), or a regular file for an archive.
    A symbolic link, or a destination of the other kind, is refused and never removed.
    ``thorough`` also refuses a directory that holds other directory results, e.g. ``runs/``
    holding ``runs/j1/`` and ``runs/j1.manifest.json``: replacing it would delete them.
    """
    paths = [target] if manifest is None else [target, manifest]
    if not overwrite:
        for path in paths:
            if os.path.lexists(path):
                raise _exists(path)
        return
    if manifest is None:
        if os.path.lexists(target):
            _check_kind(target, directory=False, right="an archive (a regular file)")
        return
    if os.path.lexists(manifest):
        _check_kind(manifest, directory=False, right="the manifest (a regular file)")
    if not os.path.lexists(target):
        return
    _check_kind(target, directory=True, right="a directory result")
    if thorough:
        nested = _nested_results(target, _own_files(manifest))
        if nested:
            shown = summarize(nested, 3, separator=", ", before_more=" ")
            raise PublishError(
                f"{target} holds other results ({shown}); replacing it would delete "
                "them: choose a key that holds no other result"
            )


class Staging:
    """A temporary directory beside the destination, where a directory result is built.

    It holds ``tree/`` (the new result) and ``manifest.json`` (its manifest) until they
    are moved into place, and the earlier result's parts while :func:`swap_in` replaces
    them. Everything in it is on the destination's filesystem, so moving out is a rename.
    :meth:`discard` removes it with whatever is left in it, unless ``keep`` was set
    because it holds the only copy of an earlier result that could not be put back.
    """

    def __init__(self, target: Path) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        self.tree = self.path / "tree"
        self.manifest = self.path / "manifest.json"
        self.old_tree = self.path / "old"
        self.old_manifest = self.path / "old.manifest.json"
        self.keep = False
        try:
            self.tree.mkdir(mode=0o700)
        except BaseException:
            self.path.rmdir()
            raise

    def write_manifest(self, data: bytes) -> None:
        """Write the new result's manifest into the staging directory."""
        fd = os.open(self.manifest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)

    def discard(self) -> None:
        """Remove the staging directory and what is in it (unless ``keep`` is set)."""
        if self.keep:
            return
        try:
            shutil.rmtree(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            _log.warning("could not remove the temporary directory %s: %s", self.path, exc)


def _rename_new(source: Path, target: Path) -> None:
    """Rename ``source`` (a directory) to ``target``, which must not exist.

    With ``renameat2(RENAME_NOREPLACE)`` this is race-free. Without it, ``os.rename``
    still refuses a target that is a file or a non-empty directory, but would replace an
    *empty* directory that appeared at ``target`` since it was checked: only an empty
    result published at the same moment can be lost that way.
    """
    try:
        if renameat2(source, target, RENAME_NOREPLACE):
            return
        os.rename(source, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR) and os.path.lexists(target):
            raise _exists(target) from None
        raise


def link_new_file(tmp: Path, target: Path) -> None:
    """Move the file ``tmp`` to ``target`` without ever replacing an existing ``target``.

    A hard link is atomic and refuses an existing name; where the filesystem has no hard
    links, ``renameat2(RENAME_NOREPLACE)``, and failing that a check and a rename.
    """
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise _exists(target) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        try:
            if not renameat2(tmp, target, RENAME_NOREPLACE):
                if os.path.lexists(target):
                    raise _exists(target) from None
                os.rename(tmp, target)
        except FileExistsError:
            raise _exists(target) from None
        return
    tmp.unlink()


def replace_file(tmp: Path, target: Path) -> None:
    """Move the finished file ``tmp`` over ``target`` atomically (``Overwrite: true``).

    ``target`` must be absent or a regular file (an earlier archive); anything else is
    refused and left alone.
    """
    check_destination(target, None, overwrite=True)
    os.replace(tmp, target)


def place_new(staging: Staging, target: Path, manifest: Path) -> None:
    """Put a staged directory result in place, refusing anything there (``Overwrite: false``).

    The directory goes in first; the manifest, linked in last without replacing anything,
    makes the result complete. If the manifest cannot go in, the directory goes back.
    """
    check_destination(target, manifest, overwrite=False)
    _rename_new(staging.tree, target)
    try:
        link_new_file(staging.manifest, manifest)
    except BaseException:
        os.rename(target, staging.tree)  # into the staging directory, removed with it
        raise


def swap_in(staging: Staging, target: Path, manifest: Path) -> None:
    """Replace the directory result at ``target`` by the staged one (``Overwrite: true``).

    1. the old manifest moves aside into the staging directory: from now on the old
       result is incomplete, so no reader takes what follows for it;
    2. the new directory takes the old one's place: with ``renameat2(RENAME_EXCHANGE)`` in
       one atomic swap, else by renaming the old one aside and then the new one in;
    3. the new manifest goes in last: only now is the new result complete.

    The old parts are left in the staging directory, which the caller discards. If a step
    fails, the steps taken are undone in reverse order, the old result is complete again,
    and :class:`PublishError` is raised. Should undoing fail too, the error names the
    staging directory holding the old parts, and it is kept.
    """
    check_destination(target, manifest, overwrite=True, thorough=False)
    undo: list[Callable[[], None]] = []
    try:
        if os.path.lexists(manifest):
            os.rename(manifest, staging.old_manifest)
            undo.append(lambda: os.rename(staging.old_manifest, manifest))
        if not os.path.lexists(target):
            if not renameat2(staging.tree, target, RENAME_NOREPLACE):
                os.rename(staging.tree, target)
            undo.append(lambda: os.rename(target, staging.tree))
        elif renameat2(staging.tree, target, RENAME_EXCHANGE):
            undo.append(lambda: _exchange_back(staging.tree, target))
        else:
            os.rename(target, staging.old_tree)
            undo.append(lambda: os.rename(staging.old_tree, target))
            os.rename(staging.tree, target)
            undo.append(lambda: os.rename(target, staging.tree))
        os.rename(staging.manifest, manifest)
    except BaseException as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        problem = problem or type(exc).__name__
        for step in reversed(undo):
            try:
                step()
            except OSError as again:
                staging.keep = True
                raise PublishError(
                    f"could not replace {target} ({problem}) nor put the earlier result back "
                    f"({again.strerror or again}); what is missing of it is in {staging.path}"
                ) from exc
        if isinstance(exc, OSError):
            raise PublishError(
                f"could not replace {target}: {problem}; the earlier result is unchanged"
            ) from exc
        raise


def _exchange_back(tree: Path, target: Path) -> None:
    if not renameat2(tree, target, RENAME_EXCHANGE):
        raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP), str(tree), None, str(target))
