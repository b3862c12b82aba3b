"""Values of S3 parameters and settings that S3 constrains, each checked on its own.

Canned names (encryptions, storage classes, ACLs) and S3's limits; tag sets and user
metadata, which are mappings in YAML/JSON and, in the imperative form (one CSV record),
written as S3 writes its ``x-amz-tagging`` header: ``k1=v1&k2=v2``, URL-encoded (``+`` is
a space, ``%2B`` a plus sign); and the checks of one value (one of the names, a header
value, a KMS key id, a tag set, a metadata map), each a :class:`~publisher_core.Problem`
at the place it is given. ``_spec`` types its fields with these; ``_attributes`` applies
them to a whole spec.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote

from publisher_core import Problem, converter, did_you_mean, quoted

__all__ = [
    "ACLS",
    "ENCRYPTIONS",
    "KMS_ENCRYPTIONS",
    "NEEDS_RESTORE",
    "STORAGE_CLASSES",
    "MetadataMap",
    "TagSet",
    "encode_pairs",
    "header_problem",
    "kms_key_problem",
    "metadata_problems",
    "one_of",
    "parse_pairs",
    "tag_problems",
    "unset_if_empty",
    "valid_encryption_setting",
    "valid_kms_key_setting",
]

ENCRYPTIONS = ("AES256", "aws:kms", "aws:kms:dsse")
KMS_ENCRYPTIONS = ("aws:kms", "aws:kms:dsse")
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
)
NEEDS_RESTORE = ("GLACIER", "DEEP_ARCHIVE")
"""Storage classes whose objects cannot be read before a restore: ``get`` would fail."""
ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_METADATA_BYTES = 2048
MAX_KMS_KEY_ID = 2048

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _tag_char_ok(char: str) -> bool:
    """S3's tag alphabet: letters, digits and spaces in any script, and ``+ - = . _ : / @``."""
    return char.isalnum() or char == " " or char in "+-=._:/@"


class TagSet(tuple[tuple[str, str], ...]):
    """Object tags, (key, value) pairs in the order given; keys are unique."""

    __slots__ = ()


class MetadataMap(tuple[tuple[str, str], ...]):
    """User metadata, (name, value) pairs sent as ``x-amz-meta-NAME`` headers."""

    __slots__ = ()


def _unquoted(text: str, what: str) -> str:
    if _PERCENT.search(text):
        raise ValueError(f"{what} {quoted(text)} has a '%' not followed by two hex digits")
    try:
        return unquote(text.replace("+", " "), errors="strict")
    except UnicodeDecodeError:
        raise ValueError(
            f"{what} {quoted(text)} percent-encodes bytes that are not UTF-8"
        ) from None


def parse_pairs(text: str, what: str = "tag") -> list[tuple[str, str]]:
    """``k1=v1&k2=v2`` (URL-encoded, as S3's ``x-amz-tagging`` header) as pairs, in order.

    An empty string is no pairs. Every item needs a ``=``; a value may hold more (only the
    first separates). ``+`` is a space, ``%2B`` a plus. A key given twice is an error.
    """
    if text == "":
        return []
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in text.split("&"):
        name, separator, value = item.partition("=")
        if not separator:
            raise ValueError(
                f"{what} {quoted(item)} has no '='; write KEY=VALUE, items joined by '&'"
            )
        key = _unquoted(name, f"{what} key")
        if key in seen:
            raise ValueError(f"{what} key {quoted(key)} is given twice")
        seen.add(key)
        pairs.append((key, _unquoted(value, f"{what} value")))
    return pairs


