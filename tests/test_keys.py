"""Key naming (docs/specs.md, Keys): placeholders, suffix rules, store key rules."""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from publisher_core import (
    MAX_KEY_BYTES,
    PLACEHOLDERS,
    Problem,
    PublishContext,
    PublishedResult,
    PublishError,
    SpecError,
    check_key,
    describe,
    get,
    key_problems,
    key_template_problems,
    manifest_key,
    publish,
    render_key,
    result_keys,
    result_name,
)
from tests.trees import Tree, build, snapshot, trees

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
    """The seed's test vectors and the example of docs/specs.md (Keys) render exactly."""
    assert render_key(template, context, compress=compress) == expected


def test_date_and_time_come_from_one_utc_instant():
    """A non-UTC ``now`` is converted to UTC before {date} and {time} are taken."""
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
    """Validation checks given values; a missing one waits for publish time (docs/specs.md)."""
    assert key_problems("r/{jobID}", compress=False, context=None) == []
    partial = PublishContext(job_id="j1", now=NOW)
    assert key_problems("{jobID}/{executionID}", compress=False, context=partial) == []
    bad = PublishContext(job_id="..", now=NOW)
    (problem,) = key_problems("r/{jobID}/{nodeID}", compress=False, context=bad)
    assert "is not allowed in a key" in problem.message
    assert problem.path == "$.Params.Key"
    assert str(problem).endswith("@ $.Params.Key")


def test_key_problems_are_records_at_the_path_given():
    """key_problems returns Problem records: the template's problems, placed at ``path``."""
    problems = key_problems("{foo}/{bar}", compress=False, context=None, path="$.Params.Name")
    messages = key_template_problems("{foo}/{bar}", compress=False)
    assert problems == [Problem("$.Params.Name", message) for message in messages]
    assert [str(p) for p in problems] == [f"{m} @ $.Params.Name" for m in messages]


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
        assert key.lower().endswith((".tar.gz", ".tgz"))
    else:
        assert key.endswith("/")
    assert ".." not in key.split("/")


# --- The key rules of docs/specs.md read independently: an oracle for any template ---

TEMPLATE_SHAPE = re.compile(r"(?:[^{}]|\{(?:jobID|executionID|nodeID|date|time)\})*")


def is_control(char: str) -> bool:
    """C0, DEL and C1 (category Cc) plus the Unicode line and paragraph separators."""
    return unicodedata.category(char) == "Cc" or char in "\u2028\u2029"


def valid_store_key(key: str) -> bool:
    """Rule 4: at most 1024 UTF-8 bytes, no leading '/', no control character, and no
    empty, '.' or '..' segment (the '/' ending a directory key opens no segment)."""
    segments = (key[:-1] if key.endswith("/") else key).split("/")
    return (
        0 < len(key.encode("utf-8")) <= 1024
        and not key.startswith("/")
        and not any(is_control(c) for c in key)
        and not any(s in ("", ".", "..") for s in segments)
    )


def values_of(context: PublishContext) -> dict[str, str | None]:
    now = context.now.astimezone(timezone.utc)
    return {
        "jobID": context.job_id,
        "executionID": context.execution_id,
        "nodeID": context.node_id,
        "date": f"{now.year:04}{now.month:02}{now.day:02}",
        "time": f"{now.hour:02}{now.minute:02}{now.second:02}",
    }


def expected_key(template: str, context: PublishContext, compress: bool) -> str | None:
    """The key the rules say ``template`` renders to, or None where it says "error"."""
    if not template or not TEMPLATE_SHAPE.fullmatch(template):
        return None  # empty, unknown placeholder, or a stray brace
    values = values_of(context)
    for name in re.findall(r"\{(\w+)\}", template):
        value = values[name]
        if not value or value in (".", "..") or any(c in "/\\" or is_control(c) for c in value):
            return None
    key = re.sub(r"\{(\w+)\}", lambda m: values[m[1]] or "", template)
    if compress:
        if key.endswith("/"):
            return None
        if not key.lower().endswith((".tar.gz", ".tgz")):
            key += ".tar.gz"
    elif not key.endswith("/"):
        key += "/"
    return key if valid_store_key(key) else None


