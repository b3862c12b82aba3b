"""The plugin-author contract (publisher_core.testing) run against the local publisher."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher_core import (
    render_key,
    result_from_document,
    result_to_document,
    structure_params,
    validate,
)
from publisher_core.testing import PublisherContract, strategies
from publisher_local import LocalResult


class TestLocalPublisherContract(PublisherContract):
    publisher_type = "local"

    @pytest.fixture(autouse=True)
    def _store(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = tmp_path / "contract-store"
        monkeypatch.setenv("PUBLISHER_LOCAL_ROOT", str(self.root))

    def spec(self, key: str, *, compress: bool) -> dict[str, Any]:
        return {"Type": "local", "Key": key, "Compress": compress}

    def stored(self) -> set[str]:
        if not self.root.exists():
            return set()
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*")}


@settings(max_examples=25)
@given(spec=strategies.specs("local"), context=strategies.contexts())
def test_generated_specs_validate_and_render(spec, context):
    """specs() gives valid documents of either shape; contexts() renders any template."""
    validated = validate(spec, context=context)
    assert validated.type == "local"
    key = render_key(validated.params.key, context, compress=validated.params.compress)
    assert key.endswith(".tar.gz" if validated.params.compress else "/")


@settings(max_examples=25)
@given(strategies.contexts(complete=False))
def test_generated_contexts_are_utc(context):
    """Every generated instant is aware and in UTC; missing ids are None."""
    assert context.now.utcoffset() == timedelta(0)
    assert all(v is None or v for v in (context.job_id, context.execution_id, context.node_id))


@settings(max_examples=25)
@given(strategies.published_results("local", {"Path": st.just("/results/x.tar.gz")}))
def test_generated_results_survive_their_documents(result):
    """published_results() round-trips through the canonical document and its params class."""
    assert result_from_document(result_to_document(result)) == result
    params = structure_params(result.params, LocalResult, what="result")
    assert params.key == result.params["Key"]
