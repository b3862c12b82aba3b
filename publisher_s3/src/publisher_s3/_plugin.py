"""The ``s3`` publisher's hooks: validate, plan, publish, describe."""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from publisher_core import (
    DownloadError,
    DownloadItem,
    IntegrityError,
    Manifest,
    Problem,
    PublishContext,
    PublishedResult,
    PublisherInfo,
    PublishError,
    PublishPlan,
    ResultDescription,
    RetryPolicy,
    ScannedResult,
    ValidatedSpec,
    hookimpl,
    result_name,
    scan_result,
    unstructure_params,
)

from ._attributes import (
    attribute_problems,
    effective_encryption,
    expect_bucket_owner,
    object_arguments,
)
from ._client import custom_endpoint, describe_client_error, is_missing, make_client, new_session
from ._presign import Presigner, botocore_url
from ._spec import S3Params, S3Result, S3Settings, environment_endpoint_problems, spec_problems

if TYPE_CHECKING:
    from botocore.session import Session
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectRequestTypeDef, HeadObjectRequestTypeDef

    from ._cleanup import WriteLog
    from ._upload import UploadOutcome

__all__ = ["describe_result", "plan_publish", "publish", "publisher_info", "validate_spec"]

_log = logging.getLogger(__name__)
_MANIFEST_BACKOFF = RetryPolicy(base=0.5, cap=5.0)  # full jitter, 0.5 s doubling to 5 s


@hookimpl
def publisher_info() -> PublisherInfo:
    """Declare the S3 publisher."""
    return PublisherInfo(
        params=S3Params,
        result=S3Result,
        settings=S3Settings,
        destination=("Bucket", "Key"),
        summary="AWS S3 and S3-compatible object stores",
    )


@hookimpl
def validate_spec(
    spec: ValidatedSpec, context: PublishContext | None, settings: S3Settings
) -> list[Problem]:
    """Bucket, key, endpoint, region, encoding and object attribute rules, all at once.

    Without an Endpoint, one botocore would take from the environment obeys the same
    rules (the AWS config file's is checked when the client is made). The operator's
    encryption defaults and requirement (``settings``) apply here, before any write.
    Each problem is a :class:`~publisher_core.Problem` at its parameter (or variable).
    """
    params: S3Params = spec.params
    problems = spec_problems(params, context) + attribute_problems(params, settings)
    if params.endpoint is None:
        problems += environment_endpoint_problems()
    return problems


def _read(
    spec: ValidatedSpec, source: Path, context: PublishContext
) -> tuple[S3Params, ScannedResult]:
    params: S3Params = spec.params
    return params, scan_result(params.key, source, context, archive=params.archive)


@hookimpl
def plan_publish(spec: ValidatedSpec, source: Path, context: PublishContext) -> PublishPlan:
    """The object keys :func:`publish` would write, in order; no request is made."""
    params, result = _read(spec, source, context)
    return PublishPlan(
        type="s3",
        mode="archive" if params.archive else "directory",
        location=f"s3://{params.bucket}" + (f" at {params.endpoint}" if params.endpoint else ""),
        keys=result.keys,
    )


@hookimpl
def publish(
    spec: ValidatedSpec, source: Path, context: PublishContext, settings: S3Settings
) -> PublishedResult:
    """Upload the result: files and a manifest, or one streamed archive."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ._archive import ArchiveUpload
    from ._directory import DirectoryUpload
    from ._transfer import Destination
    from ._upload import UploadRequest, abandon

    params, scanned = _read(spec, source, context)
    key, entries = scanned.key, scanned.entries
    arguments = object_arguments(params, settings)
    try:
        session = new_session()  # helper processes sign with its credentials too
        client, region = make_client(
            params.endpoint, params.region, params.bucket, settings, session=session
        )
    except (BotoCoreError, ClientError) as exc:
        raise PublishError(describe_client_error(exc, params.bucket, key)) from exc
    uploaded: WriteLog | None = None
    try:
        if params.expected_bucket_owner:
            expect_bucket_owner(client, params.expected_bucket_owner)
        to = Destination(client, params.bucket, arguments)
        request = UploadRequest(to, key, settings, overwrite=params.overwrite)
        upload: ArchiveUpload | DirectoryUpload
        if params.archive:
            upload = ArchiveUpload(request, params.content_type)
        else:
            upload = DirectoryUpload(
                request, expected_bucket_owner=params.expected_bucket_owner, session=session
            )
        outcome = upload.run(entries)
        uploaded = upload.log
        result = _result(params, key, settings, client, region, outcome)
        return PublishedResult(type="s3", params=unstructure_params(result))
    except (BotoCoreError, ClientError) as exc:
        raise PublishError(describe_client_error(exc, params.bucket, key)) from exc
    except BaseException as exc:
        if uploaded is not None:  # after the upload, before the record: nothing may name it
            abandon(exc, uploaded, params.bucket, key)
        raise
    finally:
        client.close()  # its connections, broken ones included


def _result(
    params: S3Params,
    key: str,
    settings: S3Settings,
    client: S3Client,
    region: str,
    outcome: UploadOutcome,
) -> S3Result:
    """The published result's parameters for what ``outcome`` stored."""
    directory = outcome.manifest_key is not None
    encryption, kms_key_id, bucket_key = effective_encryption(params, settings)
    return S3Result(
        bucket=params.bucket,
        key=key,
        endpoint=params.endpoint or custom_endpoint(client),
        region=region,
        version_id=None if directory else outcome.version_id,
        checksum_sha256=None if directory else outcome.checksum_sha256,
        size=outcome.size,
        files=outcome.files,
        manifest=outcome.manifest_key,
        manifest_checksum_sha256=outcome.checksum_sha256 if directory else None,
        manifest_version_id=outcome.version_id if directory else None,
        server_side_encryption=encryption,
        sse_kms_key_id=kms_key_id,
        bucket_key_enabled=bucket_key,
    )


