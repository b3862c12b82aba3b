"""Hypothesis strategies for publisher tests: result trees, contexts, keys, specs, results.

Every strategy here produces values a correct publisher must accept: tree names are valid
file names and key segments (no slash, backslash, control characters, ``.`` or ``..``, no two
siblings equal after Unicode normalisation), ids are valid placeholder values, instants are
aware UTC datetimes and key templates use only the known placeholders. :func:`build_tree`
writes a generated tree to disk and :func:`snapshot` reads a directory back for comparison::

    @given(tree=trees())
    def test_round_trip(tree, tmp_path_factory): ...
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Union, cast

from hypothesis import strategies as st

from .._checksums import sha256_b64
from .._keys import PLACEHOLDERS
from .._models import PublishContext, PublishedResult

__all__ = [
    "Tree",
    "build_tree",
    "checksums",
    "contents",
    "contexts",
    "ids",
    "instants",
    "key_templates",
    "names",
    "published_results",
    "snapshot",
    "specs",
    "tree_files",
    "trees",
]

Tree = dict[str, Union[bytes, "Tree"]]
"""A result tree: file names map to contents (bytes) or to subtrees (directories)."""

_NAME_CHARACTERS = st.characters(
    categories=["L", "N", "Zs", "Pd", "Po"], exclude_characters="/\\\x00"
)


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def names(*, max_size: int = 16) -> st.SearchStrategy[str]:
    """File and directory names: letters, digits, spaces and punctuation, any script.

    Never ``.`` or ``..``, never with leading or trailing white space, under 200 UTF-8
    bytes, and free of slashes, backslashes and control characters.
    """
    return st.text(alphabet=_NAME_CHARACTERS, min_size=1, max_size=max_size).filter(
        lambda n: n not in (".", "..") and n.strip() == n and len(n.encode()) < 200
    )


def contents(*, max_size: int = 300) -> st.SearchStrategy[bytes]:
    """File contents: empty, arbitrary bytes, or UTF-8 text, up to ``max_size`` bytes."""
    return st.one_of(
        st.just(b""),
        st.binary(max_size=max_size),
        st.text(max_size=max_size // 2).map(str.encode),
    )


def _directory(children: st.SearchStrategy[Any], max_size: int) -> st.SearchStrategy[Any]:
    """Dictionaries of ``children`` whose names are distinct after NFC normalisation."""
    return st.lists(
        st.tuples(names(), children), max_size=max_size, unique_by=lambda c: _nfc(c[0])
    ).map(dict)


def trees(
    *, max_leaves: int = 12, max_children: int = 4, min_files: int = 0
) -> st.SearchStrategy[Tree]:
    """Result trees: nested directories (empty ones too) of files with :func:`contents`.

    ``min_files`` adds that many non-empty files at the top level, so a test can pick one
    file that certainly exists and is read.
    """
    base = cast(
        st.SearchStrategy[Tree],
        st.recursive(
            contents(), lambda children: _directory(children, max_children), max_leaves=max_leaves
        ).filter(lambda t: isinstance(t, dict)),
    )
    if min_files <= 0:
        return base
    extra = st.lists(
        st.tuples(names(), st.binary(min_size=1, max_size=300)),
        min_size=min_files,
        max_size=min_files,
        unique_by=lambda c: _nfc(c[0]),
    )

    def merge(tree: Tree, files: list[tuple[str, bytes]]) -> Tree:
        added = {_nfc(name) for name, _ in files}
        kept: Tree = {k: v for k, v in tree.items() if _nfc(k) not in added}
        return {**kept, **dict(files)}

    return st.builds(merge, base, extra)


def build_tree(tree: Tree, path: Path) -> Path:
    """Write ``tree`` under ``path`` (created, with its parents) and return ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    for name, node in tree.items():
        if isinstance(node, dict):
            build_tree(node, path / name)
        else:
            (path / name).write_bytes(node)
    return path