def assert_stays_under(key: str, root: str) -> None:
    """``key`` joined to ``root`` names a path strictly inside ``root``."""
    joined = posixpath.normpath(f"{root}/{key}")
    assert joined.startswith(root.rstrip("/") + "/"), (key, joined)


text_bits = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=4)
tricky_bits = st.sampled_from(
    ["{", "}", "{}", "{jobid}", "{date", "time}", "{{jobID}}", "{ jobID}", "/", "//", ".", "..",
     "\\", ".tar.gz", ".TGZ", ".tgz", "\n", "\x85", "\u2028", "\x7f", " ", "é", "\U0001f600"]
)  # fmt: skip
short_templates = st.lists(st.one_of(placeholder, tricky_bits, text_bits), max_size=8).map("".join)
long_bits = st.integers(1000, 1030).map(lambda n: "k" * n)  # around the 1024-byte limit
segmented_templates = st.lists(
    st.one_of(
        segment, placeholder, st.sampled_from(["", ".", "..", "...", "a\x85b", "\u2028", "\x7f"])
    ),
    min_size=1,
    max_size=5,
).map("/".join)
freeform_templates = st.lists(
    st.one_of(placeholder, tricky_bits, text_bits, long_bits), max_size=8
).map("".join)
suffixes = st.sampled_from(["", "", ".tar.gz", ".tgz", ".TGZ", ".Tar.Gz", ".tar", "/", "//"])
any_templates = st.builds(
    str.__add__, st.one_of(templates, segmented_templates, freeform_templates), suffixes
)
any_values = st.one_of(
    ids,
    ids,
    st.none(),
    st.sampled_from(["", ".", "..", "gz", "a/b", "a\\b", "x\ty", "{jobID}", "\x9b", "."]),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=6),
)
given_values = any_values.filter(lambda v: v is not None)
instants = st.datetimes(
    min_value=datetime(1000, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from(
        [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
    ),
)
any_contexts = st.builds(
    PublishContext, job_id=any_values, execution_id=any_values, node_id=any_values, now=instants
)
full_contexts = st.builds(
    PublishContext,
    job_id=given_values,
    execution_id=given_values,
    node_id=given_values,
    now=instants,
)


@pytest.mark.parametrize("compress", [False, True])
@given(template=any_templates, context=any_contexts)
def test_rendering_agrees_with_an_independent_reading_of_design_4(template, context, compress):
    """Any template and values: the key the rules give, or SpecError exactly where they say
    error, naming the Key field on one line; never another exception."""
    expected = expected_key(template, context, compress)
    if expected is None:
        with pytest.raises(SpecError) as info:
            render_key(template, context, compress=compress)
        assert info.value.problems
        assert all(p.endswith(" @ $.Params.Key") for p in info.value.problems)
        assert "\n" not in str(info.value)
        return
    key = render_key(template, context, compress=compress)
    assert key == expected
    assert check_key(key) == []
    assert_stays_under(key, "/root")
    values = values_of(context)
    if not any("{" in v or "}" in v for v in values.values() if v):
        assert "{" not in key and "}" not in key  # no placeholder is ever left behind
    assert key.lower().endswith((".tar.gz", ".tgz")) if compress else key.endswith("/")
    name = result_name(key)
    assert name and "/" not in name


@pytest.mark.parametrize("compress", [False, True])
@given(template=any_templates, context=full_contexts)
def test_validation_with_every_value_given_reports_exactly_what_publish_would(
    template, context, compress
):
    """With every value known, validate finds the same problems publish would, no more."""
    problems = key_template_problems(template, compress=compress, context=context)
    try:
        render_key(template, context, compress=compress)
    except SpecError as error:
        assert list(error.problems) == [f"{p} @ $.Params.Key" for p in problems]
    else:
        assert problems == []


@pytest.mark.parametrize("compress", [False, True])
@given(template=st.one_of(templates, short_templates), context=any_contexts)
def test_templates_that_render_also_validate(template, context, compress):
    """Validation without values never refuses a template that some context renders."""
    try:
        render_key(template, context, compress=compress)
    except SpecError:
        assert expected_key(template, context, compress) is None
    else:
        assert key_template_problems(template, compress=compress) == []


def test_validation_without_values_accepts_an_archive_key_that_fits_once_rendered():
    """A template the job id 'gz' renders to 1019 bytes is not refused as too long."""
    template = "k" * 1012 + ".tar.{jobID}"
    key = render_key(template, PublishContext(job_id="gz", now=NOW), compress=True)
    assert len(key) == 1019
    assert key_template_problems(template, compress=True) == []


@pytest.mark.parametrize("compress", [False, True])
@given(template=any_templates, context=any_contexts)
def test_suffix_rules_are_idempotent(template, context, compress):
    """Rendering a rendered key again, under any context, changes nothing; the template
    check accepts it as it is."""
    key = expected_key(template, context, compress)
    assume(key is not None and "{" not in key and "}" not in key)
    assert render_key(template, context, compress=compress) == key
    assert key_template_problems(key, compress=compress) == []
    later = PublishContext(now=datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert render_key(key, later, compress=compress) == key


relative_paths = (
    st.lists(st.one_of(segment, st.sampled_from(["", ".", "..", "a\nb", "\\"])), max_size=4)
    .map("/".join)
    .filter(bool)
)


@given(templates, contexts, st.lists(relative_paths, max_size=6, unique=True))
def test_result_keys_never_leave_the_prefix(template, context, paths):
    """Each file's key is the prefix plus its path and stays under the prefix, the manifest
    sits beside the prefix; a path that cannot be stored is a PublishError, nothing else."""
    prefix = render_key(template, context, compress=False)
    storable = all(valid_store_key(prefix + p) for p in paths) and valid_store_key(
        manifest_key(prefix)
    )
    if not storable:
        with pytest.raises(PublishError, match="cannot be stored under"):
            result_keys(prefix, paths)
        return
    keys = result_keys(prefix, paths)
    assert keys == [prefix + p for p in paths] + [manifest_key(prefix)]
    for key in keys[:-1]:
        assert_stays_under(key, f"/root/{prefix}")
    manifest = keys[-1]
    assert not manifest.startswith(prefix)
    assert posixpath.dirname(manifest) == posixpath.dirname(prefix.rstrip("/"))
    assert_stays_under(manifest, "/root")
    archive = render_key(template, context, compress=True)
    assert result_keys(archive, paths) == [archive]


# --- a sequence of publishes into one local root ---------------------------------------------

ROOT_SEGMENTS = ["a", "b", "a.manifest.json", "c.tgz", "{jobID}"]
JOB_IDS = ["j1", "j2", "..", "x/y", ""]


def touched_names(key: str) -> set[str]:
    """The names directly under the root that publishing ``key`` creates or checks.

    A key below a first segment ``a`` is refused when ``a.manifest.json`` exists: that
    would make it part of the directory result ``a/``.
    """
    head, sep, _ = key.rstrip("/").partition("/")
    if sep or key.endswith("/"):
        return {head, head + ".manifest.json"}
    return {key}


def test_a_directory_named_like_a_manifest_does_not_make_a_result(result_dir, tmp_path):
    """After publishing 'a.manifest.json/' the key 'a/b' is free: there is no result 'a/'."""
    root = {"root": str(tmp_path / "root")}
    publish({"Type": "local", "Key": "a.manifest.json"}, result_dir, settings=root)
    result = publish({"Type": "local", "Key": "a/b"}, result_dir, settings=root)
    assert result.params["Key"] == "a/b/"


class LocalRootMachine(RuleBasedStateMachine):
    """Publishes into one local root: each lands under its key or fails leaving the root as
    it was; with Overwrite: false no result is ever replaced or changed; every result stays
    retrievable."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.base = Path(self.tmp.name)
        self.root = self.base / "root"
        self.settings = {"root": str(self.root)}
        self.results: list[tuple[PublishedResult, dict[str, bytes | None]]] = []
        self.count = 0

    def fresh_dir(self, name: str) -> Path:
        self.count += 1
        return self.base / f"{name}{self.count}"

    @rule(
        tree=trees,
        segments=st.lists(st.sampled_from(ROOT_SEGMENTS), min_size=1, max_size=2),
        compress=st.booleans(),
        job=st.sampled_from(JOB_IDS),
    )
    def publish(self, tree: Tree, segments: list[str], compress: bool, job: str) -> None:
        source = build(tree, self.fresh_dir("src"))
        template = "/".join(segments)
        context = PublishContext(job_id=job, now=NOW)
        key = expected_key(template, context, compress)
        fresh = key is not None and not any(
            os.path.lexists(self.root / n) for n in touched_names(key)
        )
        before = snapshot(self.root)
        try:
            result = publish(
                {
                    "Type": "local",
                    "Params": {"Key": template, "Compress": compress, "Overwrite": False},
                },
                source,
                context=context,
                settings=self.settings,
            )
        except (SpecError, PublishError) as error:
            assert not fresh, error
            assert isinstance(error, SpecError) == (key is None), error
            assert snapshot(self.root) == before
            return
        assert key is not None
        assert result.params["Key"] == key
        after = snapshot(self.root)
        assert {k: after.get(k) for k in before} == before  # nothing replaced or changed
        path = Path(result.params["Path"])
        root = self.root.resolve()
        assert root in path.parents
        if compress:
            assert path == root / key
            assert path.is_file()
        else:
            assert path == root / key.rstrip("/")
            assert snapshot(path) == snapshot(source)
            assert Path(result.params["Manifest"]) == root / manifest_key(key)
        self.results.append((result, snapshot(source)))

    @precondition(lambda self: bool(self.results))
    @rule(index=st.integers(min_value=0))
    def retrieve(self, index: int) -> None:
        result, expected = self.results[index % len(self.results)]
        target = self.fresh_dir("out")
        report = get(describe(result, settings=self.settings), target)
        assert report.unverified == 0
        assert snapshot(target) == expected

    @invariant()
    def every_entry_in_the_root_belongs_to_a_result(self) -> None:
        if not self.root.exists():
            return
        root = self.root.resolve()
        owned: list[Path] = []  # directory results own everything below them
        placed: list[Path] = []  # archives, manifests and directory results themselves
        for result, _ in self.results:
            path = Path(result.params["Path"])
            placed.append(path)
            if result.params["Key"].endswith("/"):
                owned.append(path)
                placed.append(Path(result.params["Manifest"]))
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                entry = Path(dirpath, name)
                assert (
                    entry in placed
                    or any(o in entry.parents for o in owned)
                    or any(entry in p.parents for p in placed)
                ), f"{entry} belongs to no result"

    def teardown(self) -> None:
        try:
            for index in range(len(self.results)):
                self.retrieve(index)
        finally:
            self.tmp.cleanup()


LocalRootMachine.TestCase.settings = settings(max_examples=15, stateful_step_count=8, deadline=None)
TestLocalRoot = LocalRootMachine.TestCase


@pytest.mark.parametrize("key", ["a\ud800b", "runs/\udcff/x", "\udfff"])
def test_a_key_must_encode_as_utf8(key):
    """A key holding a lone surrogate is refused when validated, not when it is written."""
    assert any("is not valid Unicode" in p for p in check_key(key))
    assert any("is not valid Unicode" in p for p in key_template_problems(key, compress=False))


def test_a_placeholder_value_that_does_not_encode_as_utf8_is_refused():
    """An id holding a lone surrogate (say, undecodable argv bytes) never reaches a key."""
    with pytest.raises(SpecError, match=r"is not valid Unicode.* @ \$\.Params\.Key"):
        render_key("r/{jobID}", PublishContext(job_id="j\udcff", now=NOW), compress=False)


@pytest.mark.parametrize(
    "template",
    [
        "/" + "k" * 1_000_000,
        "k\n" + "k" * 1_000_000,
        "k//" + "k" * 1_000_000,
        "{" + "k" * 1_000_000,
        "r/{" + "j" * 1_000_000 + "}",
    ],
)
def test_key_problems_quote_the_key_briefly(template):
    """However long a key is, each problem about it stays short."""
    problems = key_template_problems(template, compress=False)
    assert problems
    assert all(len(p) < 400 for p in problems), [p[:500] for p in problems]
