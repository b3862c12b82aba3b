"""The contract every publisher keeps, as a pytest test class to subclass.

Subclass :class:`PublisherContract` in a test module, name the subclass ``Test...`` so
pytest collects it, and say how to build a spec and how to list the store::

    class TestMyPublisher(PublisherContract):
        publisher_type = "mine"

        @pytest.fixture(autouse=True)
        def _store(self, tmp_path, monkeypatch):
            monkeypatch.setenv("PUBLISHER_MINE_ROOT", str(tmp_path / "store"))
            self.root = tmp_path / "store"

        def spec(self, key, *, compress):
            return {"Type": "mine", "Key": key, "Compress": compress}

        def stored(self):
            return {str(p) for p in self.root.rglob("*")} if self.root.exists() else set()

The publisher is used as a host would use it: through its entry point, by
:func:`publisher_core.validate`, :func:`~publisher_core.publish`,
:func:`~publisher_core.describe` and :func:`~publisher_core.get`. It must read the
result's files with :func:`publisher_core.open_entry` (which opens them with
:func:`os.open`): the failure test makes :func:`os.open` fail for one file of the tree.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from .._api import describe, get, publish, validate
from .._documents import spec_from_document
from .._errors import PublishError, SpecError
from .._keys import render_key
from .._models import PublishContext, PublishedResult, ValidatedSpec
from .._registry import ENTRY_POINT_GROUP, Registry
from .strategies import Tree, build_tree, contexts, key_templates, snapshot, tree_files, trees

__all__ = ["PublisherContract"]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>\\]+")

_SMALL_TREE: Tree = {
    "a file.txt": b"hello\n",
    "nested": {"data.bin": bytes(range(256)), "empty dir": {}},
    "empty.txt": b"",
}

_BAD_SPECS: dict[str, tuple[str | None, dict[str, Any], tuple[str, ...]]] = {
    # case: (key given to spec(), parameters replaced or added, fragments the error holds)
    "unknown-parameter": ("bad", {"NoSuchParameter": 1}, ("unknown parameter", "NoSuchParameter")),
    "empty-key": ("", {}, ("empty", "$.Params.Key")),
    "dot-dot-segment": ("a/../b", {}, ("'..'", "$.Params.Key")),
    "compress-not-a-bool": ("bad", {"Compress": "sometimes"}, ("$.Params.Compress",)),
    "key-not-a-string": (None, {"Key": ["a", "list"]}, ("$.Params.Key",)),
}


def _replace_params(doc: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as a nested document with ``changes`` replacing parameters of any case."""
    spec = spec_from_document(doc)
    lowered = {name.lower() for name in changes}
    params = {k: v for k, v in spec.params.items() if k.lower() not in lowered}
    return {"Type": spec.type, "Params": {**params, **changes}}


