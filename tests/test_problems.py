"""Problems: a place and a message until the edge, one name matcher, one summariser."""

from __future__ import annotations

import types

import pytest
from hypothesis import given
from hypothesis import strategies as st

import publisher_local
from publisher_core import (
    KnownNames,
    PluginError,
    Problem,
    PublishContext,
    Registry,
    SpecError,
    did_you_mean,
    hookimpl,
    load_settings,
    render_key,
    structure_params,
    summarize,
    validate,
)
from publisher_local import LocalParams

# Problem and SpecError


def test_a_problem_renders_as_message_at_path():
    """``str`` of a problem is its message, ``@`` and its path, then its hint."""
    assert str(Problem("$.Params.Key", "key must not be empty")) == (
        "key must not be empty @ $.Params.Key"
    )
    assert str(Problem("$.Params.Kye", "unknown parameter 'Kye'", " (did you mean 'Key'?)")) == (
        "unknown parameter 'Kye' @ $.Params.Kye (did you mean 'Key'?)"
    )
    assert str(Problem("PUBLISHER_S3_CONCURRENCY", "must be at least 1")) == (
        "must be at least 1 @ PUBLISHER_S3_CONCURRENCY"
    )


def test_a_problem_without_a_path_is_its_message():
    """With no path there is no ``@``: the message (and hint) alone."""
    assert str(Problem(None, "empty imperative spec")) == "empty imperative spec"
    assert str(Problem(None, "unknown setting X", "; known: Y")) == "unknown setting X; known: Y"


def test_problems_are_frozen_values():
    """Two problems with the same fields are equal and hash alike; none can be changed."""
    assert Problem("$", "x") == Problem("$", "x")
    assert len({Problem("$", "x"), Problem("$", "x"), Problem(None, "x")}) == 2
    with pytest.raises(AttributeError):
        Problem("$", "x").message = "y"  # type: ignore[misc]


def test_a_problem_is_made_of_text():
    """A path or message that is not a string is refused when the problem is made."""
    with pytest.raises(TypeError, match="message"):
        Problem("$.Params.Key", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path"):
        Problem(["$", "Key"], "bad key")  # type: ignore[arg-type]


def test_a_spec_error_keeps_problems_and_renders_them_at_the_edge():
    """``details`` are the records, ``problems`` and the message their text."""
    error = SpecError([Problem("$.Type", "missing"), "YAML syntax error"], what="result")
    assert error.details == (Problem("$.Type", "missing"), Problem(None, "YAML syntax error"))
    assert error.problems == ("missing @ $.Type", "YAML syntax error")
    assert str(error) == "invalid result (2 problems): missing @ $.Type; YAML syntax error"
    assert str(SpecError(Problem("$", "not a mapping"))) == "invalid spec: not a mapping @ $"


def test_parameter_problems_carry_their_place():
    """structure_params reports each problem as a record: the place apart from the text."""
    with pytest.raises(SpecError) as info:
        structure_params({"Kye": "k", "Compress": "maybe"}, LocalParams)
    by_path = {p.path: p for p in info.value.details}
    assert by_path["$.Params.Kye"].message == "unknown parameter 'Kye'"
    assert by_path["$.Params.Kye"].hint.startswith(" (did you mean 'Key'?); known: Key")
    assert by_path["$.Params.Compress"].message == "expected true or false, got 'maybe'"
    assert by_path["$.Params"].message == "missing required parameter 'Key'"


def test_validator_problems_are_placed_at_the_variable_that_set_them():
    """An out-of-range setting is a Problem at its environment variable (issue 12)."""
    from publisher_s3 import S3Settings

    env = {"PUBLISHER_S3_CONCURRENCY": "0"}
    with pytest.raises(SpecError) as info:
        load_settings("s3", S3Settings, environ=env)
    assert info.value.details == (
        Problem("PUBLISHER_S3_CONCURRENCY", "concurrency must be at least 1, got 0"),
    )


def test_key_problems_are_placed_at_the_key_parameter():
    """render_key reports at the path it is given."""
    with pytest.raises(SpecError) as info:
        render_key("", PublishContext(), compress=False, path="$.Params.Name")
    assert info.value.details == (Problem("$.Params.Name", "key must not be empty"),)


def test_a_publishers_key_problems_reach_the_spec_error_as_records():
    """validate_spec's key problems (key_problems) keep their path apart from the text."""
    with pytest.raises(SpecError) as info:
        validate({"Type": "local", "Key": "r/{jobID}"}, context=PublishContext(job_id=".."))
    message = (
        "value '..' for {jobID} is not allowed in a key: it must not contain '/', '\\' or "
        "control characters, nor be '.' or '..'"
    )
    assert info.value.details == (Problem("$.Params.Key", message),)
    assert str(info.value) == f"invalid spec: {message} @ $.Params.Key"


# The name matcher

known_names = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1),
    min_size=1,
    max_size=8,
    unique_by=lambda name: name.lower(),
)


@st.composite
def variants(draw: st.DrawFn, name: str) -> str:
    """``name`` in any case, with ``_`` and ``-`` anywhere."""
    out = []
    for char in name:
        out.append(draw(st.sampled_from(["", "_", "-", "__", "-_"])))
        out.append(char.upper() if draw(st.booleans()) else char.lower())
    out.append(draw(st.sampled_from(["", "_", "-"])))
    return "".join(out)


