"""The S3 publisher's spec, result and settings classes, and the rules they obey."""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import attrs

from publisher_core import Problem, PublishContext, key_problems, quoted, sha256_validator

from ._values import (
    MetadataMap,
    TagSet,
    unset_if_empty,
    valid_encryption_setting,
    valid_kms_key_setting,
)

__all__ = [
    "S3Params",
    "S3Result",
    "S3Settings",
    "bucket_problems",
    "endpoint_problems",
    "environment_endpoint_problems",
    "spec_problems",
]

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_DIGITS_AND_DOTS = re.compile(r"[0-9.]+")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
MIB = 1024 * 1024


def _no_null_version(value: str | None) -> str | None:
    """``null`` (what stores answer for an unversioned object) is no version to pin."""
    return None if value in ("", "null") else value


@attrs.frozen(kw_only=True)
class S3Params:
    """Spec parameters, as Bacalhau's S3 publisher; ``Encoding`` is its newer spelling."""

    bucket: str
    key: str
    # An empty Endpoint means the default one, as in Bacalhau's examples (``Endpoint: ""``).
    endpoint: str | None = attrs.field(default=None, converter=unset_if_empty)
    region: str | None = None
    compress: bool | None = None
    encoding: str | None = None
    # Applied to every object of the result (see _attributes).
    server_side_encryption: str | None = None
    sse_kms_key_id: str | None = None
    bucket_key_enabled: bool | None = None
    storage_class: str | None = None
    tags: TagSet | None = None
    metadata: MetadataMap | None = None
    acl: str | None = None
    expected_bucket_owner: str | None = None
    cache_control: str | None = None
    content_type: str | None = None
    # True: replace the whole earlier result at the key; false: refuse (see _overwrite).
    overwrite: bool = True
    # SSE-C is refused with a reason; the values are taken as they are, never shown.
    sse_customer_algorithm: Any = attrs.field(default=None, repr=False)
    sse_customer_key: Any = attrs.field(default=None, repr=False)
    sse_customer_key_md5: Any = attrs.field(default=None, repr=False)

    @property
    def archive(self) -> bool:
        """Whether the result is one archive: Compress, or Encoding gzip."""
        if self.compress is not None:
            return self.compress
        return (self.encoding or "").lower() == "gzip"


def _valid_endpoint(_: object, _attribute: attrs.Attribute[str | None], value: str | None) -> None:
    """Refuse a result's Endpoint that :func:`endpoint_problems` refuses in a spec."""
    if value is not None:
        problems = endpoint_problems(value, where=None)
        if problems:
            raise ValueError(str(problems[0]))  # the loader places it at $.Params.Endpoint


@attrs.frozen(kw_only=True)
class S3Result:
    """Published result parameters (Bacalhau's fields first, then ours)."""

    bucket: str
    key: str
    endpoint: str | None = attrs.field(
        default=None, converter=unset_if_empty, validator=_valid_endpoint
    )
    region: str | None = None
    version_id: str | None = attrs.field(default=None, converter=_no_null_version)
    checksum_sha256: str | None = attrs.field(
        default=None, validator=sha256_validator(composite=True)
    )
    size: int | None = None
    files: int | None = None
    manifest: str | None = None
    manifest_checksum_sha256: str | None = attrs.field(default=None, validator=sha256_validator())
    manifest_version_id: str | None = attrs.field(default=None, converter=_no_null_version)
    server_side_encryption: str | None = None
    sse_kms_key_id: str | None = None
    bucket_key_enabled: bool | None = None


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
    than one part go up in one PutObject. ``concurrency`` botocore requests in flight
    per process (the runtime's small PutObjects: 32 times as many). ``request_path``
    ``crt`` sends a directory's small files through the AWS Common Runtime where it can
    (not behind a proxy), ``botocore`` sends every request through botocore, with
    ``processes`` processes sharing a directory of many small files (botocore spends
    ~1 ms of CPU per request; 1 keeps everything in the calling process).
    ``compression_level`` is ISA-L's 0-3 and ``compression_threads`` how many threads
    compress an archive (default: the CPUs this process may use, at most 4).
    ``url_lifetime`` seconds for pre-signed URLs.
    ``addressing_style`` for AWS endpoints (custom endpoints always use path style).
    ``max_attempts`` per request, botocore's standard retry mode (throttling, 5xx,
    resets and timeouts are retried with backoff). ``connect_timeout`` and
    ``read_timeout`` seconds per attempt: a store that stalls longer is retried.
    ``server_side_encryption`` and ``sse_kms_key_id`` are the encryption of specs that
    name none (the key only with a KMS encryption); ``require_encryption`` refuses a
    spec that ends up without one.
    """

    concurrency: int = attrs.field(default=16, validator=_positive)
    request_path: str = attrs.field(
        default="crt", validator=attrs.validators.in_(("crt", "botocore"))
    )
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
    server_side_encryption: str | None = attrs.field(
        default=None, converter=unset_if_empty, validator=valid_encryption_setting
    )
    sse_kms_key_id: str | None = attrs.field(
        default=None, converter=unset_if_empty, validator=valid_kms_key_setting
    )
    require_encryption: bool = False


def bucket_problems(bucket: str) -> list[Problem]:
    """Problems of a bucket name under S3's naming rules, each at ``$.Params.Bucket``."""
    where = "$.Params.Bucket"
    if not _BUCKET.fullmatch(bucket):
        return [
            Problem(
                where,
                f"bucket name {bucket!r} is invalid: 3-63 characters of lower-case letters, "
                "digits, '.' and '-', starting and ending with a letter or digit",
            )
        ]
    problems = []
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        problems.append(Problem(where, f"bucket name {bucket!r} has adjacent '.'/'-' characters"))
    try:
        ipaddress.IPv4Address(bucket)
        problems.append(Problem(where, f"bucket name {bucket!r} must not look like an IP address"))
    except ValueError:
        pass
    if bucket.startswith(("xn--", "sthree-")) or bucket.endswith(("-s3alias", "--ol-s3")):
        problems.append(
            Problem(where, f"bucket name {bucket!r} uses a prefix or suffix S3 reserves")
        )
    return problems