def snapshot(path: Path) -> dict[str, bytes | None]:
    """Every entry below ``path`` by relative path: file contents, or None for a directory."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        rel = os.path.relpath(dirpath, path)
        for d in dirnames:
            out[os.path.normpath(os.path.join(rel, d))] = None
        for f in filenames:
            out[os.path.normpath(os.path.join(rel, f))] = Path(dirpath, f).read_bytes()
    return out


def tree_files(tree: Tree, prefix: str = "") -> dict[str, bytes]:
    """Every file of ``tree`` by its relative POSIX path (directories are not listed)."""
    out: dict[str, bytes] = {}
    for name, node in tree.items():
        if isinstance(node, dict):
            out.update(tree_files(node, f"{prefix}{name}/"))
        else:
            out[prefix + name] = node
    return out


_ID_CHARACTERS = st.characters(categories=["L", "N", "Pc", "Pd"], exclude_characters="/\\")


def ids(*, max_size: int = 24) -> st.SearchStrategy[str]:
    """Job, execution or node ids that are valid placeholder values in any key.

    Letters, digits, ``-`` and ``_`` of any script, optionally with inner dots; never
    ``.``/``..``, never with slashes, backslashes or control characters.
    """
    word = st.text(alphabet=_ID_CHARACTERS, min_size=1, max_size=max_size)
    return st.lists(word, min_size=1, max_size=2).map(".".join)


def instants() -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes between 2000 and 2099, whole seconds or not."""
    return st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2099, 12, 31, 23, 59, 59),
        timezones=st.just(timezone.utc),
    )


def contexts(*, complete: bool = True) -> st.SearchStrategy[PublishContext]:
    """Publish contexts with valid ids and one aware UTC ``now``.

    With ``complete`` every id is set, so any key template can be rendered; otherwise
    each id may be missing (None).
    """
    value = ids() if complete else st.none() | ids()
    return st.builds(
        PublishContext, job_id=value, execution_id=value, node_id=value, now=instants()
    )


_LITERAL = st.text(
    alphabet=st.sampled_from(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_éü漢"
    ),
    min_size=1,
    max_size=10,
)
_PART = st.one_of(_LITERAL, st.sampled_from(PLACEHOLDERS).map(lambda p: "{" + p + "}"))


def key_templates(
    *, max_segments: int = 3, directory: bool | None = None
) -> st.SearchStrategy[str]:
    """Key templates: ``/``-separated segments of literals and placeholders.

    Every segment is non-empty and can never render as ``.`` or ``..``. A template ends
    in ``/`` only when ``directory`` is None or True (with ``directory`` True it always
    does); such a template is invalid with Compress, so pass ``directory=False`` for
    templates that must work in both modes.
    """
    segment = st.lists(_PART, min_size=1, max_size=3).map("".join)
    body = st.lists(segment, min_size=1, max_size=max_segments).map("/".join)
    if directory is None:
        return st.tuples(body, st.booleans()).map(lambda t: t[0] + "/" * t[1])
    return body.map(lambda b: b + "/") if directory else body


def specs(
    publisher_type: str,
    params: Mapping[str, st.SearchStrategy[Any]] | None = None,
    *,
    keys: st.SearchStrategy[str] | None = None,
    compress: st.SearchStrategy[bool] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """Spec documents of Type ``publisher_type``, flat or nested, names in any case.

    Every document has ``Key`` (from ``keys``, default :func:`key_templates` without a
    trailing ``/``) and ``Compress`` (default: either) plus one value of each strategy
    in ``params`` (CapitalCase name -> strategy), for the publisher's other parameters.
    """
    strategies: dict[str, st.SearchStrategy[Any]] = {
        "Key": keys if keys is not None else key_templates(directory=False),
        "Compress": compress if compress is not None else st.booleans(),
        **(params or {}),
    }
    spelled = {name: st.sampled_from([name, name.lower(), name.upper()]) for name in strategies}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        values = {draw(spelled[name]): draw(strategy) for name, strategy in strategies.items()}
        if draw(st.booleans()):
            return {"Type": publisher_type, **values}
        return {"Type": publisher_type, "Params": values}

    return build()


def checksums() -> st.SearchStrategy[str]:
    """``ChecksumSHA256`` values: base64 of 32 bytes, as S3 and the manifests write them."""
    return st.binary(min_size=32, max_size=32).map(sha256_b64)


def published_results(
    publisher_type: str, params: Mapping[str, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[PublishedResult]:
    """Published results of Type ``publisher_type`` with canonical CapitalCase params.

    By default the params are ``Key`` (a rendered archive key), ``Size`` and
    ``ChecksumSHA256``; ``params`` (CapitalCase name -> strategy) adds or replaces fields.
    """
    fields: dict[str, st.SearchStrategy[Any]] = {
        "Key": key_templates(directory=False)
        .map(lambda k: k.replace("{", "").replace("}", ""))
        .map(lambda k: k + ".tar.gz"),
        "Size": st.integers(min_value=0, max_value=2**40),
        "ChecksumSHA256": checksums(),
        **(params or {}),
    }
    return st.fixed_dictionaries(fields).map(
        lambda p: PublishedResult(type=publisher_type, params=p)
    )
