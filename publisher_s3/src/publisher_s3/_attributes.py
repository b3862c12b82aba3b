"""What a publish asks S3 to apply to every object: encryption, storage class, tags, ACL...

The spec's parameters (and the operator's encryption defaults) become the arguments of
every PutObject and CreateMultipartUpload of a result, the manifest's included, and of the
requests helper processes send. ``ExpectedBucketOwner`` goes on every request that
accepts it, through a botocore event (see :func:`expect_bucket_owner`). Each value is
checked on its own in ``_values``; :func:`attribute_problems` checks them together.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from publisher_core import Problem, quoted

from ._values import (
    ACLS,
    ENCRYPTIONS,
    KMS_ENCRYPTIONS,
    NEEDS_RESTORE,
    STORAGE_CLASSES,
    encode_pairs,
    header_problem,
    kms_key_problem,
    metadata_problems,
    one_of,
    tag_problems,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ._spec import S3Params, S3Settings

__all__ = [
    "attribute_problems",
    "effective_encryption",
    "expect_bucket_owner",
    "object_arguments",
]

_ACCOUNT = re.compile(r"[0-9]{12}")
_MEDIA_TYPE = re.compile(
    r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;\s*[\x20-\x7e]*)?"
)


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


_SSE_C = (
    "SSE-C (customer-provided keys) is not supported: every GET would need the key, "
    "so describe's pre-signed URLs and a credential-free get could not read the result; "
    "use ServerSideEncryption 'aws:kms' or 'AES256'"
)


def attribute_problems(params: S3Params, settings: S3Settings) -> list[Problem]:
    """Every problem of the object attributes of an S3 spec, the operator's defaults applied.

    Each is a :class:`~publisher_core.Problem` at its parameter (``$.Params.ACL``...).
    """
    problems: list[Problem] = []
    for name, value in (
        ("SSECustomerAlgorithm", params.sse_customer_algorithm),
        ("SSECustomerKey", params.sse_customer_key),
        ("SSECustomerKeyMD5", params.sse_customer_key_md5),
    ):
        if value is not None:  # never quoted: it may be the key
            problems.append(Problem(f"$.Params.{name}", _SSE_C))
    if params.server_side_encryption is not None:
        problem = one_of(
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
                Problem(
                    "$.Params.SSEKMSKeyId",
                    "SSEKMSKeyId needs ServerSideEncryption 'aws:kms' or 'aws:kms:dsse', "
                    f"got {quoted(sse) if sse else 'none'}",
                )
            )
    if params.bucket_key_enabled and sse != "aws:kms":
        problems.append(
            Problem(
                "$.Params.BucketKeyEnabled",
                "BucketKeyEnabled: true needs ServerSideEncryption 'aws:kms', got "
                f"{quoted(sse) if sse else 'none'}",
            )
        )
    if settings.require_encryption and not sse:
        problems.append(
            Problem(
                "$.Params.ServerSideEncryption",
                "ServerSideEncryption is required (PUBLISHER_S3_REQUIRE_ENCRYPTION is true): add "
                "ServerSideEncryption 'AES256' or 'aws:kms' to the spec, or set the default "
                "PUBLISHER_S3_SERVER_SIDE_ENCRYPTION",
            )
        )
    if params.storage_class is not None:
        where = "$.Params.StorageClass"
        problem = one_of("StorageClass", params.storage_class, STORAGE_CLASSES, where)
        if problem:
            problems.append(problem)
        elif params.storage_class in NEEDS_RESTORE:
            problems.append(
                Problem(
                    where,
                    f"StorageClass {quoted(params.storage_class)} objects cannot be read until "
                    "restored, so describe and get would fail; use 'GLACIER_IR' (instant "
                    "retrieval), or move results later with a lifecycle rule",
                )
            )
    if params.acl is not None:
        problem = one_of("ACL", params.acl, ACLS, "$.Params.ACL")
        if problem:
            problems.append(problem)
    owner = params.expected_bucket_owner
    if owner is not None and not (owner.isascii() and _ACCOUNT.fullmatch(owner)):
        problems.append(
            Problem(
                "$.Params.ExpectedBucketOwner",
                f"ExpectedBucketOwner {quoted(owner)} is not an AWS account id (12 digits, "
                "such as '123456789012')",
            )
        )
    if params.cache_control is not None:
        problem = header_problem("CacheControl", params.cache_control, "$.Params.CacheControl")
        if problem:
            problems.append(problem)
    if params.content_type is not None:
        where = "$.Params.ContentType"
        if not params.archive:
            problems.append(
                Problem(
                    where,
                    "ContentType applies to archive mode (Compress: true) only; in directory "
                    "mode each file's type is guessed from its name",
                )
            )
        elif not (params.content_type.isascii() and _MEDIA_TYPE.fullmatch(params.content_type)):
            problems.append(
                Problem(
                    where,
                    f"ContentType {quoted(params.content_type)} is not a media type such as "
                    "'application/gzip'",
                )
            )
    if params.tags is not None:
        problems += tag_problems(params.tags)
    if params.metadata is not None:
        problems += metadata_problems(params.metadata)
    return problems
