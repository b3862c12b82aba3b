"""The converter: case-insensitive names, strict values, did-you-mean, all problems at once."""

from __future__ import annotations

from datetime import timedelta, timezone

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher_core import (
    DownloadItem,
    Manifest,
    ManifestFile,
    SpecError,
    capital_name,
    structure_params,
    unstructure_params,
)
from publisher_core.testing.strategies import checksums
from publisher_local import LocalParams, LocalResult
from publisher_s3 import S3Params


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("version_id", "VersionID"),
        ("checksum_sha256", "ChecksumSHA256"),
        ("key", "Key"),
        ("manifest_checksum_sha256", "ManifestChecksumSHA256"),
        ("url", "URL"),
    ],
)
def test_capital_names(field, name):
    """Field names become Bacalhau's CapitalCase parameter names."""
    assert capital_name(field) == name


@pytest.mark.parametrize("name", ["Key", "key", "KEY", "k_e_y"])
def test_names_match_case_insensitively(name):
    """``key`` is ``Key``."""
    assert structure_params({name: "a"}, LocalParams) == LocalParams(key="a")


@pytest.mark.parametrize(
    ("raw", "value"),
    [(True, True), ("false", False), ("TRUE", True), ("False", False), (False, False)],
)
def test_bools_are_true_or_false_only(raw, value):
    """Bools accept true/false in any case, as bool or string."""
    assert structure_params({"Key": "a", "Compress": raw}, LocalParams).compress is value


@pytest.mark.parametrize("raw", ["yes", "no", "1", 1, 0, "", "on"])
def test_anything_else_is_not_a_bool(raw):
    """'yes', 1 and friends are errors, never silently truthy."""
    with pytest.raises(SpecError, match=r"expected true or false, got .* @ \$\.Params\.Compress"):
        structure_params({"Key": "a", "Compress": raw}, LocalParams)


def test_unknown_parameter_gets_a_did_you_mean_and_the_known_list():
    """A typo is named, with the closest known name and the list of all."""
    with pytest.raises(SpecError) as info:
        structure_params({"Bucket": "b", "Kye": "k"}, S3Params)
    message = str(info.value)
    assert "unknown parameter 'Kye' @ $.Params.Kye (did you mean 'Key'?)" in message
    assert "known: Bucket, Key, Endpoint, Region, Compress" in message


def test_every_problem_is_reported_at_once():
    """Unknown, missing and ill-typed parameters come back in one error."""
    with pytest.raises(SpecError) as info:
        structure_params({"Compress": "maybe", "Bukcet": "b"}, S3Params)
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert "4 problems" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_parameter_given_twice_in_two_spellings_is_an_error():
    """``key`` and ``Key`` together are ambiguous."""
    with pytest.raises(SpecError, match="given twice"):
        structure_params({"key": "a", "Key": "b"}, LocalParams)


def test_wrong_value_types_name_the_path():
    """A list where a string belongs is reported at its path."""
    with pytest.raises(SpecError, match=r"expected a string.* @ \$\.Params\.Key"):
        structure_params({"Key": ["a"]}, LocalParams)


def test_integers_are_strict():
    """'12' is 12; 1.5 and True are not integers."""
    assert structure_params({"Path": "p", "Key": "k", "Size": "12"}, LocalResult).size == 12
    for bad in (1.5, True, "twelve"):
        with pytest.raises(SpecError, match="expected an integer"):
            structure_params({"Path": "p", "Key": "k", "Size": bad}, LocalResult)


def test_not_a_mapping():
    """Params must be a mapping."""
    with pytest.raises(SpecError, match="expected a mapping of parameters"):
        structure_params(["Key", "a"], LocalParams)


# Fixed offsets only: aware datetimes in an ambiguous DST hour compare unequal across zones.
ZONES = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)


@given(st.builds(LocalParams, key=text, compress=st.booleans()))
def test_local_params_round_trip(params):
    """structure(unstructure(x)) == x for spec params."""
    assert structure_params(unstructure_params(params), LocalParams) == params


