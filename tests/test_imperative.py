"""The imperative form of Bacalhau's ``-p`` flag."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher_core import (
    PluginError,
    PublisherSpec,
    SpecError,
    default_registry,
    dump_document,
    load_spec,
    parse_document,
    parse_imperative,
    validate,
)
from publisher_core._convert import normalize_name

S3_DESTINATION = {"s3": ("Bucket", "Key"), "local": ("Key",)}


def parse(text: str) -> PublisherSpec:
    return parse_imperative(text, lambda t: S3_DESTINATION.get(t, ("Key",)))


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("s3://bucket/key", {"Bucket": "bucket", "Key": "key"}),
        (
            "s3://bucket/key,opt=endpoint=http://127.0.0.1:9000,opt=region=us-east-1",
            {
                "Bucket": "bucket",
                "Key": "key",
                "endpoint": "http://127.0.0.1:9000",
                "region": "us-east-1",
            },
        ),
        (
            "s3://bucket/key,opt=compress=true",
            {"Bucket": "bucket", "Key": "key", "compress": "true"},
        ),
        ("s3://bucket/result-{date}-{jobID}", {"Bucket": "bucket", "Key": "result-{date}-{jobID}"}),
        ("s3,opt=bucket=B,opt=key=K", {"bucket": "B", "key": "K"}),
        ("s3,target=s3://b/deep/key/path", {"Bucket": "b", "Key": "deep/key/path"}),
        ("s3,dst=s3://b/k", {"Bucket": "b", "Key": "k"}),
        ("s3,destination=s3://b/k", {"Bucket": "b", "Key": "k"}),
        ("S3,target=s3://b/k", {"Bucket": "b", "Key": "k"}),
        ("s3://b/k,option=region=eu-west-1", {"Bucket": "b", "Key": "k", "region": "eu-west-1"}),
        ("s3://b/k,opt=encoding=gzip", {"Bucket": "b", "Key": "k", "Compress": True}),
        ("s3://b/k,opt=encoding=PLAIN", {"Bucket": "b", "Key": "k", "Compress": False}),
        (
            's3://b/k,"opt=endpoint=http://h:1/a,b"',
            {"Bucket": "b", "Key": "k", "endpoint": "http://h:1/a,b"},
        ),
        ("local://results/{jobID}", {"Key": "results/{jobID}"}),
    ],
)
def test_seed_forms(text, params):
    """Every form of the seed's -p flag parses to Type + params."""
    spec = parse(text)
    assert spec.params == params
    assert spec.type.lower() in ("s3", "local")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty imperative spec"),
        ("s3://b/k,opt=region", "must look like opt=NAME=VALUE"),
        ("s3://b/k,region=x", "unexpected field 'region=x'"),
        ("s3://b/k,target=s3://c/d", "destination given twice"),
        ("s3://b/k,opt=key=other", "Key given both in the destination and as option 'key'"),
        ("s3://b/k,opt=region=a,opt=Region=b", "option 'Region' given twice"),
        ("s3://b/k,opt=encoding=zip", "encoding must be 'gzip' or 'plain'"),
        ("s3://b/k,opt=encoding=gzip,opt=compress=false", "contradicts compress=false"),
        ("://b/k", "must start with a publisher Type"),
        ('s3://b/k,"opt=a=b', "not a valid CSV record"),
    ],
)
def test_bad_forms_are_clear_errors(text, message):
    """Malformed imperative specs say what is wrong."""
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_unknown_options_are_errors_unlike_bacalhau():
    """An unknown option fails validation with a did-you-mean."""
    with pytest.raises(
        SpecError,
        match=r"unknown parameter 'regoin' @ \$\.Params\.regoin \(did you mean 'Region'\?\)",
    ):
        validate("s3://b/k,opt=regoin=us-east-1")


def test_load_spec_uses_the_publishers_destination():
    """load_spec asks the installed publisher which parameters the destination fills."""
    assert load_spec("s3://bucket/a/b").params == {"Bucket": "bucket", "Key": "a/b"}
    assert load_spec("local://a/b").params == {"Key": "a/b"}


def test_seed_examples_validate():
    """The seed's four CLI examples are valid s3 specs."""
    for text in [
        "s3://bucket/key",
        "s3://bucket/key,opt=endpoint=http://127.0.0.1:9000,opt=region=us-east-1",
        "s3://bucket/key,opt=compress=true",
        "s3://bucket/result-{date}-{jobID}",
    ]:
        assert validate(text).type == "s3"


plain = st.text(
    alphabet=st.characters(categories=["L", "N"], include_characters="-_."), min_size=1, max_size=12
)
keys = st.lists(plain.filter(lambda s: s not in (".", "..")), min_size=1, max_size=4).map("/".join)
values = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=0, max_size=15)


@given(plain, keys, st.dictionaries(st.sampled_from(["region", "endpoint", "compress"]), values))
def test_imperative_round_trip(bucket, key, options):
    """Writing a spec in imperative form (with CSV quoting) and parsing it gives it back."""
    fields = [f"s3://{bucket}/{key}"] + [f"opt={k}={v}" for k, v in options.items()]
    spec = parse(csv_record(fields))
    assert spec == PublisherSpec("s3", {"Bucket": bucket, "Key": key, **options})


def installed(text: str) -> PublisherSpec:
    """Parse as load_spec does: the installed publisher names its destination fields."""
    registry = default_registry()
    return parse_imperative(text, lambda type_name: registry.get(type_name).info.destination)


