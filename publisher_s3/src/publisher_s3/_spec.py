"""The S3 publisher's spec, result and settings classes, and the rules they obey."""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlsplit

import attrs

from publisher_core import PublishContext, key_problems, sha256_validator

__all__ = [
    "S3Params",
    "S3Result",
    "S3Settings",
    "bucket_problems",
    "endpoint_problems",
    "spec_problems",
]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MIB = 1024 * 1024


@attrs.frozen(kw_only=True)
class S3Params:
    """Spec parameters, as Bacalhau's S3 publisher; ``Encoding`` is its newer spelling."""

    bucket: str
    key: str
    endpoint: str | None = None
    region: str | None = None
    compress: bool | None = None
    encoding: str | None = None

    @property
    def archive(self) -> bool:
        """Whether the result is one archive: Compress, or Encoding gzip."""
        if self.compress is not None:
            return self.compress
        return (self.encoding or "").lower() == "gzip"


@attrs.frozen(kw_only=True)
class S3Result:
    """Published result parameters (Bacalhau's fields first, then ours)."""

    bucket: str
    key: str
    endpoint: str | None = None
    region: str | None = None
    version_id: str | None = None
    checksum_sha256: str | None = attrs.field(
        default=None, validator=sha256_validator(composite=True)
    )
    size: int | None = None
    files: int | None = None
    manifest: str | None = None
    manifest_checksum_sha256: str | None = attrs.field(default=None, validator=sha256_validator())
    manifest_version_id: str | None = None


def _default_parallelism() -> int:
    """The CPUs this process may use, at most 4: compression threads, helper processes."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(4, cpus)


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


@attrs.frozen(kw_only=True)
class S3Settings:
    """Operator settings, from ``PUBLISHER_S3_<NAME>`` or the host.

    ``part_size`` bytes per multipart part (5 MiB..5 GiB); files and archives smaller
    than one part go up in one PutObject. ``concurrency`` requests in flight per process;
    ``processes`` how many processes share a directory of many small files (botocore
    spends ~1 ms of CPU per request, so one process cannot keep a fast store busy;
    1 keeps everything in the calling process).
    ``compression_level`` is ISA-L's 0-3 and ``compression_threads`` how many threads
    compress an archive (default: the CPUs this process may use, at most 4).
    ``url_lifetime`` seconds for pre-signed URLs.
    ``addressing_style`` for AWS endpoints (custom endpoints always use path style).
    ``max_attempts`` per request, botocore's standard retry mode (throttling, 5xx,
    resets and timeouts are retried with backoff). ``connect_timeout`` and
    ``read_timeout`` seconds per attempt: a store that stalls longer is retried.
    """

    concurrency: int = attrs.field(default=16, validator=_positive)
    processes: int = attrs.field(
        factory=_default_parallelism,
        validator=[attrs.validators.ge(1), attrs.validators.le(64)],
    )
    part_size: int = attrs.field(
        default=16 * MIB,
        validator=[attrs.validators.ge(5 * MIB), attrs.validators.le(5 * 1024 * MIB)],
    )
    compression_level: int = attrs.field(
        default=1, validator=[attrs.validators.ge(0), attrs.validators.le(3)]
    )
    compression_threads: int = attrs.field(
        factory=_default_parallelism,
        validator=[attrs.validators.ge(1), attrs.validators.le(64)],
    )
    url_lifetime: int = attrs.field(
        default=3600, validator=[attrs.validators.ge(1), attrs.validators.le(7 * 24 * 3600)]
    )
    addressing_style: str = attrs.field(
        default="auto", validator=attrs.validators.in_(("auto", "path", "virtual"))
    )
    max_attempts: int = attrs.field(default=5, validator=_positive)
    connect_timeout: int = attrs.field(
        default=60, validator=[attrs.validators.ge(1), attrs.validators.le(3600)]
    )
    read_timeout: int = attrs.field(
        default=60, validator=[attrs.validators.ge(1), attrs.validators.le(3600)]
    )


def bucket_problems(bucket: str) -> list[str]:
    """Problems of a bucket name under S3's naming rules."""
    where = "@ $.Params.Bucket"
    if not _BUCKET.fullmatch(bucket):
        return [
            f"bucket name {bucket!r} is invalid: 3-63 characters of lower-case letters, "
            f"digits, '.' and '-', starting and ending with a letter or digit {where}"
        ]
    problems = []
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        problems.append(f"bucket name {bucket!r} has adjacent '.'/'-' characters {where}")
    try:
        ipaddress.IPv4Address(bucket)
        problems.append(f"bucket name {bucket!r} must not look like an IP address {where}")
    except ValueError:
        pass
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        problems.append(f"bucket name {bucket!r} uses a prefix or suffix S3 reserves {where}")
    return problems


def endpoint_problems(endpoint: str) -> list[str]:
    """Problems of an Endpoint: an http(s) URL without credentials, query or fragment."""
    where = "@ $.Params.Endpoint"
    scheme, separator, _ = endpoint.partition("://")
    if separator and scheme.lower() not in ("http", "https"):
        return [f"Endpoint scheme {scheme!r} is not supported: use https:// (or http://) {where}"]
    if not endpoint.lower().startswith(("http://", "https://")):
        return [
            f"Endpoint {endpoint!r} needs a scheme: use 'https://{endpoint}' "
            f"(or 'http://{endpoint}' for a local store) {where}"
        ]
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return [f"Endpoint is not a valid URL ({exc}) {where}"]
    if parts.username is not None or parts.password is not None:
        return [
            "Endpoint must not contain credentials; use the AWS credential chain "
            f"(environment, profile, instance role) {where}"
        ]
    if not parts.hostname:
        return [f"Endpoint {endpoint!r} has no host {where}"]
    if parts.query or parts.fragment:
        return [f"Endpoint {endpoint!r} must not have a query or fragment {where}"]
    return []


def spec_problems(params: S3Params, context: PublishContext | None) -> list[str]:
    """Every problem of an S3 spec that types alone do not catch."""
    problems = bucket_problems(params.bucket)
    if params.endpoint is not None:
        problems += endpoint_problems(params.endpoint)
    if params.region is not None and not _REGION.fullmatch(params.region):
        problems.append(
            f"Region {params.region!r} is invalid: lower-case letters, digits and '-', "
            "such as 'us-east-1' @ $.Params.Region"
        )
    if params.encoding is not None:
        encoding = params.encoding.lower()
        if encoding not in ("gzip", "plain"):
            problems.append(
                f"Encoding must be 'gzip' or 'plain', got {params.encoding!r} @ $.Params.Encoding"
            )
        elif params.compress is not None and params.compress != (encoding == "gzip"):
            problems.append(
                f"Encoding {params.encoding!r} contradicts Compress {params.compress}; "
                "give one of them @ $.Params.Encoding"
            )
    problems += key_problems(params.key, compress=params.archive, context=context)
    return problems
