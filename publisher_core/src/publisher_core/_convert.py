"""The cattrs converter: typed parameters from loose documents, canonical output back.

Parameter names follow one rule both ways: an attrs field ``checksum_sha256`` is the
parameter ``ChecksumSHA256`` (acronyms upper-cased), and reading matches names
case-insensitively, ignoring ``_`` and ``-``. Values are strict: a bool is ``true`` or
``false`` (any case, as bool or string), an int is an int or a string of digits.
Every problem is collected and reported at once, each with its path.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar, cast

import attrs
import cattrs
from cattrs.v import format_exception as _cattrs_format_exception

from ._errors import Problem, SpecError, quoted
from ._names import KnownNames, did_you_mean, normalize_name

__all__ = [  # did_you_mean and normalize_name live in _names, importable from here as before
    "capital_name",
    "converter",
    "did_you_mean",
    "field_path",
    "normalize_name",
    "structure_params",
    "unicode_problem",
    "unstructure_params",
]

T = TypeVar("T")

_ACRONYMS = {
    "id": "ID",
    "sha256": "SHA256",
    "url": "URL",
    "uri": "URI",
    "md5": "MD5",
    "acl": "ACL",
    "kms": "KMS",
    "sse": "SSE",
}
_INT_RE = re.compile(r"[+-]?\d+")


def attrs_fields(cls: type[Any]) -> tuple[attrs.Attribute[Any], ...]:
    """The attrs fields of ``cls``, which must be an attrs class."""
    return tuple(attrs.fields(cast("type[attrs.AttrsInstance]", cls)))


@functools.cache  # per field of every manifest entry read or written: 20,000 in B0
def capital_name(field_name: str) -> str:
    """The canonical parameter name of an attrs field: ``version_id`` -> ``VersionID``."""
    return "".join(
        _ACRONYMS.get(part, part[:1].upper() + part[1:]) for part in field_name.split("_")
    )


_PATH_NAME_LIMIT = 40


def field_path(path: str, name: str) -> str:
    """``path.name``, or ``path['name...']`` when the name is long or not printable."""
    if len(name) <= _PATH_NAME_LIMIT and name.isprintable() and unicode_problem(name) is None:
        return f"{path}.{name}"
    return f"{path}[{quoted(name, _PATH_NAME_LIMIT)}]"


def unicode_problem(text: str) -> str | None:
    """Why ``text`` is not valid Unicode (it holds a lone surrogate), or ``None``.

    Such text cannot be encoded as UTF-8: not in a key, a file name, a URL or a result.
    """
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"is not valid Unicode (its lone surrogate {quoted(text[exc.start])} at "
            f"position {exc.start} cannot be encoded as UTF-8)"
        )
    return None


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected true or false, got {quoted(value)}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value.strip())
    raise ValueError(f"expected an integer, got {quoted(value)}")


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        problem = unicode_problem(value)
        if problem is not None:
            raise ValueError(f"text {quoted(value)} {problem}")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # YAML reads `Key: 2024` as an int; the user meant the text.
    raise ValueError(f"expected a string, got {type(value).__name__} {quoted(value)}")


def _structure_path(value: Any, _: type) -> Path:
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and value:
        return Path(value).expanduser()
    raise ValueError(f"expected a path, got {quoted(value)}")


def _structure_datetime(value: Any, _: type) -> datetime:
    parsed: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed is None:
        raise ValueError(f"expected an ISO 8601 date-time, got {quoted(value)}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"date-time {quoted(value)} needs a time zone, e.g. a trailing Z for UTC")
    return parsed.astimezone(timezone.utc)


def _unstructure_datetime(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(Path, _structure_path)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_unstructure_hook(Path, str)
    conv.register_unstructure_hook(datetime, _unstructure_datetime)
    return conv


converter: cattrs.Converter = _make_converter()
"""The shared converter; plugins may register hooks for their own value types on it."""


_PROBLEM_LIMIT = 300
"""Characters of one problem's text an error keeps, whoever wrote the text."""


def _format_problem(exc: BaseException) -> str:
    if isinstance(exc, (ValueError, TypeError)):
        text = " ".join(str(exc).split())
    else:
        text = " ".join(_cattrs_format_exception(exc, None).split())
    return text if len(text) <= _PROBLEM_LIMIT else text[:_PROBLEM_LIMIT] + "..."