def _is_control(char: str) -> bool:
    """Whitespace, a control character, or an invisible format character (U+200B...)."""
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp", "Zs")


def _port_problem(port: str) -> str | None:
    if not port:
        return "Endpoint has ':' but no port after it"
    if not (port.isascii() and port.isdigit()) or len(port) > 5:
        return f"Endpoint port {quoted(port)} is not a number 1-65535"
    if not 1 <= int(port) <= 65535:
        return f"Endpoint is not a valid URL (Port out of range 1-65535: {int(port)})"
    return None


def _label_problem(host: str, label: str) -> str | None:
    if not _LABEL.fullmatch(label):
        return (
            f"Endpoint host {quoted(host)} has an invalid label {quoted(label)}: 1-63 "
            "letters, digits and '-', not starting or ending with '-'"
        )
    if label[:4].lower() == "xn--":
        try:
            label.lower().encode("ascii").decode("idna")
        except UnicodeError:
            return (
                f"Endpoint host {quoted(host)} has {quoted(label)}, which is not a valid "
                "IDNA (punycode) label"
            )
    return None


def _host_problem(host: str) -> str | None:
    """Problems of an unbracketed host: a DNS name or an IPv4 address, ASCII only."""
    if "%" in host:
        return f"Endpoint host {quoted(host)} must not use percent-encoding"
    if not host.isascii():
        try:
            ascii_form = host.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_form = ""
        good = "xn--" in ascii_form and _host_problem(ascii_form) is None
        hint = f" ({quoted(ascii_form)})" if good else ""
        return (
            f"Endpoint host {quoted(host)} is not ASCII: write an internationalised name "
            f"in its punycode (xn--) form{hint}"
        )
    if _DIGITS_AND_DOTS.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"Endpoint host {quoted(host)} is not an IPv4 address (4 numbers 0-255)"
        return None
    name = host[:-1] if host.endswith(".") else host
    if len(name) > 253:
        return f"Endpoint host is longer than 253 characters ({len(name)})"
    for label in name.split("."):
        problem = _label_problem(host, label)
        if problem:
            return problem
    return None


