"""Generated result trees for round-trip tests, from :mod:`publisher_core.testing`."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from publisher_core.testing.strategies import Tree, build_tree, snapshot, tree_files
from publisher_core.testing.strategies import contents as _contents
from publisher_core.testing.strategies import names as _names
from publisher_core.testing.strategies import trees as _trees

__all__ = ["Tree", "build", "contents", "files", "names", "snapshot", "trees"]

names = _names()
contents = _contents()
trees: st.SearchStrategy[Any] = _trees()
build = build_tree
files = tree_files
