"""Spec and result documents: both shapes, YAML and JSON, clear errors, round trips."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher_core import (
    DownloadItem,
    PluginError,
    PublishedResult,
    PublisherSpec,
    ResultDescription,
    SpecError,
    description_from_document,
    description_to_document,
    dump_document,
    load_spec,
    parse_document,
    result_from_document,
    result_to_document,
    spec_from_document,
    spec_to_document,
    validate,
)

FLAT = """\
Type: s3
Bucket: my-task-results
Key: task123/result.tar.gz
Compress: true
"""
NESTED = """\
Type: s3
Params: {Bucket: my-task-results, Key: "results/{jobID}/", Region: us-east-1}
"""


def test_flat_and_nested_shapes_load_the_same_way():
    """The two YAML shapes (docs/specs.md) load into Type + params."""
    flat = spec_from_document(parse_document(FLAT))
    nested = spec_from_document(parse_document(NESTED))
    assert flat == PublisherSpec(
        "s3", {"Bucket": "my-task-results", "Key": "task123/result.tar.gz", "Compress": True}
    )
    assert nested == PublisherSpec(
        "s3", {"Bucket": "my-task-results", "Key": "results/{jobID}/", "Region": "us-east-1"}
    )


def test_both_design_examples_validate():
    """Both examples are valid s3 specs."""
    assert validate(parse_document(FLAT)).params.compress is True
    assert validate(parse_document(NESTED)).params.region == "us-east-1"


def test_yaml_scalars_stay_text_unless_true_false_or_null():
    """YAML 1.1 surprises (yes, 0755, dates) stay strings for the converter to judge."""
    doc = parse_document("a: yes\nb: 0755\nc: 2023-09-26\nd: TRUE\ne: ~\nf: 1.5")
    assert doc == {"a": "yes", "b": "0755", "c": "2023-09-26", "d": True, "e": None, "f": "1.5"}


def test_json_and_lowercase_names_are_accepted():
    """JSON works, and ``type``/``params`` match case-insensitively."""
    doc = parse_document('{"type": "local", "params": {"key": "out", "compress": "false"}}')
    assert validate(doc).params.compress is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Type: s3\nBucket: [unclosed", "YAML syntax error at line 3, column 1"),
        ('["not", "a", "mapping"', "JSON syntax error"),
        ("", "expected a mapping with a Type"),
        ("- a\n- b", "expected a mapping with a Type"),
        ("Bucket: b", "missing required field 'Type' @ $"),
        ("Type: [s3]", "Type must be a publisher name"),
        ("Type: s3\ntype: local", "'type' given twice (also as 'Type')"),
        ('{"Type": "local", "Key": "a", "Key": "../b"}', "duplicate key 'Key' in a JSON object"),
        ("Type: local\nKey: a\nCompress: yes", "expected true or false, got 'yes'"),
        ("Type: s3\nParams: {Bucket: b}\nKey: k", "both under Params and at the top level"),
        ("Type: s3\nParams: [1]", "Params must be a mapping"),
        ("Type: s3\nKey: a\nKey: b", "duplicate key 'Key' on line 3"),
    ],
)
def test_malformed_documents_are_one_clear_error(text, message):
    """Each malformed document names what is wrong, on one line."""
    with pytest.raises(SpecError) as info:
        validate(spec_from_document(parse_document(text)))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_results_read_in_both_shapes():
    """A published result reads flat or nested and is emitted nested."""
    nested = result_from_document({"Type": "s3", "Params": {"Bucket": "b", "Key": "k"}})
    flat = result_from_document({"Type": "s3", "Bucket": "b", "Key": "k"})
    assert nested == flat
    assert result_to_document(flat) == {"Type": "s3", "Params": {"Bucket": "b", "Key": "k"}}


def test_description_rejects_unknown_fields_and_bad_items():
    """A tampered description names its problems."""
    with pytest.raises(SpecError) as info:
        description_from_document(
            {"Type": "local", "Name": "n", "Items": [{"Path": "a"}], "Extra": 1}
        )
    assert "unknown field 'Extra'" in str(info.value)
    assert "missing required parameter 'URL' @ $.Items[0]" in str(info.value)


# --- round trips -----------------------------------------------------------------------------

names = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=10)
# Raw spec values are strings or bools: our YAML reading keeps `12` and `0755` as text
# (the converter types them), so integers are not a raw round-trip value.
scalars = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20),
    st.booleans(),
)
params = st.dictionaries(
    names.filter(lambda n: n.lower() not in ("type", "params")), scalars, max_size=6
)
specs = st.builds(PublisherSpec, type=names, params=params)


@given(specs, st.sampled_from(["yaml", "json"]))
def test_specs_round_trip_through_yaml_and_json(spec, fmt):
    """spec -> document -> YAML/JSON text -> document -> spec is the identity."""
    text = dump_document(spec_to_document(spec), fmt)
    assert spec_from_document(parse_document(text)) == spec


@given(specs, st.sampled_from(["yaml", "json"]))
def test_results_round_trip_through_yaml_and_json(spec, fmt):
    """Published result records survive YAML and JSON."""
    result = PublishedResult(type=spec.type, params=spec.params)
    text = dump_document(result_to_document(result), fmt)
    assert result_from_document(parse_document(text)) == result


items = st.builds(
    DownloadItem,
    path=names,
    url=names.map(lambda n: f"https://example.invalid/{n}?X-Amz-Signature=abc"),
    size=st.none() | st.integers(0, 2**40),
    checksum_sha256=st.none() | names,
    archive=st.booleans(),
)


@given(
    st.builds(
        ResultDescription,
        type=names,
        name=names,
        items=st.lists(items, max_size=4).map(tuple),
        directories=st.lists(names, max_size=3).map(tuple),
    )
)
def test_descriptions_round_trip_through_json(description):
    """``describe --json`` output reads back as the same description."""
    text = dump_document(description_to_document(description), "json")
    assert description_from_document(json.loads(text)) == description
    assert description_from_document(yaml.safe_load(text)) == description


def test_download_item_repr_hides_the_signature():
    """A pre-signed URL's query string never shows in a repr."""
    item = DownloadItem(
        path="a", url="https://h.invalid/b/k?X-Amz-Signature=SECRET&X-Amz-Credential=AKIA"
    )
    assert "SECRET" not in repr(item)
    assert "AKIA" not in repr(item)
    assert "https://h.invalid/b/k?<redacted>" in repr(item)


