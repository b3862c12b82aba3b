"""Discovery of third-party publishers installed as real distributions with entry points."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from publisher_core import Registry
from tests.conftest import PLUGINS, _pip_install_target


@pytest.fixture(scope="module")
def third_party_noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake distribution noisy-publisher (Type ``noisy``), installed in its own folder."""
    target = tmp_path_factory.mktemp("noisy")
    _pip_install_target(target, PLUGINS / "noisy_publisher")
    return target


def with_path(folder: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}


def test_a_working_third_party_publisher_is_listed_and_usable(third_party, cli, tmp_path):
    """An installed distribution's entry point adds Type 'memo' with its name and version."""
    env = {**with_path(third_party["working"]), "PUBLISHER_MEMO_DIR": str(tmp_path / "memo")}
    listed = cli("list", "--json", env=env)
    assert listed.code == 0, listed.err
    rows = {row["type"]: row for row in json.loads(listed.out)}
    assert rows["memo"] == {
        "type": "memo",
        "distribution": "memo-publisher",
        "version": "1.2.3",
        "status": "ok",
        "error": None,
    }
    source = tmp_path / "src"
    source.mkdir()
    (source / "f.txt").write_text("third party")
    published = cli("publish", "memo://run-{jobID}", str(source), "--job-id", "j", env=env)
    assert published.code == 0, published.err
    (tmp_path / "result.yaml").write_text(published.out)
    got = cli("get", "result.yaml", "-o", "back", env=env)
    assert got.code == 0, got.err
    assert (tmp_path / "back" / "f.txt").read_text() == "third party"


def test_broken_plugins_are_isolated_and_explained(third_party, cli):
    """Import failures and invalid hooks show as failed; local and s3 keep working."""
    env = with_path(third_party["broken"])
    listed = cli("list", "--json", env=env)
    assert listed.code == 0, listed.err
    rows = {row["type"]: row for row in json.loads(listed.out)}
    assert rows["broken"]["status"] == "failed"
    assert "No module named 'publisher_core_missing_dependency'" in rows["broken"]["error"]
    assert rows["badhooks"]["status"] == "failed"
    assert "bucket_name" in rows["badhooks"]["error"]
    assert rows["local"]["status"] == rows["s3"]["status"] == "ok"
    used = cli("validate", "broken://x", env=env)
    assert used.code == 2
    assert "publisher type 'broken' cannot be used: import failed" in used.err
    assert cli("validate", "local://fine", env=env).code == 0


def test_a_duplicate_type_names_both_distributions(third_party, cli):
    """Two distributions claiming 'local' is an error naming both, with versions."""
    env = with_path(third_party["duplicate"])
    listed = cli("list", env=env)
    assert "duplicate-publisher 9.9.9" in listed.out
    assert "publisher-local 0.1.0" in listed.out
    used = cli("validate", "local://x", env=env)
    assert used.code == 2
    assert "provided by more than one distribution" in used.err
    assert "duplicate-publisher 9.9.9 and publisher-local 0.1.0" in used.err or (
        "publisher-local 0.1.0 and duplicate-publisher 9.9.9" in used.err
    )


def test_registry_from_path_sees_only_that_folder(third_party, monkeypatch):
    """Registry.from_path reads the distributions installed in given folders."""
    monkeypatch.syspath_prepend(str(third_party["working"]))
    registry = Registry.from_path([str(third_party["working"])])
    assert registry.types() == ["memo"]
    assert registry.get("memo").info.summary == "archives in a memo folder"


def test_a_plugin_printing_cannot_corrupt_the_clis_stdout(third_party_noisy, cli, tmp_path):
    """Plugin output at import and in hooks, by print or by fd 1, goes to stderr."""
    env = with_path(third_party_noisy)
    listed = cli("list", "--json", env=env)
    assert listed.code == 0, listed.err
    rows = {row["type"]: row for row in json.loads(listed.out)}
    assert rows["noisy"]["status"] == "ok"
    assert "noisy: print at import" in listed.err
    assert "noisy: fd 1 at import" in listed.err
    assert "noisy: print in publisher_info" in listed.err
    (tmp_path / "src").mkdir()
    published = cli("publish", "noisy://k", "src", env=env)
    assert published.code == 0, published.err
    assert yaml.safe_load(published.out) == {"Type": "noisy", "Params": {"Key": "k"}}
    for line in ("print in validate_spec", "print in publish of src", "fd 1 in publish"):
        assert f"noisy: {line}" in published.err
    assert "warning: noisy: could not remove some/thing\n" in published.err
    debug = cli("--debug", "publish", "noisy://k", "src", env=env)
    assert yaml.safe_load(debug.out) == {"Type": "noisy", "Params": {"Key": "k"}}
    assert "WARNING noisy_publisher: noisy: could not remove\n" in debug.err
    assert "warning: " not in debug.err
