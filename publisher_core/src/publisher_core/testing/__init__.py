"""A test kit for publisher authors: Hypothesis strategies and a contract test suite.

- :mod:`publisher_core.testing.strategies`: generated result trees, publish contexts,
  key templates, specs and published results, and helpers to build a tree on disk and
  snapshot a directory.
- :class:`PublisherContract` (:mod:`publisher_core.testing.contract`): subclass it in a
  test module to run the tests every publisher must pass.

Needs pytest and Hypothesis: install ``publisher-core[testing]``.
"""

from .contract import PublisherContract
from .strategies import Tree, build_tree, snapshot, tree_files

__all__ = ["PublisherContract", "Tree", "build_tree", "snapshot", "tree_files"]