@given(
    st.builds(
        S3Params,
        bucket=text,
        key=text,
        endpoint=st.none() | text,
        region=st.none() | text,
        compress=st.booleans(),
    )
)
def test_s3_params_round_trip(params):
    """structure(unstructure(x)) == x for the S3 params."""
    assert structure_params(unstructure_params(params), S3Params) == params


@given(
    st.builds(
        LocalResult,
        path=text,
        key=text,
        size=st.integers(0, 2**63),
        checksum_sha256=st.none() | checksums(),
        files=st.none() | st.integers(0, 10**6),
        manifest=st.none() | text,
        manifest_checksum_sha256=st.none() | checksums(),
    )
)
def test_result_params_round_trip(result):
    """structure(unstructure(x)) == x for result records."""
    assert structure_params(unstructure_params(result), LocalResult) == result


@given(
    st.builds(
        DownloadItem,
        path=text,
        url=text,
        size=st.none() | st.integers(0, 2**40),
        checksum_sha256=st.none() | text,
        archive=st.booleans(),
        expires=st.none() | st.datetimes(timezones=st.sampled_from(ZONES)),
    )
)
def test_download_item_round_trip(item):
    """Download items survive unstructure/structure, expiry included."""
    back = structure_params(unstructure_params(item), DownloadItem)
    assert attrs.evolve(back, expires=None) == attrs.evolve(item, expires=None)
    assert back.expires == item.expires


@given(
    st.lists(
        st.builds(ManifestFile, path=text, size=st.integers(0, 2**40), checksum_sha256=text),
        max_size=5,
    ),
    st.lists(text, max_size=3),
)
def test_manifest_round_trip(files, directories):
    """A manifest parses back from its bytes."""
    manifest = Manifest.build(files, directories)
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


@pytest.mark.parametrize(
    ("data", "cls", "where"),
    [
        ({"Key": "\ud800"}, LocalParams, "$.Params.Key"),
        ({"Path": "p", "Key": "k\udfff", "Size": 1}, LocalResult, "$.Params.Key"),
        ({"Path": "a/\udc80", "URL": "https://h/x"}, DownloadItem, "$.Params.Path"),
        ({"Path": "a", "URL": "https://h/\ud800"}, DownloadItem, "$.Params.URL"),
    ],
)
def test_text_must_be_valid_unicode(data, cls, where):
    """A string holding a lone surrogate (not encodable as UTF-8) is refused at its path."""
    with pytest.raises(SpecError) as info:
        structure_params(data, cls)
    message = str(info.value)
    assert "is not valid Unicode" in message
    assert "cannot be encoded as UTF-8" in message
    assert message.endswith(f"@ {where}")


@given(
    st.lists(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=20).map("".join)
)
def test_text_is_refused_exactly_when_it_does_not_encode_as_utf8(value):
    """Any string is accepted as a parameter iff it encodes as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(SpecError, match="is not valid Unicode"):
            structure_params({"Key": value}, LocalParams)
    else:
        assert structure_params({"Key": value}, LocalParams).key == value


@pytest.mark.parametrize(
    "data",
    [
        {"Key": "k", "Compress": "y" * 1_000_000},
        {"Path": "p", "Key": "k", "Size": "1" * 1_000_000 + "x"},
        {"Key": ["k" * 1_000_000]},
        {"Key": "k", "k" * 1_000_000: 1},
        {"Key": "k", "key\n" + "k" * 100: 1},
        "k" * 1_000_000,
    ],
)
def test_errors_quote_values_briefly(data):
    """However large a value or a parameter name is, the problem quoting it stays short."""
    cls = LocalResult if "Size" in data else LocalParams
    with pytest.raises(SpecError) as info:
        structure_params(data, cls)
    assert len(str(info.value)) < 400
    assert "\n" not in str(info.value)


def test_a_spec_error_lists_twenty_problems_and_counts_the_rest() -> None:
    """Thousands of problems give one bounded line; ``problems`` still holds every one."""
    from publisher_core import SpecError

    error = SpecError([f"unknown parameter 'p{n}' @ $.Params.p{n}" for n in range(5000)])
    assert len(error.problems) == 5000
    assert str(error).startswith("invalid spec (5000 problems): unknown parameter 'p0'")
    assert str(error).endswith("; and 4980 more")
    assert "'p20'" not in str(error)