@given(
    specs,
    st.sampled_from(["yaml", "json"]),
    st.sampled_from(["flat", "nested"]),
    st.sampled_from(["Type", "type", "TYPE"]),
    st.sampled_from(["Params", "params", "PARAMS"]),
)
def test_both_shapes_with_any_spelling_round_trip(spec, fmt, shape, type_name, params_name):
    """A flat or nested document, Type and Params in any case, reads back as the spec."""
    doc: dict[str, object] = (
        {type_name: spec.type, **spec.params}
        if shape == "flat"
        else {type_name: spec.type, params_name: dict(spec.params)}
    )
    text = dump_document(doc, fmt)
    assert spec_from_document(parse_document(text)) == spec
    result = PublishedResult(type=spec.type, params=spec.params)
    assert result_from_document(parse_document(text)) == result


# --- any input: a document, or one SpecError -------------------------------------------------

YAMLISH = [
    "[", "]", "{", "}", ":", ": ", "? ", "- ", ",", "\n", "  ", "\t", "'", '"', "#", "|\n",
    ">\n", "&a ", "*a", "<<: ", "---\n", "...\n", "%YAML 1.1\n", "!!str ", "!!map ",
    "!!python/object ", "!custom ", "Type", "type: local\n", "type: s3\n", "Params", "Key",
    "Bucket", "Compress", "true", "yes", "~", "null", "0x1f", "1e3", "2023-09-26", "local",
    "x", "é", "\ufeff", "\x00", "\\u0000",
]  # fmt: skip
yamlish_text = st.lists(st.sampled_from(YAMLISH), max_size=25).map("".join)


def read_everything(text: str) -> None:
    """Parse ``text`` as every kind of document; anything but SpecError/PluginError fails."""
    try:
        doc = parse_document(text)
    except SpecError as error:
        assert error.problems
        assert "\n" not in str(error)
        return
    for reader in (result_from_document, description_from_document):
        try:
            reader(doc)
        except SpecError as error:
            assert error.problems
    try:
        spec = spec_from_document(doc)
    except SpecError as error:
        assert error.problems
        return
    assert spec.type == spec.type.strip() != ""
    for type_name in ("local", "s3"):
        try:
            validate(PublisherSpec(type_name, spec.params))
        except SpecError as error:
            assert error.problems


@settings(max_examples=300)
@given(st.one_of(yamlish_text, st.text(max_size=200)))
def test_any_text_is_a_document_or_one_spec_error(text):
    """Arbitrary text read as a spec, result or description raises only SpecError."""
    read_everything(text)


