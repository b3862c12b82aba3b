"""Generated result trees for round-trip tests: build them on disk and snapshot them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

from hypothesis import strategies as st

Tree = dict[str, Union[bytes, "Tree"]]

names = st.text(
    alphabet=st.characters(categories=["L", "N", "Zs", "Pd", "Po"], exclude_characters="/\\\x00"),
    min_size=1,
    max_size=16,
).filter(lambda n: n not in (".", "..") and n.strip() == n and len(n.encode()) < 200)

contents = st.one_of(st.just(b""), st.binary(max_size=300), st.text(max_size=200).map(str.encode))

trees: st.SearchStrategy[Any] = st.recursive(
    contents,
    lambda children: st.dictionaries(names, children, max_size=4),
    max_leaves=12,
).filter(lambda t: isinstance(t, dict))


def build(tree: Tree, path: Path) -> Path:
    """Write ``tree`` under ``path`` (created) and return ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    for name, node in tree.items():
        if isinstance(node, dict):
            build(node, path / name)
        else:
            (path / name).write_bytes(node)
    return path


def snapshot(path: Path) -> dict[str, bytes | None]:
    """Every entry below ``path``: file contents, or None for a directory."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        rel = os.path.relpath(dirpath, path)
        for d in dirnames:
            out[os.path.normpath(os.path.join(rel, d))] = None
        for f in filenames:
            out[os.path.normpath(os.path.join(rel, f))] = Path(dirpath, f).read_bytes()
    return out


def files(tree: Tree, prefix: str = "") -> dict[str, bytes]:
    """Every file of ``tree`` by its relative POSIX path (directories are not listed)."""
    out: dict[str, bytes] = {}
    for name, node in tree.items():
        if isinstance(node, dict):
            out.update(files(node, f"{prefix}{name}/"))
        else:
            out[prefix + name] = node
    return out
