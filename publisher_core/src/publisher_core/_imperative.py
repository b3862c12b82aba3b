"""The imperative spec form of Bacalhau's ``-p`` flag: one CSV record.

Field 1 is the destination (``s3://bucket/key`` or just a Type such as ``s3``); later
fields are ``opt=name=value`` / ``option=name=value``, or ``target=``, ``dst=`` or
``destination=`` followed by the destination. ``encoding=gzip|plain`` is Bacalhau's
current spelling of ``compress=true|false``. Unlike Bacalhau, an unknown option is an
error (reported when the parameters are validated).
"""

from __future__ import annotations

import csv
from collections.abc import Callable

from ._errors import SpecError, quoted
from ._models import PublisherSpec
from ._names import normalize_name

__all__ = ["looks_imperative", "parse_imperative"]

_OPTION_PREFIXES = ("opt=", "option=")
_TARGET_PREFIXES = ("target=", "dst=", "destination=")


def looks_imperative(text: str) -> bool:
    """Whether ``text`` reads as an imperative spec rather than a document or a path."""
    head = text.split(",", 1)[0]
    return "\n" not in text and ("://" in head or text.split(",", 1)[0].isidentifier())


def _split_destination(rest: str, names: tuple[str, ...]) -> dict[str, str]:
    if not names:
        if rest:
            raise SpecError(f"this publisher takes no destination path, got {quoted(rest)}")
        return {}
    parts = rest.split("/", len(names) - 1) if len(names) > 1 else [rest]
    return {name: value for name, value in zip(names, parts, strict=False) if value}


def parse_imperative(
    text: str,
    destination: Callable[[str], tuple[str, ...]] = lambda _type: ("Key",),
) -> PublisherSpec:
    """Parse ``text`` into a :class:`PublisherSpec`.

    ``destination(type)`` names the parameters that ``TYPE://A/B`` fills (the publisher's
    :attr:`PublisherInfo.destination`): ``("Bucket", "Key")`` puts ``A`` in Bucket and
    ``B`` in Key; ``("Key",)`` puts ``A/B`` in Key.
    """
    if not text.strip():
        raise SpecError("empty imperative spec; expected e.g. 's3://bucket/key'")
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise SpecError(f"not a valid CSV record ({exc}): {quoted(text)}") from None
    uri: str | None = None
    bare_type: str | None = None
    options: dict[str, str] = {}
    seen: dict[str, str] = {}
    problems: list[str] = []
    for index, field in enumerate(fields):
        lowered = field.lower()
        prefix = next((p for p in _OPTION_PREFIXES if lowered.startswith(p)), None)
        target = next((p for p in _TARGET_PREFIXES if lowered.startswith(p)), None)
        if prefix:
            name, sep, value = field[len(prefix) :].partition("=")
            if not sep or not name:
                problems.append(f"option {quoted(field)} must look like opt=NAME=VALUE")
                continue
            norm = normalize_name(name)
            if norm in seen:
                problems.append(f"option {quoted(name)} given twice (also as {quoted(seen[norm])})")
                continue
            seen[norm] = name
            options[name] = value
        elif target or index == 0:
            value = (field[len(target) :] if target else field).strip()
            if index == 0 and not target and "://" not in value:
                bare_type = value  # `s3,target=s3://b/k` or `s3,opt=bucket=b,...`
                continue
            if uri is not None:
                problems.append(f"destination given twice: {quoted(uri)} and {quoted(value)}")
                continue
            uri = value
        else:
            problems.append(
                f"unexpected field {quoted(field)}; expected opt=NAME=VALUE or target=URI"
            )
    if (
        uri is not None
        and bare_type is not None
        and not uri.lower().startswith(bare_type.lower() + "://")
    ):
        problems.append(f"destination {quoted(uri)} does not match the Type {quoted(bare_type)}")
    uri = uri or bare_type
    if not uri:
        problems.append("no destination; start with a URI like 's3://bucket/key' or a Type")
    if problems:
        raise SpecError(problems)
    assert uri is not None
    type_name, _, rest = uri.partition("://")
    if not type_name or not type_name.replace("-", "").replace("_", "").isalnum():
        raise SpecError(f"destination {quoted(uri)} must start with a publisher Type, e.g. 's3://'")
    params: dict[str, str | bool] = dict(_split_destination(rest, destination(type_name)))
    for name, value in options.items():
        norm = normalize_name(name)
        clash = next((k for k in params if normalize_name(k) == norm), None)
        if clash is not None:
            problems.append(f"{clash} given both in the destination and as option {quoted(name)}")
            continue
        params[name] = value
    if problems:
        raise SpecError(problems)
    return PublisherSpec(type=type_name, params=_apply_encoding(params))


def _apply_encoding(params: dict[str, str | bool]) -> dict[str, str | bool]:
    """Fold Bacalhau's ``encoding=gzip|plain`` into ``Compress``."""
    enc_name = next((k for k in params if normalize_name(k) == "encoding"), None)
    if enc_name is None:
        return params
    encoding = str(params.pop(enc_name)).strip().lower()
    if encoding not in ("gzip", "plain"):
        raise SpecError(f"encoding must be 'gzip' or 'plain', got {quoted(encoding)}")
    wanted = encoding == "gzip"
    comp_name = next((k for k in params if normalize_name(k) == "compress"), None)
    if comp_name is not None:
        given = str(params[comp_name]).strip().lower()
        if given in ("true", "false") and (given == "true") != wanted:
            raise SpecError(f"encoding={encoding} contradicts compress={given}; give one of them")
        return params
    params["Compress"] = wanted
    return params