@given(st.binary(max_size=200))
def test_any_bytes_in_a_spec_file_load_or_raise_spec_error(tmp_path, data):
    """A spec file holding arbitrary bytes (not UTF-8, NULs...) loads or is a SpecError."""
    path = tmp_path / "spec.yaml"
    path.write_bytes(data)
    try:
        spec = load_spec(path)
    except SpecError as error:
        assert error.problems
        return
    assert isinstance(spec, PublisherSpec)
    read_everything(data.decode("utf-8"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
param_names = st.sampled_from(
    ["Key", "key", "KEY", "k_e-y", "Bucket", "Compress", "Encoding", "Endpoint", "Region",
     "Params", "Bukket", "Type"]
) | st.text(max_size=6)  # fmt: skip
types = st.sampled_from(["local", "s3", "S3", " local ", "ftp", ""]) | json_values
documents = st.builds(
    lambda type_value, params, nested: (
        {"Type": type_value, "Params": params} if nested else {"Type": type_value, **params}
    ),
    types,
    st.dictionaries(param_names, st.one_of(json_values, st.text(max_size=30)), max_size=6),
    st.booleans(),
)


@given(documents, st.sampled_from(["yaml", "json"]))
def test_any_document_validates_or_names_its_problems(doc, fmt):
    """Any mapping, given directly or as YAML/JSON text, validates or raises SpecError or
    PluginError (unknown Type); nothing else escapes."""
    for source in (doc, parse_document(dump_document(doc, fmt))):
        try:
            validated = validate(source)
        except SpecError as error:
            assert error.problems
        except PluginError as error:
            assert "unknown publisher type" in str(error)
        else:
            assert validated.type in ("local", "s3")
            assert validated.params.key


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("? [a]\n: b\n", id="unhashable-block"),
        pytest.param("Type: local\n{[a]: b}: c\n", id="unhashable-flow"),
        pytest.param("Type: local\nKey: !!int x\n", id="int-tag"),
        pytest.param("!!float ", id="float-tag"),
        pytest.param("!!timestamp ", id="timestamp-tag"),
        pytest.param("Type: !!map local\n", id="map-tag-on-scalar"),
        pytest.param("!!map [Type, local]\n", id="map-tag-on-sequence"),
        pytest.param("[" * 100_000, id="deep-json"),
        pytest.param("Type: local\nKey: &a [*a]\n", id="recursive-alias"),
        pytest.param("a: " + "[" * 100_000, id="deep-yaml"),
    ],
)
def test_documents_pyyaml_and_json_cannot_build_are_one_spec_error(text):
    """Text the YAML or JSON reader cannot turn into a document is a SpecError."""
    with pytest.raises(SpecError):
        spec_from_document(parse_document(text))


# --- YAML aliases, huge values and error labels ----------------------------------------------


def alias_chain(levels: int, width: int, indent: str = "") -> str:
    """YAML lines anchoring ``a0`` (``width`` scalars) and ``a1..`` (``width`` aliases each)."""
    lines = [f"{indent}A0: &a0 [{', '.join(['x'] * width)}]"]
    for level in range(1, levels):
        aliases = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"{indent}A{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


BOMB_IN_KEY = "Type: local\nParams:\n" + alias_chain(10, 9, "  ") + "  Key: *a9\n"
BOMB_ELSEWHERE = "Type: local\nParams:\n  Key: k\n  Extra:\n" + alias_chain(10, 9, "    ")
BOMB_FLAT = "Type: local\n" + alias_chain(10, 9) + "Key: *a9\n"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(BOMB_IN_KEY, id="in-key"),
        pytest.param(BOMB_ELSEWHERE, id="elsewhere-in-params"),
        pytest.param(BOMB_FLAT, id="flat-shape"),
    ],
)
def test_an_alias_bomb_is_refused_when_read(text):
    """Aliases expanding a small document to billions of values are one SpecError, at once."""
    with pytest.raises(SpecError) as info:
        parse_document(text)
    assert str(info.value).startswith("invalid spec: YAML aliases expand this document to more")
    assert str(info.value).endswith("values; write the values out")