@given(data=st.data(), names=known_names)
def test_any_spelling_of_a_known_name_matches_it(data, names):
    """Case, underscores and hyphens aside, a written name matches the known one it spells."""
    name = data.draw(st.sampled_from(names))
    written = data.draw(variants(name))
    assert KnownNames(names).match(written) == name


@given(names=known_names, written=st.text(alphabet="nopqrstuvwxyz_-", min_size=1))
def test_a_name_unlike_every_known_one_gets_no_suggestion(names, written):
    """A name sharing no letter with any known name matches none and suggests none."""
    known = KnownNames(name for name in names if not set(name.lower()) & set(written))
    assert known.match(written) is None
    assert known.did_you_mean(written) == ""


@given(
    data=st.data(),
    names=known_names.filter(lambda names: any(len(n) >= 6 for n in names)),
)
def test_a_name_one_letter_off_gets_a_suggestion(data, names):
    """A one-letter typo of a known name of six or more characters gets a did-you-mean."""
    name = data.draw(st.sampled_from([n for n in names if len(n) >= 6]))
    index = data.draw(st.integers(0, len(name) - 1))
    typo = name[:index] + ("x" if name[index].lower() != "x" else "y") + name[index + 1 :]
    known = KnownNames(names)
    suggestion = known.closest(typo)
    assert suggestion is not None
    assert known.did_you_mean(typo) == f" (did you mean {suggestion!r}?)"
    assert did_you_mean(typo, names) == known.did_you_mean(typo)


def test_unknown_lists_the_known_names_in_their_order():
    """The hint after an unknown name: the did-you-mean, then every known name."""
    known = KnownNames(["Bucket", "Key", "Compress"])
    assert known.unknown("Bukcet") == " (did you mean 'Bucket'?); known: Bucket, Key, Compress"
    assert known.unknown("zzz") == "; known: Bucket, Key, Compress"


def test_settings_variables_match_like_parameters():
    """A variable's name after the prefix matches in any case, with _ or - anywhere."""
    settings = load_settings(
        "local", publisher_local.LocalSettings, environ={"PUBLISHER_LOCAL_Compression-Level": "3"}
    )
    assert settings is not None
    assert settings.compression_level == 3


# The summariser

items = st.lists(st.integers(0, 10**6).map(lambda n: f"item{n}"), unique=True, max_size=40)


@given(items=items, shown=st.integers(0, 25))
def test_a_summary_shows_at_most_n_items_and_counts_the_rest_exactly(items, shown):
    """The first ``shown`` items appear in order; the rest are counted, exactly, never shown."""
    text = summarize(items, shown)
    head, rest = items[:shown], items[shown:]
    assert [i for i in items if i in text.split("; ")] == head
    if rest:
        assert text.endswith(f"and {len(rest)} more")
        assert text == "; ".join([*head, f"and {len(rest)} more"])
    else:
        assert text == "; ".join(head)


@given(shown=st.integers(0, 25))
def test_nothing_to_summarise_is_the_empty_string(shown):
    """No items, no text, whatever the limit."""
    assert summarize([], shown) == ""
    assert summarize(iter(()), shown, separator=", ") == ""


def test_a_summary_takes_any_iterable_and_its_separators():
    """Generators and paths are fine; ``before_more`` replaces the separator before the count."""
    assert summarize((f"k{n}" for n in range(5)), 2) == "k0; k1; and 3 more"
    assert summarize(["a", "b", "c"], 2, separator=", ") == "a, b, and 1 more"
    assert summarize(["a", "b", "c"], 2, separator=", ", before_more=" ") == "a, b and 1 more"
    assert summarize(["a", "b"], 2, separator=", ", before_more=" ") == "a, b"


# A third party's validate_spec


def _plugin_returning(result: object) -> types.ModuleType:
    module = types.ModuleType("checked_publisher")

    @hookimpl
    def validate_spec(spec):
        return result

    module.publisher_info = publisher_local.publisher_info  # type: ignore[attr-defined]
    module.validate_spec = validate_spec  # type: ignore[attr-defined]
    return module


def test_a_plugins_problem_reaches_the_spec_error_with_its_path():
    """A Problem from validate_spec is reported as it is, beside the plugin's strings."""
    plugin = _plugin_returning(
        [Problem("$.Params.Key", "key must name a file"), "key is too short @ $.Params.Key"]
    )
    registry = Registry(publishers={"checked": plugin})
    with pytest.raises(SpecError) as info:
        validate({"Type": "checked", "Key": "k"}, registry=registry)
    assert info.value.details == (
        Problem("$.Params.Key", "key must name a file"),
        Problem(None, "key is too short @ $.Params.Key"),
    )
    assert str(info.value) == (
        "invalid spec (2 problems): key must name a file @ $.Params.Key; "
        "key is too short @ $.Params.Key"
    )


@pytest.mark.parametrize("result", [None, [], ()])
def test_no_problems_from_a_plugin_means_valid(result):
    """None or an empty list from validate_spec: the spec is valid."""
    registry = Registry(publishers={"checked": _plugin_returning(result)})
    assert validate({"Type": "checked", "Key": "k"}, registry=registry).params.key == "k"


def test_a_plugin_returning_something_else_is_a_plugin_error():
    """Anything but strings and Problems from validate_spec names the publisher."""
    registry = Registry(publishers={"checked": _plugin_returning([42])})
    with pytest.raises(PluginError, match="publisher 'checked' returned \\[42\\] from validate"):
        validate({"Type": "checked", "Key": "k"}, registry=registry)
