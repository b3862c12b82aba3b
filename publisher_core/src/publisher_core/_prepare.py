"""The step every publish starts with: the key rendered, the tree scanned, every key checked.

A publisher's ``plan_publish`` and ``publish`` both begin here, so the two can never
disagree about the key or the files, and a key a file would break is refused before the
first byte is written.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from ._keys import render_key, result_keys
from ._models import PublishContext
from ._tree import TreeEntry, scan_tree

__all__ = ["ScannedResult", "scan_result"]


@attrs.frozen(kw_only=True)
class ScannedResult:
    """A result ready to publish: its final key, its entries and every key it writes.

    ``key`` ends in ``/`` (directory mode) or ``.tar.gz`` (archive mode); ``entries`` are
    sorted by path (see :func:`scan_tree`); ``keys`` are what the publish writes, in
    order: each file's key then the manifest's, or the archive's alone.
    """

    key: str
    entries: list[TreeEntry]
    keys: tuple[str, ...]
    archive: bool

    @property
    def files(self) -> list[TreeEntry]:
        """The regular files among the entries."""
        return [e for e in self.entries if e.kind == "file"]


def scan_result(
    template: str, source: Path, context: PublishContext, *, archive: bool
) -> ScannedResult:
    """Render ``template`` in ``context``, scan ``source`` and check every key it makes.

    Archive mode keeps in-tree links as links; directory mode stores their targets.
    Raises :class:`SpecError` for a key the template cannot make,
    :class:`PublishError` for a tree that cannot be read or a file whose key would break
    the key rules.
    """
    key = render_key(template, context, compress=archive)
    entries = scan_tree(source, follow_links=not archive)
    files = [e.path for e in entries if e.kind == "file"]
    return ScannedResult(
        key=key, entries=entries, keys=tuple(result_keys(key, files)), archive=archive
    )
