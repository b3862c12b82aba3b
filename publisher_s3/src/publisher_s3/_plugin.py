"""The ``s3`` publisher's declaration and spec validation."""

from __future__ import annotations

import attrs

from publisher_core import (
    PublishContext,
    PublisherInfo,
    ValidatedSpec,
    hookimpl,
    key_problems,
)

__all__ = ["S3Params", "S3Result", "publisher_info", "validate_spec"]


@attrs.frozen(kw_only=True)
class S3Params:
    """Spec parameters of the S3 publisher (as Bacalhau's S3 publisher)."""

    bucket: str
    key: str
    endpoint: str | None = None
    region: str | None = None
    compress: bool = False


@attrs.frozen(kw_only=True)
class S3Result:
    """Published result parameters of the S3 publisher."""

    bucket: str
    key: str
    endpoint: str | None = None
    region: str | None = None
    version_id: str | None = None
    checksum_sha256: str | None = None


@hookimpl
def publisher_info() -> PublisherInfo:
    """Declare the S3 publisher."""
    return PublisherInfo(
        params=S3Params,
        result=S3Result,
        destination=("Bucket", "Key"),
        summary="AWS S3 and S3-compatible object stores",
    )


@hookimpl
def validate_spec(spec: ValidatedSpec, context: PublishContext | None) -> list[str]:
    """Check the key template, and its placeholder values when a context is given."""
    params: S3Params = spec.params
    return key_problems(params.key, compress=params.compress, context=context)