def _manifest(client: S3Client, params: S3Result, attempts: int) -> Manifest:
    """The result's manifest, checked against its recorded SHA-256.

    botocore retries the request, but not a body cut short or changed on its way after
    the reply began; those are read again, up to ``attempts`` times in all.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    assert params.manifest is not None
    request: GetObjectRequestTypeDef = {"Bucket": params.bucket, "Key": params.manifest}
    if params.manifest_version_id:
        request["VersionId"] = params.manifest_version_id
    where = f"s3://{params.bucket}/{params.manifest}"
    for attempt in range(1, attempts + 1):
        try:
            body = client.get_object(**request)["Body"]  # botocore retries the request
        except ClientError as exc:
            if is_missing(exc):
                raise DownloadError(
                    f"manifest {where} is missing: the result is incomplete or was deleted"
                ) from None
            raise
        try:
            with body:
                data = body.read()
            return Manifest.from_checked_bytes(data, params.manifest_checksum_sha256, where)
        except (BotoCoreError, IntegrityError) as exc:
            failure = exc
        _log.debug("reading manifest %s failed (%s)", where, failure)
        if attempt < attempts:
            time.sleep(_MANIFEST_BACKOFF.delay(attempt))
    if isinstance(failure, IntegrityError):
        raise IntegrityError(f"{failure} (read {attempts} times)") from None
    text = " ".join(str(failure).split())
    raise DownloadError(
        f"reading manifest {where} failed after {attempts} attempts: "
        f"{type(failure).__name__}: {text}"
    ) from None


def _listed(client: S3Client, params: S3Result) -> list[tuple[str, int]]:
    """(relative path, size) of every object under a prefix written without a manifest."""
    found: list[tuple[str, int]] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=params.bucket, Prefix=params.key):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(params.key) :]
            if relative and not relative.endswith("/"):
                found.append((relative, obj["Size"]))
    return found


def _foreign_key(client: S3Client, params: S3Result) -> str:
    """The Key of a result another tool wrote, as the store has it: object or prefix.

    Our own keys end in ``/`` (directory) or ``.tar.gz``/``.tgz`` (archive); another
    tool's may end in neither, so the store is asked: an object at the key is the result
    (an archive), else objects under ``KEY/`` are (a directory).
    """
    from botocore.exceptions import ClientError

    key = params.key
    if key.endswith(("/", ".tar.gz", ".tgz")):
        return key
    request: HeadObjectRequestTypeDef = {"Bucket": params.bucket, "Key": key}
    if params.version_id:
        request["VersionId"] = params.version_id
    try:
        client.head_object(**request)
        return key
    except ClientError as exc:
        if not is_missing(exc):
            raise
    listed = client.list_objects_v2(Bucket=params.bucket, Prefix=key + "/", MaxKeys=1)
    if listed.get("KeyCount", len(listed.get("Contents", []))):
        return key + "/"
    raise DownloadError(
        f"nothing at s3://{params.bucket}/{key}: no object at the key and none under "
        f"{key}/; check the result's Key"
    )


@hookimpl
def describe_result(params: S3Result, settings: S3Settings) -> ResultDescription:
    """Pre-signed GET URLs for the archive, or for every file of a directory result."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = new_session()
        client, _ = make_client(
            params.endpoint, params.region, params.bucket, settings, session=session
        )
        with contextlib.closing(client):  # its connections, broken ones included
            return _describe(client, params, settings, session)
    except (BotoCoreError, ClientError) as exc:
        raise DownloadError(describe_client_error(exc, params.bucket, params.key)) from exc


def _describe(
    client: S3Client, params: S3Result, settings: S3Settings, session: Session
) -> ResultDescription:
    lifetime = settings.url_lifetime
    expires = datetime.now(timezone.utc) + timedelta(seconds=lifetime)
    if params.size is None and params.manifest is None:  # written by another tool
        params = attrs.evolve(params, key=_foreign_key(client, params))
    name = result_name(params.key)
    if not params.key.endswith("/"):
        item = DownloadItem(
            path=params.key.rsplit("/", 1)[-1],
            url=botocore_url(client, params.bucket, params.key, lifetime, params.version_id),
            size=params.size,
            # A result without our Size was written by another tool (Bacalhau records
            # S3's checksum, which is composite for multipart objects): not ours to trust.
            checksum_sha256=params.checksum_sha256 if params.size is not None else None,
            expires=expires,
            archive=True,
        )
        return ResultDescription(type="s3", name=name, items=(item,))
    presigner = Presigner(client, params.bucket, lifetime, session)
    if params.manifest is None:  # published by another tool, e.g. Bacalhau itself
        items = tuple(
            DownloadItem(
                path=path,
                url=presigner.url(params.key + path),
                size=size,
                expires=expires,
            )
            for path, size in _listed(client, params)
        )
        if not items:
            raise DownloadError(
                f"nothing under s3://{params.bucket}/{params.key}: the result is empty, "
                "was deleted, or its Key is mistyped"
            )
        return ResultDescription(type="s3", name=name, items=items)
    manifest = _manifest(client, params, settings.max_attempts)
    items = tuple(
        DownloadItem(
            path=f.path,
            # Pinned where the store versions objects: a later result published over
            # this one cannot be read in its place.
            url=presigner.url(params.key + f.path, f.version_id),
            size=f.size,
            checksum_sha256=f.checksum_sha256,
            expires=expires,
        )
        for f in manifest.files
    )
    return ResultDescription(type="s3", name=name, items=items, directories=manifest.directories)