def _authority_problem(authority: str) -> str | None:
    """Problems of ``host[:port]``: a DNS name, an IPv4 or a bracketed IPv6 address."""
    if authority.startswith("["):
        inside, bracket, after = authority[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            return (
                "Endpoint is not a valid URL (an IPv6 host is written '[address]' "
                "or '[address]:port')"
            )
        if "%" in inside:
            return f"Endpoint host {quoted(inside)} must not use percent-encoding (zone ids)"
        if not inside.isascii() or not _IPV6_CHARS.fullmatch(inside):
            return f"Endpoint host {quoted(inside)} is not an IPv6 address"
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            return f"Endpoint host {quoted(inside)} is not an IPv6 address"
        return _port_problem(after[1:]) if after else None
    host, colon, port = authority.partition(":")
    if ":" in port:
        return f"Endpoint host {quoted(authority)} has several ':'; write IPv6 as '[address]'"
    if not host:
        return "Endpoint has no host"
    return _host_problem(host) or (_port_problem(port) if colon else None)


def endpoint_problems(endpoint: str, where: str | None = "$.Params.Endpoint") -> list[Problem]:
    """Problems of an Endpoint: an http(s) URL of a host (and port, path) botocore accepts.

    No credentials, whitespace, control characters, query or fragment; the host a DNS
    name (ASCII, punycode for an internationalised one), an IPv4 or a bracketed IPv6
    address; the port 1-65535. The credentials are never quoted back. ``where`` is the
    problem's path, the place it is reported at (e.g. ``environment variable NAME``), or
    None for none.
    """
    problem = _endpoint_problem(endpoint)
    return [Problem(where, problem)] if problem else []


ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
"""The environment variables botocore takes an S3 endpoint from, first found first."""


def environment_endpoint_problems(environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Problems of the endpoint botocore would take from the environment, if any.

    botocore reads ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (an empty one is
    skipped), unless ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is ``true``. The AWS config
    file's ``endpoint_url`` needs botocore to read; the client checks it when made. Each
    problem is at the variable it came from (``environment variable AWS_ENDPOINT_URL``).
    """
    env = os.environ if environ is None else environ
    if env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return []
    for name in ENDPOINT_VARIABLES:
        value = env.get(name)
        if value:
            return endpoint_problems(value, where=f"environment variable {name}")
    return []


def _shown(endpoint: str) -> str:
    """The endpoint quoted for a message, and a space; nothing if it has an '@' anywhere.

    Whatever precedes an '@' may be a password (one in the authority is refused first).
    """
    return "" if "@" in endpoint else quoted(endpoint) + " "


def _endpoint_problem(endpoint: str) -> str | None:
    """The message of the first problem of ``endpoint``, or None; its place is the caller's."""
    scheme, separator, rest = endpoint.partition("://")
    head = re.split(r"[/?#]", rest if separator else endpoint, maxsplit=1)[0]
    if "@" in head or (separator and "@" in scheme):
        return (
            "Endpoint must not contain credentials; use the AWS credential chain "
            "(environment, profile, instance role)"
        )
    bad = next((c for c in endpoint if _is_control(c)), None)
    if bad is not None:
        return (
            f"Endpoint {_shown(endpoint)}contains a whitespace or control character "
            f"(U+{ord(bad):04X})"
        )
    if separator and scheme.lower() not in ("http", "https"):
        return f"Endpoint scheme {quoted(scheme)} is not supported: use https:// (or http://)"
    if not separator:
        shown = endpoint if _shown(endpoint) and len(endpoint) <= 80 else "HOST"
        return (
            f"Endpoint {_shown(endpoint)}needs a scheme: use 'https://{shown}' "
            f"(or 'http://{shown}' for a local store)"
        )
    if "?" in endpoint or "#" in endpoint:
        return f"Endpoint {_shown(endpoint)}must not have a query or fragment"
    return _authority_problem(head)


def spec_problems(params: S3Params, context: PublishContext | None) -> list[Problem]:
    """The problems of an S3 spec's destination (bucket, endpoint, region, encoding, key).

    Each is at its parameter; ``_attributes.attribute_problems`` checks the rest.
    """
    problems = bucket_problems(params.bucket)
    if params.endpoint is not None:
        problems += endpoint_problems(params.endpoint)
    if params.region is not None and not _REGION.fullmatch(params.region):
        problems.append(
            Problem(
                "$.Params.Region",
                f"Region {params.region!r} is invalid: lower-case letters, digits and '-', "
                "such as 'us-east-1'",
            )
        )
    if params.encoding is not None:
        encoding = params.encoding.lower()
        if encoding not in ("gzip", "plain"):
            problems.append(
                Problem(
                    "$.Params.Encoding",
                    f"Encoding must be 'gzip' or 'plain', got {params.encoding!r}",
                )
            )
        elif params.compress is not None and params.compress != (encoding == "gzip"):
            problems.append(
                Problem(
                    "$.Params.Encoding",
                    f"Encoding {params.encoding!r} contradicts Compress {params.compress}; "
                    "give one of them",
                )
            )
    problems += key_problems(params.key, compress=params.archive, context=context)
    return problems