@functools.cache
def _resolved_types(cls: Any) -> dict[str, Any]:
    """Field name -> type, with string annotations resolved."""
    attrs.resolve_types(cls)
    return {f.name: f.type for f in attrs_fields(cls)}


@functools.cache  # a manifest of 20,000 files structures ManifestFile 20,000 times
def _names_of(cls: Any) -> tuple[dict[str, str], dict[str, str], KnownNames]:
    """Field name -> CapitalName, its inverse, and the names a user may write, of ``cls``."""
    fields = {f.name: capital_name(f.name) for f in attrs_fields(cls)}
    capitals = {capital: name for name, capital in fields.items()}
    return fields, capitals, KnownNames(capitals)


def structure_params(
    data: Any,
    cls: type[T],
    *,
    path: str = "$.Params",
    what: str = "spec",
    extra_problems: Iterable[str | Problem] | None = None,
    where: Callable[[str], str] | None = None,
) -> T:
    """Build ``cls`` (an attrs class) from a mapping of loosely written parameters.

    Raises :class:`SpecError` listing every unknown, duplicated, missing or ill-typed
    parameter, each with its path under ``path``. ``extra_problems`` (found by the caller
    beforehand) are reported in the same error. ``where`` maps a field name to the place
    a problem with it is reported at (default ``{path}.{CapitalName}``).
    """
    problems: list[str | Problem] = list(extra_problems or [])
    if not isinstance(data, Mapping):
        problems.append(Problem(path, f"expected a mapping of parameters, got {quoted(data)}"))
        raise SpecError(problems, what=what)
    fields, capitals, known = _names_of(cast("Hashable", cls))
    field_types = _resolved_types(cast("Hashable", cls))
    locate = where or (lambda name: f"{path}.{fields[name]}")
    seen: dict[str, str] = {}
    values: dict[str, Any] = {}
    for raw_name, value in data.items():
        name = str(raw_name)
        capital = known.match(name)
        if capital is None:
            problems.append(
                Problem(
                    field_path(path, name), f"unknown parameter {quoted(name)}", known.unknown(name)
                )
            )
            continue
        field_name = capitals[capital]
        if field_name in seen:
            problems.append(
                Problem(
                    field_path(path, name),
                    f"parameter {quoted(fields[field_name])} given twice (as "
                    f"{quoted(seen[field_name])} and {quoted(name)})",
                )
            )
            continue
        seen[field_name] = name
        if value is None:
            continue  # an explicit null means "not given"
        try:  # field by field, so every ill-typed value is reported with the rest
            values[field_name] = converter.structure(value, field_types[field_name])
        except Exception as exc:
            problems.append(Problem(locate(field_name), _format_problem(exc)))
    for field in attrs_fields(cls):
        if field.default is attrs.NOTHING and field.name not in seen:
            problems.append(
                Problem(path, f"missing required parameter {quoted(fields[field.name])}")
            )
        elif field.name in values and field.validator is not None:
            problem = _validated(field, values[field.name], locate(field.name))
            if problem is not None:
                problems.append(problem)
    if problems:
        raise SpecError(problems, what=what)
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:  # raised by an attrs validator
        raise SpecError(Problem(path, _format_problem(exc)), what=what) from None


def _validated(field: attrs.Attribute[Any], value: Any, place: str) -> Problem | None:
    """What ``field``'s attrs validator says of ``value`` (after its converter), at ``place``.

    Run field by field, so that every out-of-range value is reported with the rest and
    at its own place (a setting's variable), not only the first one the class meets. A
    validator that needs the whole instance is left to the class itself.
    """
    try:
        if callable(field.converter):
            value = field.converter(value)
        assert field.validator is not None
        field.validator(None, field, value)
    except (ValueError, TypeError) as exc:
        return Problem(place, _format_problem(exc))
    except Exception:  # a validator that needs the instance: the class checks it below
        return None
    return None


def unstructure_params(obj: Any) -> dict[str, Any]:
    """The canonical CapitalCase mapping of an attrs instance; ``None`` fields are left out."""
    raw: dict[str, Any] = converter.unstructure(obj)
    return {capital_name(k): v for k, v in raw.items() if v is not None}
