"""YAML/JSON documents in and out: specs (both shapes), published results, descriptions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import yaml

from ._convert import (
    converter,
    field_path,
    structure_params,
    unicode_problem,
    unstructure_params,
)
from ._errors import Problem, SpecError, quoted, summarize
from ._models import DownloadItem, PublishedResult, PublisherSpec, ResultDescription
from ._names import KnownNames, normalize_name

__all__ = [
    "description_from_document",
    "description_to_document",
    "dump_document",
    "parse_document",
    "result_from_document",
    "result_to_document",
    "spec_from_document",
    "spec_to_document",
]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


ALIAS_FACTOR = 10
"""A document's aliases may expand it to this many values per node it has (see below)."""

ALIAS_FLOOR = 10_000
"""...and to this many values in any case."""


class _AliasBombError(ValueError):
    """Aliases expand a document far beyond its size (or make it contain itself)."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def check_aliases(root: yaml.Node) -> None:
    """Refuse a composed document whose aliases expand it too far or make it contain itself.

    Every scalar, sequence and mapping counts as one value each time it appears once
    aliases are expanded. The count is memoised per node, so it costs one visit of each
    distinct node; a document may expand to ``max(ALIAS_FACTOR * nodes, ALIAS_FLOOR)``
    values, which merge keys (``<<: *defaults``) and ordinary reuse stay well within.
    """
    cap = 1 << 62  # counts stop growing here; far above any bound
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        ident = id(node)
        if finished:
            open_nodes.discard(ident)
            sizes[ident] = min(cap, 1 + sum(sizes[id(child)] for child in _children(node)))
        elif ident in open_nodes:
            raise _AliasBombError("YAML aliases make this document contain itself")
        elif ident not in sizes:
            open_nodes.add(ident)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    limit = max(ALIAS_FACTOR * len(sizes), ALIAS_FLOOR)
    if sizes[id(root)] > limit:
        raise _AliasBombError(
            f"YAML aliases expand this document to more than {limit} values; write the values out"
        )


class _StrictLoader(_Loader):  # type: ignore[valid-type,misc]
    """A safe loader for specs and results.

    It refuses duplicate keys instead of keeping the last one, and resolves plain scalars
    as YAML 1.2 would for our purposes: only ``true``/``false`` are bools and ``null``/``~``
    null; everything else stays a string (``yes`` is not a bool, ``0755`` not an octal
    int, ``2023-09-26`` not a date), and the converter types it strictly. Aliases may not
    expand a document far beyond its size (:func:`check_aliases`).
    """

    def construct_document(self, node: yaml.Node) -> Any:
        # Called with the composed node graph, by the pure-Python and the C loader alike:
        # an alias is the same node object referenced twice.
        check_aliases(node)
        return super().construct_document(node)


_KEEP_TAGS = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag in _KEEP_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    own: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in own:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {quoted(key)} on line {line}", key_node.start_mark
            )
        own[key] = None
    loader.flatten_mapping(node)  # merged pairs first, then the mapping's own
    merged = len(node.value) - len(own)
    result: dict[Any, Any] = {}
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if index < merged and key in result:
            continue  # of merged mappings, the first given wins; the mapping's own keys win
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


class _DuplicateKeyError(ValueError):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"duplicate key {quoted(key)} in a JSON object")
        result[key] = value
    return result


_PROBLEM_LIMIT = 200
"""Characters of a reader's own message an error keeps."""


