"""One botocore S3 client per publish: credential chain, endpoint, region, retries.

botocore is imported here, inside the functions, so importing the plugin stays cheap.
A helper process makes its client from what its parent's client uses: the endpoint,
region and addressing style (``client.meta``) and the credentials its session resolved
(:func:`frozen_credentials`), which are never logged.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import TYPE_CHECKING, Any, TypedDict, cast
from urllib.parse import urlsplit

from publisher_core import PublishError, SpecError, quoted

from ._spec import ENDPOINT_VARIABLES, S3Settings, endpoint_problems

if TYPE_CHECKING:
    from botocore.session import Session
    from mypy_boto3_s3 import S3Client

__all__ = [
    "FrozenCredentials",
    "attempts_of",
    "custom_endpoint",
    "describe_client_error",
    "error_code",
    "frozen_credentials",
    "is_missing",
    "make_client",
    "new_session",
    "reached_store",
]

_DEFAULT_CUSTOM_REGION = "us-east-1"


class FrozenCredentials(TypedDict):
    """Credentials resolved once, as a helper process receives them (never logged)."""

    access_key: str | None
    secret_key: str | None
    token: str | None


def new_session() -> Session:
    """A botocore session: the same credential chain and config files as boto3's.

    boto3 itself adds ~0.1 s of imports and client customisations a publish does not use.
    """
    try:
        import botocore.session
    except ImportError:  # pragma: no cover - a dependency of publisher-s3
        raise PublishError(
            "the s3 publisher needs botocore: pip install 'publisher-s3' (or boto3)"
        ) from None
    return botocore.session.get_session()


def make_client(
    endpoint: str | None,
    region: str | None,
    bucket: str,
    settings: S3Settings,
    credentials: FrozenCredentials | None = None,
    addressing_style: str | None = None,
    *,
    session: Session | None = None,
) -> tuple[S3Client, str]:
    """An S3 client and the region it uses: given, else the session's, else the bucket's.

    Custom endpoints get path-style addressing and ``when_required`` checksums, which
    S3-compatible stores accept (botocore >= 1.36 otherwise sends CRC32 trailers many
    of them reject); our own SHA-256 is computed and recorded regardless.
    ``credentials`` (``access_key``, ``secret_key``, ``token``) replace the default chain:
    a helper process uses the credentials its parent resolved, and its parent's
    ``addressing_style``. ``session`` is the one to make the client from (default: a
    :func:`new_session`): its :func:`frozen_credentials` are the client's.
    """
    if session is None:
        session = new_session()
    from botocore.config import Config

    if endpoint is None:
        _check_configured_endpoint(session)
    # botocore reads AWS_DEFAULT_REGION; AWS_REGION is what the other AWS SDKs read.
    configured = session.get_config_variable("region")
    used_region = region or configured or os.environ.get("AWS_REGION") or None
    config_args: dict[str, Any] = {
        "signature_version": "s3v4",
        "retries": {"mode": "standard", "total_max_attempts": settings.max_attempts},
        "max_pool_connections": settings.concurrency + 2,
        "connect_timeout": settings.connect_timeout,
        "read_timeout": settings.read_timeout,
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "s3": {
            "addressing_style": addressing_style
            or ("path" if endpoint else settings.addressing_style),
            # Bodies carry their own checksum (SHA-256 for objects, CRC32 for parts)
            # which the store verifies; hashing each body again to sign it costs CPU.
            "payload_signing_enabled": False,
        },
    }
    if used_region is None and endpoint is None:
        used_region = _discover_region(session, bucket, Config(**config_args))
    used_region = used_region or _DEFAULT_CUSTOM_REGION
    created = session.create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=used_region,
        config=Config(**config_args),
        # None (the default) for each: the session's credential chain
        aws_access_key_id=credentials["access_key"] if credentials else None,
        aws_secret_access_key=credentials["secret_key"] if credentials else None,
        aws_session_token=credentials["token"] if credentials else None,
    )
    client = cast("S3Client", created)  # botocore's stubs type every client alike
    client.meta.events.register("before-sign.s3.PutObject", _no_expect_for_small_bodies)
    client.meta.events.register("needs-retry.s3", _note_attempt)
    client.meta.events.register("after-call-error.s3", _count_attempts)
    return client, used_region


@functools.cache
def _never_connected() -> tuple[type[BaseException], ...]:
    """Botocore's errors for a connection that was never made (looked up once)."""
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        ProxyConnectionError,
    )

    return (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)


def _note_attempt(
    request_dict: dict[str, Any], caught_exception: BaseException | None = None, **_: Any
) -> None:
    """Note whether any attempt of a call may have reached the store (each attempt ends here).

    Only a connection that was never made proves that an attempt sent nothing: DNS
    failures, refused connections and connect timeouts. A reply, or an error after the
    connection was made (a reset, a read timeout), means the store may have acted.
    """
    context = request_dict.get("context")
    if not isinstance(context, dict):
        return
    never_connected = isinstance(caught_exception, _never_connected())
    context["publisher_reached"] = context.get("publisher_reached", False) or not never_connected


def _check_endpoint(url: str, where: str) -> None:
    """Raise a SpecError if ``url`` breaks the rules of a spec's Endpoint."""
    problems = endpoint_problems(url, where=where)
    if problems:
        raise SpecError(problems, what="setting")


