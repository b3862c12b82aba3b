"""What a publish asks S3 to apply to every object: encryption, storage class, tags, ACL...

The spec's parameters (and the operator's encryption defaults) become the arguments of
every PutObject and CreateMultipartUpload of a result, the manifest's included, and of the
requests helper processes send. ``ExpectedBucketOwner`` goes on every request that
accepts it, through a botocore event (see :func:`expect_bucket_owner`).

Tags and Metadata are mappings in YAML/JSON; in the imperative form (one CSV record) they
are written as S3 writes its ``x-amz-tagging`` header: ``k1=v1&k2=v2``, URL-encoded
(``+`` is a space, ``%2B`` a plus sign).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from publisher_core import converter, did_you_mean, quoted

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ._spec import S3Params, S3Settings

__all__ = [
    "ACLS",
    "ENCRYPTIONS",
    "KMS_ENCRYPTIONS",
    "STORAGE_CLASSES",
    "MetadataMap",
    "TagSet",
    "attribute_problems",
    "effective_encryption",
    "encode_pairs",
    "expect_bucket_owner",
    "kms_key_problem",
    "object_arguments",
    "parse_pairs",
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

_ACCOUNT = re.compile(r"[0-9]{12}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_MEDIA_TYPE = re.compile(
    r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;\s*[\x20-\x7e]*)?"
)
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


def effective_encryption(
    params: S3Params, settings: S3Settings
) -> tuple[str | None, str | None, bool | None]:
    """(ServerSideEncryption, SSEKMSKeyId, BucketKeyEnabled) a publish asks for.

    The spec's values, else the operator's defaults; the default key applies only to a
    KMS encryption, and BucketKeyEnabled only to ``aws:kms``.
    """
    sse = params.server_side_encryption or settings.server_side_encryption
    kms = sse in KMS_ENCRYPTIONS
    key = params.sse_kms_key_id or (settings.sse_kms_key_id if kms else None)
    bucket_key = params.bucket_key_enabled if sse == "aws:kms" else None
    return sse, key, bucket_key


def object_arguments(params: S3Params, settings: S3Settings) -> dict[str, Any]:
    """Arguments for every PutObject and CreateMultipartUpload of a result (JSON-safe).

    ContentType is not among them (it differs per object); nor is ExpectedBucketOwner,
    which :func:`expect_bucket_owner` adds to every request.
    """
    arguments: dict[str, Any] = {}
    sse, key, bucket_key = effective_encryption(params, settings)
    if sse:
        arguments["ServerSideEncryption"] = sse
    if key:
        arguments["SSEKMSKeyId"] = key
    if bucket_key is not None:
        arguments["BucketKeyEnabled"] = bucket_key
    if params.storage_class:
        arguments["StorageClass"] = params.storage_class
    if params.tags:
        arguments["Tagging"] = encode_pairs(params.tags)
    if params.metadata:
        arguments["Metadata"] = dict(params.metadata)
    if params.acl:
        arguments["ACL"] = params.acl
    if params.cache_control:
        arguments["CacheControl"] = params.cache_control
    return arguments


def expect_bucket_owner(client: S3Client, owner: str) -> None:
    """Send ``ExpectedBucketOwner`` on every request of ``client`` whose operation takes it.

    S3 then refuses the request (403) if the bucket belongs to another account, so a
    bucket name taken over by someone else never receives a result or a deletion.
    """

    def add(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ExpectedBucketOwner" in model.input_shape.members:
            params.setdefault("ExpectedBucketOwner", owner)

    client.meta.events.register("before-parameter-build.s3", add)


def _one_of(name: str, value: str, choices: tuple[str, ...], where: str) -> str | None:
    if value in choices:
        return None
    return (
        f"{name} {quoted(value)} is not one of {', '.join(choices)}"
        f"{did_you_mean(value, list(choices))} @ {where}"
    )


def _header_problem(name: str, value: str, where: str) -> str | None:
    """Problems of a value sent as an HTTP header: printable ASCII, no edge spaces."""
    bad = next((c for c in value if not " " <= c <= "~"), None)
    if bad is not None:
        return (
            f"{name} {quoted(value)} has {quoted(bad)}: a header value is printable ASCII @ {where}"
        )
    if value != value.strip():
        return f"{name} {quoted(value)} starts or ends with a space, which HTTP drops @ {where}"
    return None


def kms_key_problem(value: str, where: str) -> str | None:
    """Problems of a KMS key id, ARN or alias (``alias/name``)."""
    if not value or len(value) > MAX_KMS_KEY_ID or not all("!" <= c <= "~" for c in value):
        return (
            f"SSEKMSKeyId {quoted(value)} is not a KMS key id, key ARN or alias: 1-2048 "
            f"printable ASCII characters without spaces @ {where}"
        )
    return None


def _tag_problems(tags: TagSet) -> list[str]:
    where = "$.Params.Tags"
    problems = []
    if len(tags) > MAX_TAGS:
        problems.append(f"Tags has {len(tags)} tags; S3 allows at most {MAX_TAGS} @ {where}")
    for key, value in tags:
        if not key or len(key) > MAX_TAG_KEY:
            problems.append(
                f"tag key {quoted(key)} must be 1-{MAX_TAG_KEY} characters, "
                f"has {len(key)} @ {where}"
            )
        if len(value) > MAX_TAG_VALUE:
            problems.append(
                f"tag {quoted(key)} has a value of {len(value)} characters; S3 allows "
                f"{MAX_TAG_VALUE} @ {where}"
            )
        for text, what in ((key, "key"), (value, "value")):
            bad = next((c for c in text if not _tag_char_ok(c)), None)
            if bad is not None:
                problems.append(
                    f"tag {what} {quoted(text)} has {quoted(bad)}; S3 allows letters, digits, "
                    f"spaces and + - = . _ : / @ @ {where}"
                )
        if key.lower().startswith("aws:"):
            problems.append(f"tag key {quoted(key)} uses the prefix 'aws:' S3 reserves @ {where}")
    return problems


def _metadata_problems(metadata: MetadataMap) -> list[str]:
    where = "$.Params.Metadata"
    problems = []
    seen: dict[str, str] = {}
    for name, value in metadata:
        if not _TOKEN.fullmatch(name):
            problems.append(
                f"metadata name {quoted(name)} is not an HTTP header token: letters, digits "
                f"and !#$%&'*+-.^_`|~ @ {where}"
            )
        elif name.lower() in seen:
            problems.append(
                f"metadata names {quoted(seen[name.lower()])} and {quoted(name)} are the same "
                f"header (S3 stores names in lower case) @ {where}"
            )
        seen.setdefault(name.lower(), name)
        problem = _header_problem(f"metadata {quoted(name)} value", value, where)
        if problem:
            problems.append(problem)
    size = sum(len(n.encode()) + len(v.encode()) for n, v in metadata)
    if size > MAX_METADATA_BYTES:
        problems.append(
            f"Metadata is {size} bytes (names and values); S3 allows {MAX_METADATA_BYTES} @ {where}"
        )
    return problems


_SSE_C = (
    "SSE-C (customer-provided keys) is not supported: every GET would need the key, "
    "so describe's pre-signed URLs and a credential-free get could not read the result; "
    "use ServerSideEncryption 'aws:kms' or 'AES256'"
)


def attribute_problems(params: S3Params, settings: S3Settings) -> list[str]:
    """Every problem of the object attributes of an S3 spec, the operator's defaults applied."""
    problems: list[str] = []
    for name, value in (
        ("SSECustomerAlgorithm", params.sse_customer_algorithm),
        ("SSECustomerKey", params.sse_customer_key),
        ("SSECustomerKeyMD5", params.sse_customer_key_md5),
    ):
        if value is not None:  # never quoted: it may be the key
            problems.append(f"{_SSE_C} @ $.Params.{name}")
    if params.server_side_encryption is not None:
        problem = _one_of(
            "ServerSideEncryption",
            params.server_side_encryption,
            ENCRYPTIONS,
            "$.Params.ServerSideEncryption",
        )
        if problem:
            problems.append(problem)
    sse, _, _ = effective_encryption(params, settings)
    if params.sse_kms_key_id is not None:
        problem = kms_key_problem(params.sse_kms_key_id, "$.Params.SSEKMSKeyId")
        if problem:
            problems.append(problem)
        elif sse not in KMS_ENCRYPTIONS:
            problems.append(
                "SSEKMSKeyId needs ServerSideEncryption 'aws:kms' or 'aws:kms:dsse', "
                f"got {quoted(sse) if sse else 'none'} @ $.Params.SSEKMSKeyId"
            )
    if params.bucket_key_enabled and sse != "aws:kms":
        problems.append(
            "BucketKeyEnabled: true needs ServerSideEncryption 'aws:kms', got "
            f"{quoted(sse) if sse else 'none'} @ $.Params.BucketKeyEnabled"
        )
    if settings.require_encryption and not sse:
        problems.append(
            "ServerSideEncryption is required (PUBLISHER_S3_REQUIRE_ENCRYPTION is true): add "
            "ServerSideEncryption 'AES256' or 'aws:kms' to the spec, or set the default "
            "PUBLISHER_S3_SERVER_SIDE_ENCRYPTION @ $.Params.ServerSideEncryption"
        )
    if params.storage_class is not None:
        where = "$.Params.StorageClass"
        problem = _one_of("StorageClass", params.storage_class, STORAGE_CLASSES, where)
        if problem:
            problems.append(problem)
        elif params.storage_class in NEEDS_RESTORE:
            problems.append(
                f"StorageClass {quoted(params.storage_class)} objects cannot be read until "
                "restored, so describe and get would fail; use 'GLACIER_IR' (instant "
                f"retrieval), or move results later with a lifecycle rule @ {where}"
            )
    if params.acl is not None:
        problem = _one_of("ACL", params.acl, ACLS, "$.Params.ACL")
        if problem:
            problems.append(problem)
    owner = params.expected_bucket_owner
    if owner is not None and not (owner.isascii() and _ACCOUNT.fullmatch(owner)):
        problems.append(
            f"ExpectedBucketOwner {quoted(owner)} is not an AWS account id (12 digits, "
            "such as '123456789012') @ $.Params.ExpectedBucketOwner"
        )
    if params.cache_control is not None:
        problem = _header_problem("CacheControl", params.cache_control, "$.Params.CacheControl")
        if problem:
            problems.append(problem)
    if params.content_type is not None:
        where = "$.Params.ContentType"
        if not params.archive:
            problems.append(
                "ContentType applies to archive mode (Compress: true) only; in directory "
                f"mode each file's type is guessed from its name @ {where}"
            )
        elif not (params.content_type.isascii() and _MEDIA_TYPE.fullmatch(params.content_type)):
            problems.append(
                f"ContentType {quoted(params.content_type)} is not a media type such as "
                f"'application/gzip' @ {where}"
            )
    if params.tags is not None:
        problems += _tag_problems(params.tags)
    if params.metadata is not None:
        problems += _metadata_problems(params.metadata)
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
        problem = kms_key_problem(value, "PUBLISHER_S3_SSE_KMS_KEY_ID")
        if problem:
            raise ValueError(problem)
