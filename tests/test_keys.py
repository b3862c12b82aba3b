"""Key naming (DESIGN 4): placeholders, suffix rules, store key rules."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher_core import (
    MAX_KEY_BYTES,
    PLACEHOLDERS,
    PublishContext,
    PublishError,
    SpecError,
    check_key,
    key_problems,
    key_template_problems,
    manifest_key,
    render_key,
    result_keys,
)

NOW = datetime(2023, 9, 26, 14, 5, 30, tzinfo=timezone.utc)
CTX = PublishContext(job_id="j1", execution_id="e1", node_id="n1", now=NOW)


@pytest.mark.parametrize(
    ("template", "compress", "context", "expected"),
    [
        ("a", True, CTX, "a.tar.gz"),
        ("a", False, CTX, "a/"),
        ("{nodeID}/{executionID}/{jobID}", True, CTX, "n1/e1/j1.tar.gz"),
        (
            "results/{jobID}/{date}/{time}",
            False,
            PublishContext(job_id="abc123", now=NOW),
            "results/abc123/20230926/140530/",
        ),
        (
            "results/{jobID}/{date}/{time}",
            True,
            PublishContext(job_id="abc123", now=NOW),
            "results/abc123/20230926/140530.tar.gz",
        ),
        ("task123/result.tar.gz", True, CTX, "task123/result.tar.gz"),
        ("task123/result.tgz", True, CTX, "task123/result.tgz"),
        ("results/{jobID}/", False, CTX, "results/j1/"),
        ("result-{date}-{jobID}", True, CTX, "result-20230926-j1.tar.gz"),
    ],
)
def test_bacalhau_vectors_and_design_examples(template, compress, context, expected):
    """The seed's test vectors and DESIGN 4's example render exactly."""
    assert render_key(template, context, compress=compress) == expected


def test_date_and_time_come_from_one_utc_instant():
    """A non-UTC ``now`` is converted to UTC before {date} and {time} are taken."""
    from datetime import timedelta

    tz = timezone(timedelta(hours=-5))
    ctx = PublishContext(job_id="j", now=datetime(2023, 9, 26, 23, 30, 0, tzinfo=tz))
    assert render_key("{date}/{time}", ctx, compress=False) == "20230927/043000/"


def test_naive_now_is_refused():
    """A naive datetime is not guessed at."""
    with pytest.raises(ValueError, match="timezone-aware"):
        PublishContext(now=datetime(2023, 1, 1))


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("results/{jobid}", "unknown placeholder {jobid} (did you mean {jobID}?)"),
        ("results/{foo}", "unknown placeholder {foo}; known: {jobID}"),
        ("results/{jobID", "unbalanced '{'"),
        ("results/jobID}", "unbalanced '}'"),
        ("", "key must not be empty"),
        ("/abs/key", "must not start with '/'"),
        ("a//b", "'' path segments"),
        ("a/../b", "'..' path segments"),
        ("./a", "'.' path segments"),
        ("a\nb", "control characters"),
    ],
)
def test_template_problems(template, message):
    """A bad template is reported with what is wrong."""
    problems = key_template_problems(template, compress=False)
    assert any(message in p for p in problems), problems


def test_archive_key_ending_in_slash_is_an_error():
    """With Compress a key ending in '/' names no archive."""
    (problem,) = key_template_problems("results/{jobID}/", compress=True)
    assert "an archive needs a file name" in problem


def test_missing_placeholder_value_names_the_placeholder_and_option():
    """A placeholder without a value says which option gives it."""
    with pytest.raises(SpecError, match=r"placeholder \{jobID\} has no value \(pass --job-id\)"):
        render_key("r/{jobID}", PublishContext(now=NOW), compress=False)


@pytest.mark.parametrize("value", ["a/b", "a\\b", ".", "..", "x\x00y", "tab\tbed"])
def test_placeholder_values_that_change_the_key_shape_are_refused(value):
    """Values with '/', '\\', control characters, '.' or '..' never reach a key."""
    with pytest.raises(SpecError, match="is not allowed in a key"):
        render_key("r/{jobID}", PublishContext(job_id=value, now=NOW), compress=False)


def test_key_length_limit_counts_utf8_bytes():
    """1024 UTF-8 bytes is the limit, counted in bytes not characters."""
    assert check_key("é" * 512) == []
    assert any("1026 UTF-8 bytes" in p for p in check_key("é" * 513))
    with pytest.raises(SpecError, match="limit is 1024"):
        render_key("k" * MAX_KEY_BYTES, CTX, compress=False)


def test_every_problem_is_reported_at_once():
    """Several problems in one template come back together."""
    problems = key_template_problems("{foo}/{bar}", compress=False)
    assert len(problems) == 2


def test_key_problems_checks_only_the_values_that_are_given():
    """Validation checks given values; a missing one waits for publish time (DESIGN 3.1)."""
    assert key_problems("r/{jobID}", compress=False, context=None) == []
    partial = PublishContext(job_id="j1", now=NOW)
    assert key_problems("{jobID}/{executionID}", compress=False, context=partial) == []
    bad = PublishContext(job_id="..", now=NOW)
    (problem,) = key_problems("r/{jobID}/{nodeID}", compress=False, context=bad)
    assert "is not allowed in a key" in problem
    assert problem.endswith("@ $.Params.Key")


def test_template_length_counts_the_suffix_and_fixed_width_placeholders():
    """A template that can only render too long fails validation, not publish."""
    assert key_template_problems("a" * 1024, compress=False) != []
    assert key_template_problems("a" * 1018, compress=True) != []
    assert key_template_problems("{date}" * 200, compress=False) != []
    assert key_template_problems("a" * 1023, compress=False) == []


@pytest.mark.parametrize("char", ["\x85", "\u2028", "\x9b"])
def test_c1_controls_and_line_separators_are_refused(char):
    """Unicode control characters beyond ASCII are control characters too."""
    assert check_key(f"a{char}b/") != []
    with pytest.raises(SpecError, match="is not allowed in a key"):
        render_key("{jobID}", PublishContext(job_id=f"x{char}", now=NOW), compress=False)


def test_a_manifest_key_over_the_limit_is_refused():
    """The manifest's key obeys the length limit too."""
    prefix = "a/" * 509 + "b/"
    with pytest.raises(PublishError, match="the manifest"):
        result_keys(prefix, ["f"])


