"""Operator settings from PUBLISHER_<TYPE>_<NAME> and from the host's call."""

from __future__ import annotations

from pathlib import Path

import pytest

from publisher_core import SpecError, load_settings
from publisher_local import LocalSettings


def test_environment_variables_fill_settings(tmp_path):
    """PUBLISHER_LOCAL_ROOT and PUBLISHER_LOCAL_COMPRESSION_LEVEL are typed."""
    env = {"PUBLISHER_LOCAL_ROOT": str(tmp_path), "PUBLISHER_LOCAL_COMPRESSION_LEVEL": "1"}
    settings = load_settings("local", LocalSettings, environ=env)
    assert settings == LocalSettings(root=tmp_path, compression_level=1)


def test_host_call_wins_over_the_environment(tmp_path):
    """A mapping from the host overrides the environment, names case-insensitive."""
    env = {"PUBLISHER_LOCAL_ROOT": "/elsewhere"}
    settings = load_settings("local", LocalSettings, {"Root": str(tmp_path)}, environ=env)
    assert settings is not None
    assert settings.root == tmp_path


def test_an_instance_is_used_as_is(tmp_path):
    """A settings instance from the host is taken whole."""
    given = LocalSettings(root=tmp_path)
    assert load_settings("local", LocalSettings, given, environ={}) is given


def test_defaults_apply_without_variables():
    """With nothing set, the documented default root is used."""
    settings = load_settings("local", LocalSettings, environ={})
    assert settings is not None
    assert settings.root.parts[-2:] == ("publisher", "results")


def test_unknown_variable_is_an_error_with_a_did_you_mean():
    """A typo'd variable never silently falls back to a default."""
    with pytest.raises(SpecError) as info:
        load_settings("local", LocalSettings, environ={"PUBLISHER_LOCAL_ROTO": "/x"})
    assert "unknown setting PUBLISHER_LOCAL_ROTO (did you mean 'PUBLISHER_LOCAL_ROOT'?)" in str(
        info.value
    )


def test_bad_value_names_the_variable():
    """An ill-typed value is reported at the variable that set it."""
    with pytest.raises(
        SpecError, match="expected an integer, got 'fast' @ PUBLISHER_LOCAL_COMPRESSION_LEVEL"
    ):
        load_settings("local", LocalSettings, environ={"PUBLISHER_LOCAL_COMPRESSION_LEVEL": "fast"})


def test_out_of_range_value_is_an_error():
    """Validators on the settings class apply."""
    with pytest.raises(SpecError, match="compression_level"):
        load_settings("local", LocalSettings, {"compression_level": 12}, environ={})


def test_every_out_of_range_value_is_reported_at_its_variable():
    """Range problems come all at once, each at the variable that set it (issue 12)."""
    from publisher_s3 import S3Settings

    env = {"PUBLISHER_S3_CONCURRENCY": "0", "PUBLISHER_S3_PART_SIZE": "1"}
    with pytest.raises(SpecError) as info:
        load_settings("s3", S3Settings, environ=env)
    assert info.value.problems == (
        "concurrency must be at least 1, got 0 @ PUBLISHER_S3_CONCURRENCY",
        "'part_size' must be >= 5242880: 1 @ PUBLISHER_S3_PART_SIZE",
    )
    with pytest.raises(SpecError, match=r"@ settings\[local\]\.CompressionLevel"):
        load_settings("local", LocalSettings, {"compression_level": 12}, environ={})


def test_publisher_without_settings_refuses_overrides():
    """Settings for a publisher that has none are a mistake."""
    assert load_settings("s3", None, environ={}) is None
    with pytest.raises(SpecError, match="has no operator settings"):
        load_settings("s3", None, {"x": 1}, environ={})


def test_home_is_expanded(monkeypatch, tmp_path):
    """'~' in a root path means the home directory."""
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = load_settings("local", LocalSettings, environ={"PUBLISHER_LOCAL_ROOT": "~/r"})
    assert settings is not None
    assert settings.root == Path(tmp_path) / "r"