def _problem(exc: object) -> str:
    """A reader's message on one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _PROBLEM_LIMIT else text[:_PROBLEM_LIMIT] + "..."


# What PyYAML's constructors (explicit tags such as ``!!int x``, unhashable keys such as
# ``[a]: b``) and ``json`` (an integer of 5000 digits) raise outside their own errors.
_VALUE_ERRORS = (ValueError, TypeError, IndexError, AttributeError, OverflowError)


def parse_document(text: str, *, what: str = "spec") -> Any:
    """Parse YAML or JSON text (JSON is tried first when it looks like JSON).

    Anything the text cannot be turned into raises :class:`SpecError`, whatever the
    reader's own exception was; the error names the reader (YAML or JSON) that failed.
    """
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(text, object_pairs_hook=_unique_object)
        except _DuplicateKeyError as exc:
            raise SpecError(str(exc), what=what) from None
        except json.JSONDecodeError as exc:
            if stripped.startswith("["):
                raise SpecError(
                    f"JSON syntax error at line {exc.lineno}, column {exc.colno}: "
                    f"{_problem(exc.msg)}",
                    what=what,
                ) from None
            # '{Type: s3}' is a YAML flow mapping: read it as YAML below.
        except RecursionError:
            raise SpecError("the document is nested too deeply", what=what) from None
        except _VALUE_ERRORS as exc:
            raise SpecError(f"JSON value cannot be read: {_problem(exc)}", what=what) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _AliasBombError as exc:
        raise SpecError(str(exc), what=what) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"YAML syntax error{where}: {_problem(problem)}", what=what) from None
    except RecursionError:
        raise SpecError("the document is nested too deeply", what=what) from None
    except _VALUE_ERRORS as exc:
        raise SpecError(f"YAML value cannot be read: {_problem(exc)}", what=what) from None


def _names(names: Iterable[str], shown: int = 5) -> str:
    """Up to ``shown`` of ``names``, sorted and each bounded, for a message."""
    return summarize([quoted(name, 40) for name in sorted(names)], shown, separator=", ")


_SHAPE_FIELDS = KnownNames(["Type", "Params"])
_DESCRIPTION_FIELDS = KnownNames(["Type", "Name", "Items", "Directories"])


def _split_shape(doc: Any, what: str) -> tuple[str, Mapping[str, Any]]:
    """``(Type, params)`` from a flat or ``{Type, Params}`` document."""
    if not isinstance(doc, Mapping):
        shown = "an empty document" if doc is None else f"{type(doc).__name__} {quoted(doc)}"
        raise SpecError(
            Problem("$", f"expected a mapping with a Type (e.g. 'Type: s3'), got {shown}"),
            what=what,
        )
    problems: list[Problem] = []
    type_value: Any = None
    params: Any = None
    flat: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in doc.items():
        if not isinstance(key, str):
            problems.append(Problem("$", f"keys must be strings, got {quoted(key)}"))
            continue
        field = _SHAPE_FIELDS.match(key)
        if field is None:
            flat[key] = value
            continue
        if field in seen:
            problems.append(
                Problem(
                    field_path("$", key),
                    f"{quoted(key)} given twice (also as {quoted(seen[field])})",
                )
            )
            continue
        seen[field] = key
        if field == "Type":
            type_value = value
        else:
            params = value
    if type_value is None:
        problems.append(Problem("$", "missing required field 'Type'"))
    elif not isinstance(type_value, str) or not type_value.strip():
        problems.append(
            Problem(
                "$.Type", f"Type must be a publisher name such as 's3', got {quoted(type_value)}"
            )
        )
    elif (problem := unicode_problem(type_value)) is not None:
        problems.append(Problem("$.Type", f"Type {quoted(type_value)} {problem}"))
    if params is not None and flat:
        problems.append(
            Problem(
                "$",
                f"parameters given both under Params and at the top level ({_names(flat)}); "
                "use one shape",
            )
        )
    if params is not None and not isinstance(params, Mapping):
        problems.append(Problem("$.Params", f"Params must be a mapping, got {quoted(params)}"))
    if problems:
        raise SpecError(problems, what=what)
    chosen = params if params is not None else flat
    return str(type_value).strip(), dict(chosen)


def spec_from_document(doc: Any) -> PublisherSpec:
    """A :class:`PublisherSpec` from a parsed document of either shape."""
    type_name, params = _split_shape(doc, "spec")
    return PublisherSpec(type=type_name, params=params)


def spec_to_document(spec: PublisherSpec) -> dict[str, Any]:
    """The nested ``{Type, Params}`` document of a spec."""
    return {"Type": spec.type, "Params": dict(spec.params)}


def result_from_document(doc: Any) -> PublishedResult:
    """A :class:`PublishedResult` from a parsed document of either shape."""
    type_name, params = _split_shape(doc, "result")
    return PublishedResult(type=type_name, params=params)


def result_to_document(result: PublishedResult) -> dict[str, Any]:
    """The canonical ``{Type, Params}`` document of a published result."""
    return {"Type": result.type, "Params": dict(result.params)}


def description_to_document(description: ResultDescription) -> dict[str, Any]:
    """The ``describe --json`` document: ``{Type, Name, Items, Directories}``."""
    return {
        "Type": description.type,
        "Name": description.name,
        "Items": [unstructure_params(item) for item in description.items],
        "Directories": list(description.directories),
    }


def description_from_document(doc: Any) -> ResultDescription:
    """A :class:`ResultDescription` from the output of ``publisher describe --json``."""
    what = "description"
    if not isinstance(doc, Mapping):
        raise SpecError(
            Problem("$", f"expected a mapping with Items, got {quoted(doc)}"), what=what
        )
    given: dict[str, Any] = {}
    unknown: dict[str, str] = {}  # one report per field, however many spellings it has
    for key, value in doc.items():
        field = _DESCRIPTION_FIELDS.match(str(key))
        if field is None:
            unknown[normalize_name(str(key))] = str(key)
        else:
            given[field] = value
    hint = f"; known: {', '.join(_DESCRIPTION_FIELDS.names)}"
    problems = [
        Problem(field_path("$", k), f"unknown field {quoted(k)}", hint)
        for k in sorted(unknown.values())
    ]
    raw_items = given.get("Items")
    if not isinstance(raw_items, list):
        problems.append(Problem("$.Items", f"Items must be a list, got {quoted(raw_items)}"))
        raw_items = []
    items: list[DownloadItem] = []
    for index, raw in enumerate(raw_items):
        try:
            items.append(structure_params(raw, DownloadItem, path=f"$.Items[{index}]", what=what))
        except SpecError as exc:
            problems.extend(exc.details)
    try:
        directories = converter.structure(given.get("Directories") or [], tuple[str, ...])
    except Exception:
        problems.append(Problem("$.Directories", "Directories must be a list of relative paths"))
        directories = ()
    type_name = given.get("Type")
    name = given.get("Name")
    for label, value in (("Type", type_name), ("Name", name)):
        if not isinstance(value, str) or not value:
            problems.append(
                Problem(f"$.{label}", f"{label} must be a non-empty string, got {quoted(value)}")
            )
        elif (problem := unicode_problem(value)) is not None:
            problems.append(Problem(f"$.{label}", f"{label} {quoted(value)} {problem}"))
    if problems:
        raise SpecError(problems, what=what)
    return ResultDescription(
        type=str(type_name), name=str(name), items=tuple(items), directories=directories
    )


def dump_document(doc: Any, fmt: Literal["yaml", "json"]) -> str:
    """Serialise a document as YAML (block style, key order kept) or indented JSON."""
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