def _check_configured_endpoint(session: Session) -> None:
    """Check the endpoint botocore would take from the environment or the AWS config file.

    Checked before any client is made: botocore refuses some invalid endpoints with a
    ValueError quoting them, credentials and all, and would sign requests for the rest.
    """
    from botocore.configprovider import ConfiguredEndpointProvider

    if session.get_config_variable("ignore_configured_endpoint_urls"):
        return
    configured = ConfiguredEndpointProvider(
        full_config=session.full_config,
        scoped_config=session.get_scoped_config(),
        client_name="s3",
    ).provide()
    if not configured:
        return
    where = next(
        (f"environment variable {n}" for n in ENDPOINT_VARIABLES if os.environ.get(n)),
        f"endpoint_url of AWS config profile {quoted(session.profile or 'default')}",
    )
    _check_endpoint(configured, where)


def _count_attempts(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
    """Note on a failed call's exception how many attempts botocore made.

    botocore records retries only in a ClientError's response; a reset or a timeout on
    the last attempt would otherwise not say that it was the last of several.
    """
    attempt = context.get("retries", {}).get("attempt")
    if isinstance(attempt, int):
        with contextlib.suppress(AttributeError):
            exception.publisher_attempts = attempt  # type: ignore[attr-defined]
    reached = context.get("publisher_reached")
    if isinstance(reached, bool):
        with contextlib.suppress(AttributeError):
            exception.publisher_reached = reached  # type: ignore[attr-defined]


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of a ClientError (``NoSuchKey``, ``404``...), else None."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code if isinstance(code, str) else None


def is_missing(exc: BaseException) -> bool:
    """Whether ``exc`` says the object is not there (GetObject and HeadObject alike)."""
    return error_code(exc) in ("NoSuchKey", "NotFound", "404")


def reached_store(exc: BaseException) -> bool | None:
    """Whether any attempt of the call that raised ``exc`` connected to the store.

    ``False`` proves the call created nothing, however many attempts it made; ``None``
    when unknown (the call was not made by a client of :func:`make_client`).
    """
    found = getattr(exc, "publisher_reached", None)
    return found if isinstance(found, bool) else None


def attempts_of(exc: BaseException) -> int | None:
    """How many attempts the call that raised ``exc`` made, where known."""
    from botocore.exceptions import ClientError as _ClientError

    if isinstance(exc, _ClientError):
        retries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
        if isinstance(retries, int):
            return retries + 1
    found = getattr(exc, "publisher_attempts", None)
    return found if isinstance(found, int) else None


_EXPECT_THRESHOLD = 1 << 20


def _no_expect_for_small_bodies(request: Any, **_: Any) -> None:
    """Drop ``Expect: 100-continue`` from small PutObjects.

    botocore asks every body to wait for the server's go-ahead, a full extra round trip
    per file; it only pays off for large bodies a server might refuse.
    """
    body = request.body
    size = len(body) if isinstance(body, (bytes, bytearray)) else None
    if size is None and hasattr(body, "seek") and hasattr(body, "tell"):
        position = body.tell()
        size = body.seek(0, 2) - position
        body.seek(position)
    if "Expect" in request.headers and size is not None and size < _EXPECT_THRESHOLD:
        del request.headers["Expect"]


def frozen_credentials(session: Session) -> FrozenCredentials | None:
    """The credentials clients of ``session`` sign with, frozen, for a helper process.

    A client made without explicit credentials signs with the session's, resolved once
    and cached; refreshable ones are refreshed here if they are about to expire. None
    where the chain found none (the helper then looks for them itself).
    """
    found = session.get_credentials()
    if found is None:
        return None
    frozen = found.get_frozen_credentials()
    return {"access_key": frozen.access_key, "secret_key": frozen.secret_key, "token": frozen.token}


def custom_endpoint(client: S3Client) -> str | None:
    """The client's endpoint if it is not AWS's, e.g. one set by ``AWS_ENDPOINT_URL_S3``.

    Recorded in the result so that ``describe`` on another machine finds the store.
    """
    url: str = client.meta.endpoint_url
    host = urlsplit(url).hostname or ""
    return None if host.endswith(".amazonaws.com") else url


def _discover_region(session: Any, bucket: str, config: Any) -> str:
    """The bucket's region, from the ``x-amz-bucket-region`` header S3 always returns."""
    from botocore.exceptions import BotoCoreError, ClientError

    probe = session.create_client("s3", region_name="us-east-1", config=config)
    try:
        response = probe.head_bucket(Bucket=bucket)
        headers = response["ResponseMetadata"]["HTTPHeaders"]
    except ClientError as exc:
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    except BotoCoreError as exc:
        raise PublishError(f"cannot find the region of bucket {bucket!r}: {exc}") from None
    finally:
        probe.close()  # its connection pool
    region: str = headers.get("x-amz-bucket-region") or _DEFAULT_CUSTOM_REGION
    return region


def describe_client_error(exc: BaseException, bucket: str, key: str) -> str:
    """One line naming the bucket, key, operation and S3 error code; never a secret."""
    from botocore.exceptions import ClientError as _ClientError

    attempts = attempts_of(exc)
    tried = f" after {attempts} attempts" if attempts is not None and attempts > 1 else ""
    code = error_code(exc)
    if isinstance(exc, _ClientError) or code is not None:  # the store answered with an error
        response: dict[str, Any] = getattr(exc, "response", {})
        code = code or "Unknown"
        message = response.get("Error", {}).get("Message", "")
        detail = f": {message}" if message and message != code else ""
        operation = getattr(exc, "operation_name", "a request")
        return f"{operation} s3://{bucket}/{key} failed with {code}{tried}{detail}"
    text = " ".join(str(exc).split())
    return f"s3://{bucket}/{key}: {type(exc).__name__}{tried}: {text}"