def encode_pairs(pairs: Iterable[tuple[str, str]]) -> str:
    """The ``k1=v1&k2=v2`` form of ``pairs``, every special character percent-encoded."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def _structure_pairs(value: Any, what: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return parse_pairs(value, what)
    if not isinstance(value, Mapping):
        raise ValueError(
            f"expected a mapping of {what} keys to values (or 'k1=v1&k2=v2'), "
            f"got {type(value).__name__} {quoted(value)}"
        )
    pairs = []
    for name, item in value.items():
        if item is None or isinstance(item, bool):
            raise ValueError(
                f"{what} {quoted(name)} needs a string value, got {quoted(item)} "
                "(write '' for an empty one)"
            )
        pairs.append((converter.structure(name, str), converter.structure(item, str)))
    return pairs


converter.register_structure_hook(TagSet, lambda v, _: TagSet(_structure_pairs(v, "tag")))
converter.register_structure_hook(
    MetadataMap, lambda v, _: MetadataMap(_structure_pairs(v, "metadata"))
)
converter.register_unstructure_hook(TagSet, dict)
converter.register_unstructure_hook(MetadataMap, dict)


def one_of(name: str, value: str, choices: tuple[str, ...], where: str) -> Problem | None:
    """The problem of ``value`` (given as ``name``) if not one of ``choices``, at ``where``."""
    if value in choices:
        return None
    return Problem(
        where,
        f"{name} {quoted(value)} is not one of {', '.join(choices)}"
        f"{did_you_mean(value, list(choices))}",
    )


def header_problem(name: str, value: str, where: str) -> Problem | None:
    """Problems of a value sent as an HTTP header: printable ASCII, no edge spaces."""
    bad = next((c for c in value if not " " <= c <= "~"), None)
    if bad is not None:
        return Problem(
            where, f"{name} {quoted(value)} has {quoted(bad)}: a header value is printable ASCII"
        )
    if value != value.strip():
        return Problem(
            where, f"{name} {quoted(value)} starts or ends with a space, which HTTP drops"
        )
    return None


def kms_key_problem(value: str, where: str | None, name: str = "SSEKMSKeyId") -> Problem | None:
    """Problems of a KMS key id, ARN or alias (``alias/name``) given as ``name``, at ``where``."""
    if not value or len(value) > MAX_KMS_KEY_ID or not all("!" <= c <= "~" for c in value):
        return Problem(
            where,
            f"{name} {quoted(value)} is not a KMS key id, key ARN or alias: 1-2048 "
            "printable ASCII characters without spaces",
        )
    return None


def tag_problems(tags: TagSet) -> list[Problem]:
    """Every way ``tags`` break S3's limits (count, lengths, alphabet, ``aws:``), at Tags."""
    where = "$.Params.Tags"
    problems = []
    if len(tags) > MAX_TAGS:
        problems.append(Problem(where, f"Tags has {len(tags)} tags; S3 allows at most {MAX_TAGS}"))
    for key, value in tags:
        if not key or len(key) > MAX_TAG_KEY:
            problems.append(
                Problem(
                    where,
                    f"tag key {quoted(key)} must be 1-{MAX_TAG_KEY} characters, has {len(key)}",
                )
            )
        if len(value) > MAX_TAG_VALUE:
            problems.append(
                Problem(
                    where,
                    f"tag {quoted(key)} has a value of {len(value)} characters; S3 allows "
                    f"{MAX_TAG_VALUE}",
                )
            )
        for text, what in ((key, "key"), (value, "value")):
            bad = next((c for c in text if not _tag_char_ok(c)), None)
            if bad is not None:
                problems.append(
                    Problem(
                        where,
                        f"tag {what} {quoted(text)} has {quoted(bad)}; S3 allows letters, digits, "
                        "spaces and + - = . _ : / @",
                    )
                )
        if key.lower().startswith("aws:"):
            problems.append(
                Problem(where, f"tag key {quoted(key)} uses the prefix 'aws:' S3 reserves")
            )
    return problems


def metadata_problems(metadata: MetadataMap) -> list[Problem]:
    """Every way ``metadata`` breaks S3's rules (names, values, total size), at Metadata."""
    where = "$.Params.Metadata"
    problems = []
    seen: dict[str, str] = {}
    for name, value in metadata:
        if not _TOKEN.fullmatch(name):
            problems.append(
                Problem(
                    where,
                    f"metadata name {quoted(name)} is not an HTTP header token: letters, digits "
                    "and !#$%&'*+-.^_`|~",
                )
            )
        elif name.lower() in seen:
            problems.append(
                Problem(
                    where,
                    f"metadata names {quoted(seen[name.lower()])} and {quoted(name)} are the same "
                    "header (S3 stores names in lower case)",
                )
            )
        seen.setdefault(name.lower(), name)
        problem = header_problem(f"metadata {quoted(name)} value", value, where)
        if problem:
            problems.append(problem)
    size = sum(len(n.encode()) + len(v.encode()) for n, v in metadata)
    if size > MAX_METADATA_BYTES:
        problems.append(
            Problem(
                where,
                f"Metadata is {size} bytes (names and values); S3 allows {MAX_METADATA_BYTES}",
            )
        )
    return problems


def unset_if_empty(value: str | None) -> str | None:
    """An empty value is no value: ``PUBLISHER_S3_SERVER_SIDE_ENCRYPTION=``, ``Endpoint: ""``."""
    return value if value else None


def valid_encryption_setting(_: object, _attribute: Any, value: str | None) -> None:
    """Refuse an operator's default encryption S3 does not know."""
    if value is not None and value not in ENCRYPTIONS:
        raise ValueError(
            f"PUBLISHER_S3_SERVER_SIDE_ENCRYPTION {quoted(value)} is not one of "
            f"{', '.join(ENCRYPTIONS)}{did_you_mean(value, list(ENCRYPTIONS))}"
        )


def valid_kms_key_setting(_: object, _attribute: Any, value: str | None) -> None:
    """Refuse an operator's default KMS key that is not a key id, ARN or alias."""
    if value is not None:
        # The settings loader places the problem at the variable; the message names it too.
        problem = kms_key_problem(value, None, name="PUBLISHER_S3_SSE_KMS_KEY_ID")
        if problem:
            raise ValueError(problem.message)