def test_an_alias_bomb_given_as_a_mapping_is_quoted_briefly():
    """A host's alias-bomb-like mapping (shared lists) gets a short error, not its repr."""
    value: list[object] = ["x"] * 9
    for _ in range(6):
        value = [value] * 9  # 9**7 leaves, shared as YAML aliases would be
    with pytest.raises(SpecError) as info:
        validate({"Type": "local", "Params": {"Key": value}})
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"Type": "local", "Key": "\\u0007' + "k" * 1_000_000 + '"}', id="key"),
        pytest.param("Type: local\nKey: [" + "k" * 1_000_000 + "]\n", id="key-list"),
        pytest.param("Type: local\nKey: k\nCompress: " + "y" * 1_000_000 + "\n", id="bool"),
        pytest.param(
            '{"Type": "local", "Key": "k", "' + "U" * 1_000_000 + '": 1}', id="param-name"
        ),
        pytest.param("Type: " + "t" * 1_000_000 + "\n", id="type"),
        pytest.param("Type: [" + "t" * 1_000_000 + "]\n", id="type-list"),
        pytest.param("Type: local\nParams: " + "p" * 1_000_000 + "\n", id="params"),
        pytest.param("l" * 1_000_000 + "\n", id="document"),
        pytest.param("Type: local\nKey: 'k/{" + "j" * 1_000_000 + "}'\n", id="placeholder"),
        pytest.param("Type: local\nKey: 'k/{" + "j" * 1_000_000 + "'\n", id="unbalanced"),
        pytest.param("Type: local\nKey: k\nType: " + "t" * 1_000_000 + "\n", id="duplicate"),
    ],
)
def test_a_megabyte_value_in_a_spec_gives_a_short_error(text):
    """However large a value in a spec is, the error quoting it stays one short line."""
    with pytest.raises((SpecError, PluginError)) as info:
        validate(spec_from_document(parse_document(text)))
    assert len(str(info.value)) < 500, str(info.value)[:1000]


def test_merge_keys_and_modest_aliases_still_work():
    """``<<: *defaults`` and aliases that expand a document modestly read as before."""
    text = "Type: local\nParams:\n  <<: &defaults {Key: runs/x, Compress: true}\n  Key: runs/y\n"
    assert validate(parse_document(text)).params.key == "runs/y"
    assert parse_document("M: {<<: [{A: first}, {A: second, B: b}]}")["M"] == {
        "A": "first",
        "B": "b",
    }
    shared = parse_document(alias_chain(3, 9) + "B: [" + ", ".join(["*a2"] * 10) + "]\n")
    assert shared["B"][9] == [[["x"] * 9] * 9] * 9


@settings(max_examples=60)
@given(levels=st.integers(1, 8), width=st.integers(1, 12))
def test_aliases_are_refused_exactly_when_they_expand_past_the_bound(levels, width):
    """A document is refused iff its aliases expand it past 10,000 values (and 10x its nodes)."""
    text = alias_chain(levels, width)
    size = 1 + width  # the innermost list and its scalars
    total = 1 + 1 + size  # the document, key A0, its list
    for _ in range(1, levels):
        size = 1 + width * size
        total += 1 + size
    try:
        doc = parse_document(text)
    except SpecError as error:
        assert "YAML aliases expand this document to more than 10000 values" in str(error)
        assert total > 10_000
    else:
        assert total <= 10_000
        assert len(doc) == levels


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "type: [local\n",
            "invalid spec: YAML syntax error at line 2, column 1: did not find expected ',' or ']'",
            id="yaml-syntax",
        ),
        pytest.param(
            '{"Type": "local", "Type": "s3"}',
            "invalid spec: duplicate key 'Type' in a JSON object",
            id="json-duplicate",
        ),
        pytest.param(
            '{"Type": "local", "Key": ' + "1" * 5000 + "}",
            "invalid spec: JSON value cannot be read: Exceeds the limit (4300 digits)",
            id="json-huge-int",
        ),
        pytest.param(
            "Type: local\nKey: !!int " + "1" * 5000 + "\n",
            "invalid spec: YAML value cannot be read: Exceeds the limit (4300 digits)",
            id="yaml-huge-int",
        ),
    ],
)
def test_a_document_error_says_invalid_spec_once_and_names_its_reader(text, message):
    """A reader's error is prefixed once and labelled YAML or JSON by the reader that failed."""
    with pytest.raises(SpecError) as info:
        parse_document(text)
    assert str(info.value).startswith(message)
    assert str(info.value).count("invalid spec") == 1
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"Type": "local", "Key": "a\ud800"}, "@ $.Params.Key"),
        ({"Type": "\udcff"}, "@ $.Type"),
    ],
)
def test_a_lone_surrogate_in_a_spec_is_refused_at_validate(doc, where):
    """Spec text that cannot be encoded as UTF-8 is refused when validated, naming its path."""
    with pytest.raises(SpecError, match="is not valid Unicode") as info:
        validate(parse_document(json.dumps(doc)))
    assert str(info.value).endswith(where)


@pytest.mark.parametrize("field", ["Name", "Type"])
def test_a_lone_surrogate_in_a_description_is_refused(field):
    """A description's Name or Type that cannot be encoded as UTF-8 is refused at its path."""
    doc = {"Type": "local", "Name": "n", "Items": []}
    doc[field] = "x\ud800"
    with pytest.raises(SpecError, match=f"is not valid Unicode.* @ \\$\\.{field}"):
        description_from_document(doc)