def csv_record(fields: list[str]) -> str:
    """One CSV record, quoted wherever a field needs it (commas, quotes, line breaks)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(fields)
    return buffer.getvalue().removesuffix("\r\n")


def spellings(word: str) -> st.SearchStrategy[str]:
    return st.sampled_from([word, word.lower(), word.upper(), word.capitalize()])


option_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,10}", fullmatch=True).filter(
    lambda n: normalize_name(n) not in ("bucket", "key", "encoding")
)
any_values = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=15)


@st.composite
def imperative_specs(draw: st.DrawFn) -> tuple[str, PublisherSpec]:
    """An imperative spec in any of its forms, and the spec it must parse to."""
    type_name = draw(st.sampled_from(["s3", "S3", "local", "Local"]))
    key = draw(keys)
    if type_name.lower() == "s3":
        bucket = draw(plain)
        with_key = draw(st.booleans())
        destination = f"{bucket}/{key}" if with_key else bucket
        params: dict[str, str | bool] = {"Bucket": bucket, **({"Key": key} if with_key else {})}
    else:
        destination, params = key, {"Key": key}
    options = draw(
        st.dictionaries(
            option_names,
            any_values,
            max_size=4,
        ).filter(lambda o: len({normalize_name(n) for n in o}) == len(o))
    )
    uri = f"{type_name}://{destination}"
    fields = [
        f"{draw(spellings('opt') | spellings('option'))}={name}={value}"
        for name, value in options.items()
    ]
    fields = draw(st.permutations(fields))
    if draw(st.booleans()):
        target = draw(spellings("target") | spellings("dst") | spellings("destination"))
        at = draw(st.integers(0, len(fields)))
        fields = [type_name, *fields[:at], f"{target}={uri}", *fields[at:]]
    else:
        fields = [uri, *fields]
    return csv_record(fields), PublisherSpec(type_name, {**params, **options})


@given(imperative_specs())
def test_every_imperative_form_round_trips(case):
    """URI first or target=/dst=/destination= after a bare Type, opt=/option= in any case
    and order, any option values (CSV-quoted): parsing gives back the spec."""
    text, spec = case
    assert installed(text) == spec


IMPERATIVE_BITS = [
    "s3://", "local://", "b/k", "s3", "opt=", "option=", "target=", "dst=", '"', "=",
    "encoding=gzip", "compress=true", "region", "\n", " ", "",
]  # fmt: skip
imperative_looking = st.lists(st.sampled_from(IMPERATIVE_BITS), max_size=8).map(",".join)


@given(st.one_of(st.text(max_size=80), imperative_looking))
def test_any_text_parses_or_is_one_spec_error(text):
    """parse_imperative raises SpecError (or PluginError for an unknown Type), nothing else;
    what it does parse validates or names its problems the same way."""
    try:
        spec = installed(text)
    except (SpecError, PluginError) as error:
        assert str(error)
        return
    assert spec.type
    try:
        validate(spec)
    except SpecError as error:
        assert error.problems
    except PluginError as error:
        assert "unknown publisher type" in str(error)


buckets = st.from_regex(r"[a-z][a-z0-9]{2,20}", fullmatch=True)
booleans_as_written = st.sampled_from(["true", "false", "TRUE", "False", " true "])


@given(
    type_name=st.sampled_from(["s3", "local"]),
    bucket=buckets,
    key=st.one_of(keys, keys.map(lambda k: k + "/{jobID}")),
    archive=st.none() | st.booleans(),
    spelled=st.sampled_from(["bool", "string", "encoding"]),
    region=st.none() | st.sampled_from(["us-east-1", "eu-west-1"]),
    endpoint=st.none() | st.sampled_from(["http://127.0.0.1:9000", "https://s3.example.com"]),
    shape=st.sampled_from(["flat", "nested"]),
    fmt=st.sampled_from(["yaml", "json"]),
    data=st.data(),
)
def test_every_form_of_a_spec_validates_the_same(
    type_name, bucket, key, archive, spelled, region, endpoint, shape, fmt, data
):
    """The imperative form, a flat or nested YAML/JSON document and a Python mapping of one
    spec validate to the same typed parameters."""
    params: dict[str, object] = {"Key": key}
    options: dict[str, str] = {}
    if type_name == "s3":
        params["Bucket"] = bucket
        for name, value in (("Region", region), ("Endpoint", endpoint)):
            if value is not None:
                params[name] = options[name.lower()] = value
    if archive is not None:
        params["Compress"] = archive
        if spelled == "encoding":
            options["encoding"] = "gzip" if archive else "plain"
        else:
            written = data.draw(
                booleans_as_written.filter(lambda b: (b.strip().lower() == "true") == archive)
            )
            options["compress"] = written
            if spelled == "string":
                params["Compress"] = written
    destination = f"{bucket}/{key}" if type_name == "s3" else key
    text = csv_record(
        [f"{type_name}://{destination}"] + [f"opt={k}={v}" for k, v in options.items()]
    )
    doc = (
        {"Type": type_name, **params} if shape == "flat" else {"Type": type_name, "Params": params}
    )
    expected = validate(doc)
    assert validate(text) == expected
    assert validate(parse_document(dump_document(doc, fmt))) == expected
    assert expected.params.key == key
    assert getattr(expected.params, "archive", expected.params.compress) is bool(archive)