class PublisherContract:
    """Tests every publisher must pass; subclass it as ``class TestMine(PublisherContract)``.

    Provide :attr:`publisher_type`, :meth:`spec` and :meth:`stored`, and set up the store
    in an autouse fixture of your own (environment variables, temporary directories, a
    server); it runs before every test. Optionally set :attr:`settings` (operator
    settings passed to every call), :attr:`max_examples`, or override :meth:`registry`,
    :meth:`result_key` and :meth:`logger_names`.

    The tests:

    - ``test_type_is_registered_through_its_entry_point``: the Type comes from an entry
      point of an installed distribution, is listed as ``ok`` and implements ``publish``
      and ``describe_result``.
    - ``test_good_specs_validate``: specs of generated key templates validate in both
      modes, with and without a generated publish context.
    - ``test_bad_specs_are_refused_naming_the_problem``: an unknown parameter, an empty
      key, a key with a ``..`` segment, and values of the wrong type raise
      :class:`~publisher_core.SpecError` naming the parameter.
    - ``test_generated_trees_round_trip``: in both modes, publish -> describe -> get
      rebuilds generated trees byte for byte (empty files and directories included),
      every item verified by SHA-256.
    - ``test_result_key_follows_the_template``: the result's key is what
      :func:`~publisher_core.render_key` gives for the template and the context.
    - ``test_a_failure_midway_leaves_nothing``: when opening one file of the tree fails,
      the publish raises :class:`~publisher_core.PublishError` naming that file and
      :meth:`stored` is exactly what it was before.
    - ``test_no_secret_in_reprs_or_debug_logs``: the str and repr of the result, its
      description, items and get report, and every DEBUG record of ``publisher_core``
      and the plugin, hold no URL with a query string and none of the items' queries.
    """

    publisher_type: ClassVar[str]
    """The Type under test: the name of the plugin's entry point."""

    settings: Any = None
    """Operator settings for every call (a mapping of names, or the settings instance)."""

    max_examples: ClassVar[int] = 5
    """Hypothesis examples per generated test (validation tests use four times as many)."""

    # What the author provides.

    def spec(self, key: str, *, compress: bool) -> dict[str, Any]:
        """A valid spec document for ``key`` (a key template) in the given mode."""
        raise NotImplementedError(f"{type(self).__name__} must define spec(key, *, compress)")

    def stored(self) -> set[str]:
        """Names of everything in the store now (objects, files, rows), for comparisons."""
        raise NotImplementedError(f"{type(self).__name__} must define stored()")

    def registry(self) -> Registry:
        """The registry the tests use: a fresh one from the installed entry points."""
        return Registry()

    def result_key(self, result: PublishedResult) -> str:
        """The final key recorded in ``result``: its ``Key`` parameter by default."""
        for name, value in result.params.items():
            if name.lower() == "key":
                return str(value)
        raise AssertionError(f"the published result has no Key parameter: {result!r}")

    def logger_names(self) -> list[str]:
        """Loggers opened at DEBUG by the secrets test, as ``publisher --debug`` does."""
        modules = {
            ep.value.split(".")[0].split(":")[0]
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
            if ep.name.lower() == self.publisher_type.lower()
        }
        return ["publisher_core", *sorted(modules)]

    # Helpers.

    def _settings(self, *, examples: int | None = None) -> hypothesis.settings:
        return hypothesis.settings(
            max_examples=examples or self.max_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )

    @staticmethod
    def _unique() -> str:
        return f"contract-{uuid.uuid4().hex[:12]}/"

    def _publish(
        self,
        registry: Registry,
        key: str,
        source: Path,
        *,
        compress: bool,
        context: PublishContext | None = None,
    ) -> PublishedResult:
        return publish(
            self.spec(key, compress=compress),
            source,
            context=context,
            settings=self.settings,
            registry=registry,
        )

    # The contract.

    def test_type_is_registered_through_its_entry_point(self) -> None:
        """The Type comes from an installed distribution's entry point and is ``ok``."""
        registry = self.registry()
        rows = [r for r in registry.statuses() if r.type == self.publisher_type.lower()]
        assert len(rows) == 1, f"expected one row for {self.publisher_type!r}, got {rows}"
        row = rows[0]
        assert row.status == "ok", row.error
        assert row.distribution is not None, "the Type must come from an installed entry point"
        publisher = registry.get(self.publisher_type)
        assert publisher.implements("publish")
        assert publisher.implements("describe_result")

    def test_good_specs_validate(self) -> None:
        """Specs of generated templates validate, with and without a context."""
        registry = self.registry()

        @self._settings(examples=4 * self.max_examples)
        @given(template=key_templates(directory=False), context=contexts(), compress=st.booleans())
        def check(template: str, context: PublishContext, compress: bool) -> None:
            doc = self.spec(template, compress=compress)
            for ctx in (None, context):
                validated = validate(doc, context=ctx, settings=self.settings, registry=registry)
                assert isinstance(validated, ValidatedSpec)
                assert validated.type == self.publisher_type.lower()

        check()

    @pytest.mark.parametrize("case", list(_BAD_SPECS))
    def test_bad_specs_are_refused_naming_the_problem(self, case: str) -> None:
        """Unknown parameters, bad keys and values of the wrong type are SpecErrors."""
        key, changes, fragments = _BAD_SPECS[case]
        doc = _replace_params(self.spec("fine" if key is None else key, compress=False), changes)
        with pytest.raises(SpecError) as caught:
            validate(doc, settings=self.settings, registry=self.registry())
        for fragment in fragments:
            assert fragment in str(caught.value), f"{fragment!r} not in: {caught.value}"

    @pytest.mark.parametrize("compress", [False, True], ids=["directory", "archive"])
    def test_generated_trees_round_trip(self, compress: bool, tmp_path: Path) -> None:
        """Publish, describe and get rebuild generated trees byte for byte, verified."""
        registry = self.registry()

        @self._settings()
        @given(tree=trees())
        def check(tree: Tree) -> None:
            with tempfile.TemporaryDirectory(dir=tmp_path) as name:
                scratch = Path(name)
                source = build_tree(tree, scratch / "source")
                result = self._publish(registry, self._unique() + "tree", source, compress=compress)
                assert result.type == self.publisher_type.lower()
                description = describe(result, settings=self.settings, registry=registry)
                report = get(description, scratch / "out")
                assert snapshot(scratch / "out") == snapshot(source)
                assert report.unverified == 0, "every item needs its size and SHA-256"

        check()

    @pytest.mark.parametrize("compress", [False, True], ids=["directory", "archive"])
    def test_result_key_follows_the_template(self, compress: bool, tmp_path: Path) -> None:
        """The result's key is render_key of the template in the publish context."""
        registry = self.registry()
        source = build_tree({"f.txt": b"key naming\n"}, tmp_path / "source")

        @self._settings()
        @given(
            template=key_templates(directory=None if not compress else False), context=contexts()
        )
        def check(template: str, context: PublishContext) -> None:
            full = self._unique() + template
            result = self._publish(registry, full, source, compress=compress, context=context)
            assert self.result_key(result) == render_key(full, context, compress=compress)

        check()

    @pytest.mark.parametrize("compress", [False, True], ids=["directory", "archive"])
    def test_a_failure_midway_leaves_nothing(self, compress: bool, tmp_path: Path) -> None:
        """Opening one file fails: PublishError naming it, and the store is unchanged."""
        registry = self.registry()

        @self._settings()
        @given(tree=trees(min_files=2, max_leaves=8), data=st.data())
        def check(tree: Tree, data: st.DataObject) -> None:
            failing = data.draw(st.sampled_from(sorted(tree_files(tree))), label="failing file")
            with tempfile.TemporaryDirectory(dir=tmp_path) as name:
                scratch = Path(name)
                source = build_tree(tree, scratch / "source")
                before = self.stored()
                opened: list[str] = []
                with pytest.MonkeyPatch.context() as patch:
                    patch.setattr(os, "open", _failing_open(source / failing, opened))
                    with pytest.raises(PublishError) as caught:
                        self._publish(registry, self._unique() + "fails", source, compress=compress)
                assert opened, (
                    f"{failing} was never opened with os.open; read files with "
                    "publisher_core.open_entry"
                )
                assert failing in str(caught.value), f"{failing!r} not named in: {caught.value}"
                assert self.stored() == before

        check()

    @pytest.mark.parametrize("compress", [False, True], ids=["directory", "archive"])
    def test_no_secret_in_reprs_or_debug_logs(
        self, compress: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Reprs and DEBUG records hold no URL query string (signatures, tokens)."""
        for name in self.logger_names():
            caplog.set_level(logging.DEBUG, logger=name)
        registry = self.registry()
        source = build_tree(_SMALL_TREE, tmp_path / "source")
        result = self._publish(registry, self._unique() + "secrets", source, compress=compress)
        description = describe(result, settings=self.settings, registry=registry)
        report = get(description, tmp_path / "out")
        things: list[object] = [result, description, *description.items, report]
        texts = [text for thing in things for text in (str(thing), repr(thing))]
        texts += [record.getMessage() for record in caplog.records]
        assert any(r.levelno == logging.DEBUG for r in caplog.records), "no DEBUG record seen"
        queries = [q for q in (urlsplit(i.url).query for i in description.items) if q]
        for text in texts:
            for url in _URL.findall(text):
                assert not urlsplit(url).query, f"a URL with its query string in: {text[:300]}"
            for query in queries:
                assert query not in text, f"a URL's query string in: {text[:300]}"


def _failing_open(target: Path, opened: list[str]) -> Callable[..., int]:
    """:func:`os.open` failing with EIO for ``target`` (recorded in ``opened``) only."""
    real_open = os.open
    real_target = os.path.realpath(target)

    def failing_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if dir_fd is None and os.path.realpath(os.fsdecode(path)) == real_target:
            opened.append(real_target)
            raise OSError(errno.EIO, "input/output error injected by the contract", str(target))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    return failing_open
