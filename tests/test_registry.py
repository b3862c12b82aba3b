"""The registry: dispatch by Type, wrappers, disabled and failing plugins (in process)."""

from __future__ import annotations

import types
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import publisher_local
from publisher_core import (
    ENTRY_POINT_GROUP,
    PluginError,
    PublishContext,
    Registry,
    hookimpl,
    publish,
    validate,
)


def module_plugin(name: str, **functions: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in functions.items():
        setattr(module, key, value)
    return module


def test_installed_publishers_are_found_by_entry_point():
    """``local`` and ``s3`` come from their distributions' entry points."""
    rows = {r.type: r for r in Registry().statuses()}
    assert rows["local"].distribution == "publisher-local"
    assert rows["s3"].distribution == "publisher-s3"
    assert rows["local"].status == rows["s3"].status == "ok"


def test_types_are_read_without_importing_plugins():
    """Listing Types from metadata imports no plugin."""
    registry = Registry()
    assert {"local", "s3"} <= set(registry.types())
    assert registry.loaded_plugins() == []


def test_type_lookup_is_case_insensitive():
    """``Local`` is ``local``."""
    assert Registry().get("LOCAL").type == "local"


def test_unknown_type_lists_the_installed_ones():
    """An unknown Type says what is installed, with a did-you-mean."""
    with pytest.raises(
        PluginError,
        match=r"unknown publisher type 'lcoal' \(did you mean 'local'\?\); installed: local, s3",
    ):
        Registry().get("lcoal")


def test_disabled_types_are_reported_and_refused():
    """A host's disable list turns a Type off, and the error says who disabled it."""
    registry = Registry(disabled=["s3"])
    rows = {r.type: r for r in registry.statuses()}
    assert rows["s3"].status == "disabled"
    with pytest.raises(PluginError, match="disabled by the host"):
        registry.get("s3")


def test_disabled_list_comes_from_the_environment(monkeypatch):
    """The default disable list is read from PUBLISHER_DISABLED."""
    monkeypatch.setenv("PUBLISHER_DISABLED", " S3 , other")
    with pytest.raises(PluginError, match="disabled"):
        Registry().get("s3")


def test_a_plugin_failing_on_import_is_isolated():
    """One broken plugin does not stop the others."""
    broken = EntryPoint(name="broken", value="no_such_sdk_module", group=ENTRY_POINT_GROUP)
    registry = Registry([broken], publishers={"local": publisher_local})
    rows = {r.type: r for r in registry.statuses()}
    assert rows["broken"].status == "failed"
    assert rows["broken"].error == (
        "import failed: ModuleNotFoundError: No module named 'no_such_sdk_module'"
    )
    assert rows["local"].status == "ok"
    with pytest.raises(PluginError, match="cannot be used: import failed"):
        registry.get("broken")


def test_a_plugin_with_invalid_hooks_fails_pluggy_validation():
    """A hookimpl asking for an unknown argument is reported, not called."""

    @hookimpl
    def publish(spec, bucket_name):
        raise AssertionError

    registry = Registry(publishers={"bad": module_plugin("bad", publish=publish)})
    with pytest.raises(PluginError, match="invalid plugin: PluginValidationError"):
        registry.get("bad")


def test_a_plugin_without_publisher_info_is_refused():
    """publisher_info is required."""
    registry = Registry(publishers={"noinfo": module_plugin("noinfo")})
    with pytest.raises(PluginError, match="publisher_info must return a PublisherInfo"):
        registry.get("noinfo")


def test_calls_reach_only_the_plugin_of_the_type_and_wrappers(tmp_path: Path):
    """Dispatch goes to one publisher; a host wrapper sees the call and its result."""
    seen: list[str] = []

    class Tracer:
        @hookimpl(wrapper=True)
        def publish(self, spec):
            seen.append(f"before {spec.type}")
            result = yield
            seen.append(f"after {result.params['Key']}")
            return result

    impostor_calls: list[str] = []

    @hookimpl
    def impostor_publish(spec):
        impostor_calls.append("called")
        raise AssertionError("another publisher's hook must not run")

    impostor = module_plugin("impostor", publisher_info=publisher_local.publisher_info)
    impostor.publish = impostor_publish  # type: ignore[attr-defined]
    impostor_publish.__name__ = "publish"
    registry = Registry(
        publishers={"local": publisher_local, "impostor": impostor}, plugins=[Tracer()]
    )
    registry.get("impostor")  # loaded, so it could interfere if dispatch were wrong
    source = tmp_path / "src"
    source.mkdir()
    (source / "f").write_text("x")
    result = publish(
        {"Type": "local", "Key": "k"},
        source,
        registry=registry,
        settings={"root": str(tmp_path / "root")},
    )
    assert result.params["Key"] == "k/"
    assert seen == ["before local", "after k/"]
    assert impostor_calls == []


def test_validate_uses_the_plugins_checks():
    """validate_spec problems of the plugin are reported with the structural ones."""
    with pytest.raises(Exception, match="unknown placeholder"):
        validate({"Type": "local", "Key": "{nope}"})
    assert (
        validate({"Type": "local", "Key": "{jobID}"}, context=PublishContext(job_id="j")).params.key
        == "{jobID}"
    )


def test_a_host_plugin_cannot_answer_in_place_of_the_publisher(tmp_path: Path):
    """A plain (non-wrapper) host implementation never takes over dispatch."""

    class Hijacker:
        @hookimpl
        def publish(self):
            raise AssertionError("a host's plain hook must not be called")

    registry = Registry(publishers={"local": publisher_local})
    registry.get("local")
    registry.add_plugin(Hijacker())
    source = tmp_path / "src"
    source.mkdir()
    (source / "f").write_text("x")
    result = publish(
        {"Type": "local", "Key": "k"},
        source,
        registry=registry,
        settings={"root": str(tmp_path / "root")},
    )
    assert result.type == "local"


def test_publisher_info_raising_is_isolated():
    """A plugin whose publisher_info raises is failed, not fatal to list."""

    @hookimpl
    def publisher_info():
        raise RuntimeError("boom")

    registry = Registry(
        publishers={
            "local": publisher_local,
            "boom": module_plugin("boom", publisher_info=publisher_info),
        }
    )
    rows = {r.type: r for r in registry.statuses()}
    assert rows["boom"].status == "failed"
    assert rows["boom"].error == "invalid plugin: RuntimeError: boom"
    assert rows["local"].status == "ok"


def test_a_plugin_calling_sys_exit_on_import_is_isolated(tmp_path, monkeypatch):
    """SystemExit from an import is a failed plugin, not the end of the host."""
    (tmp_path / "exiting_plugin.py").write_text("raise SystemExit('plugin needs libfoo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    exits = EntryPoint(name="exits", value="exiting_plugin", group=ENTRY_POINT_GROUP)
    registry = Registry([exits], publishers={"local": publisher_local})
    rows = {r.type: r for r in registry.statuses()}
    assert rows["exits"].error == "import failed: SystemExit: plugin needs libfoo"
    assert rows["local"].status == "ok"


def test_a_missing_hook_is_a_clear_plugin_error(tmp_path: Path):
    """A publisher without a publish hook says so instead of crashing."""
    registry = Registry(
        publishers={
            "infoonly": module_plugin("infoonly", publisher_info=publisher_local.publisher_info)
        }
    )
    with pytest.raises(PluginError, match="publisher 'infoonly' does not implement publish"):
        publish({"Type": "infoonly", "Key": "k"}, tmp_path, registry=registry)


def test_an_unknown_megabyte_type_is_quoted_briefly():
    """A huge unknown Type gets a short error, not the Type itself."""
    with pytest.raises(PluginError, match="unknown publisher type") as info:
        Registry(publishers={"local": publisher_local}).get("t" * 1_000_000)
    assert len(str(info.value)) < 300