def test_manifest_sits_next_to_the_prefix():
    """The manifest of 'results/abc/' is 'results/abc.manifest.json', outside the prefix."""
    assert manifest_key("results/abc/") == "results/abc.manifest.json"
    assert result_keys("p/", ["a", "b/c"]) == ["p/a", "p/b/c", "p.manifest.json"]
    assert result_keys("p.tar.gz", ["a"]) == ["p.tar.gz"]


# --- properties ---------------------------------------------------------------------------

segment = st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters="/{}\\"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
placeholder = st.sampled_from([f"{{{p}}}" for p in PLACEHOLDERS])
templates = st.lists(
    st.lists(st.one_of(segment, placeholder), min_size=1, max_size=3).map("".join),
    min_size=1,
    max_size=5,
).map("/".join)
ids = st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters="/\\{}"),
    min_size=1,
    max_size=10,
).filter(lambda s: s not in (".", ".."))
contexts = st.builds(
    PublishContext,
    job_id=ids,
    execution_id=ids,
    node_id=ids,
    now=st.datetimes(timezones=st.just(timezone.utc)),
)


@given(templates, contexts, st.booleans())
def test_rendered_keys_obey_every_rule(template, context, compress):
    """A rendered key has no placeholder left, the right suffix, and no escaping segment."""
    key = render_key(template, context, compress=compress)
    assert check_key(key) == []
    assert not any("{" + p + "}" in key for p in PLACEHOLDERS)
    if compress:
        assert key.endswith((".tar.gz", ".tgz"))
    else:
        assert key.endswith("/")
    assert ".." not in key.split("/")


@given(templates, contexts, st.booleans())
def test_suffix_rules_are_idempotent(template, context, compress):
    """Rendering a rendered key (which has no placeholders) changes nothing."""
    key = render_key(template, context, compress=compress)
    assert render_key(key, context, compress=compress) == key


@given(templates)
def test_templates_that_render_also_validate(template):
    """The template check accepts every template that renders under some context."""
    assert key_template_problems(template, compress=False) == []
