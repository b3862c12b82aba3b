"""The lean request path: small PutObjects through the AWS Common Runtime (``awscrt``).

botocore spends 1.5-1.9 ms of CPU building, signing and parsing every request, under the
interpreter lock; the AWS Common Runtime (the engine behind ``boto3[crt]``) does the same
in C, on its own event-loop threads, for about 0.25 ms. For a directory of thousands of
small files that is the difference between ~900 and ~3,500 objects a second on two cores
(docs/performance.md).

botocore still decides everything a request depends on: the bucket's URL (one presigned
URL names it, so virtual hosts, FIPS and dual-stack endpoints resolve as botocore resolves
them), the region, the credentials (read from the session each time the runtime signs, so
refreshing credentials stay fresh), and the header each object attribute travels in (from
botocore's own model of PutObject). The runtime signs (SigV4), sends, keeps connections
and retries 5xx replies and broken connections.

What the runtime lacks is a read timeout: a request in flight for longer than the
settings' ``read_timeout`` is cancelled and counted as failed (:class:`CrtPuts` leaves
retrying it to the caller).
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import unescape

from publisher_core import RetryPolicy, retry_after_seconds
from publisher_core._crt import THROUGHPUT_TARGET_GBPS, event_loop_threads

from ._transfer import Destination, version_of

if TYPE_CHECKING:
    from awscrt.s3 import S3Request
    from botocore.credentials import Credentials
    from botocore.session import Session

    from ._spec import S3Settings

__all__ = ["CrtPuts", "crt_puts"]

_log = logging.getLogger(__name__)

_PROBE_KEY = "publisher-probe"

REQUESTS_PER_WORKER = 32
"""Small PutObjects in flight per ``concurrency`` worker (16 workers: 512 at once)."""
MAX_BYTES_IN_FLIGHT = 64 * 1024 * 1024
"""Bytes of bodies in flight at once (read into memory first; a larger body goes alone)."""
_ERROR_CODE = re.compile(rb"<Code>([^<]{1,200})</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]{0,500})</Message>")

Done = Callable[[str | None, BaseException | None], None]
"""Called once per request: (the version it created, None) or (None, the failure)."""


def _proxied(url: str) -> bool:
    """Whether the environment sends requests for ``url`` through a proxy."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def _header_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _attribute_headers(to: Destination, owner: str | None) -> list[tuple[str, str]]:
    """The headers that carry ``to.arguments`` (and ExpectedBucketOwner) on a PutObject.

    Names come from botocore's model of PutObject, so every attribute travels exactly as
    botocore would send it.
    """
    shape = to.client.meta.service_model.operation_model("PutObject").input_shape
    assert shape is not None
    arguments: dict[str, Any] = dict(to.arguments)
    if owner:
        arguments["ExpectedBucketOwner"] = owner
    headers: list[tuple[str, str]] = []
    for name, value in arguments.items():
        member = shape.members[name]
        where = member.serialization
        if where.get("location") == "headers":  # a map: Metadata -> x-amz-meta-NAME
            prefix = where.get("name", "")
            headers += [(prefix + k, v) for k, v in dict(value).items()]
        elif where.get("location") == "header":
            headers.append((where.get("name", name), _header_value(value)))
        else:
            raise ValueError(f"PutObject sends {name} outside the headers")
    return headers


def _provider(auth: Any, credentials: Credentials) -> Any:
    """The runtime's credentials provider for botocore's ``credentials``.

    Credentials that refresh (an instance role, SSO, assume-role) are read from botocore
    each time the runtime signs, so they stay fresh. Credentials that never change (keys
    from the environment or a profile) are handed over once: the runtime asks its
    provider on every request, and each ask is a call back into Python that waits for the
    interpreter lock (20,000 of them for 20,000 small files).
    """
    from botocore.credentials import RefreshableCredentials

    if not isinstance(credentials, RefreshableCredentials):
        frozen = credentials.get_frozen_credentials()
        return auth.AwsCredentialsProvider.new_static(
            frozen.access_key, frozen.secret_key, frozen.token
        )

    def current() -> Any:  # called by the runtime when it signs
        frozen = credentials.get_frozen_credentials()
        return auth.AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    return auth.AwsCredentialsProvider.new_delegate(current)


class CrtRequestError(Exception):
    """A request through the runtime failed: the store's error code, or how it broke.

    Shaped like botocore's ``ClientError`` where the store answered (``response``,
    ``operation_name``), so that error codes are read and reported the same way for both
    paths. The runtime may have retried it, so it never proves that nothing was written
    (``_cleanup.unsent`` does not know it: clean-up keeps the key).
    """

    operation_name = "PutObject"

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.publisher_attempts: int | None = None  # set once its last attempt failed
        self.response: dict[str, Any] = {"ResponseMetadata": {}}
        if code:
            self.response["Error"] = {"Code": code, "Message": message}
        if status is not None:
            self.response["ResponseMetadata"]["HTTPStatusCode"] = status


_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "TooManyRequests",
    }
)


def _transient(failure: CrtRequestError) -> bool:
    """Whether another attempt may succeed: no reply, 5xx, 429, or a transient code."""
    status = failure.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = failure.response.get("Error", {}).get("Code")
    if status is None and code is None:
        return True  # the connection broke, timed out or was cancelled as stalled
    return code in _TRANSIENT_CODES or (
        isinstance(status, int) and (status >= 500 or status == 429)
    )


def _failure(error: BaseException, status: int | None, body: bytes | None) -> CrtRequestError:
    if body:
        code = _ERROR_CODE.search(body)
        message = _ERROR_MESSAGE.search(body)
        if code:
            text = unescape(message.group(1).decode("utf-8", "replace")) if message else ""
            name = code.group(1).decode("utf-8", "replace")
            return CrtRequestError(text or name, name, status)
    if status:
        return CrtRequestError(f"HTTP {status}", str(status), status)
    name = getattr(error, "name", "") or type(error).__name__
    return CrtRequestError(f"{name}: {error}")


class CrtPuts:
    """PutObject of bodies held in memory through one runtime S3 client.

    Keys are quoted as botocore quotes them and appended to the bucket's base URL.
    Each request carries the body's SHA-256 (the store checks it) and the result's
    object attributes. At most ``settings.concurrency`` x :data:`REQUESTS_PER_WORKER` requests
    and :data:`MAX_BYTES_IN_FLIGHT` bytes of bodies are in flight.
    """

    def __init__(
        self,
        to: Destination,
        session: Session,
        settings: S3Settings,
        expected_bucket_owner: str | None,
    ) -> None:
        from awscrt import auth, http, s3
        from awscrt import io as crt_io

        self._http, self._s3 = http, s3
        self.to = to
        self.read_timeout = float(settings.read_timeout)
        url = to.client.generate_presigned_url(
            "put_object", Params={"Bucket": to.bucket, "Key": _PROBE_KEY}, ExpiresIn=60
        )
        parts = urlsplit(url)
        if not parts.path.endswith("/" + _PROBE_KEY):
            raise ValueError(f"unexpected PutObject URL shape for bucket {to.bucket}")
        self.base_path = parts.path[: -len(_PROBE_KEY)]
        self.host = parts.netloc
        self.static_headers = _attribute_headers(to, expected_bucket_owner)
        region = to.client.meta.region_name

        credentials = session.get_credentials()
        if credentials is None:
            raise ValueError("no AWS credentials found")

        provider = _provider(auth, credentials)
        signing = s3.create_default_s3_signing_config(region=region, credential_provider=provider)
        tls: Any = None
        if parts.scheme == "https":
            options = crt_io.TlsContextOptions()
            bundle = session.get_config_variable("ca_bundle") or os.environ.get("AWS_CA_BUNDLE")
            if bundle:
                options.override_default_trust_store_from_path(ca_filepath=bundle)
            tls = crt_io.ClientTlsContext(options).new_connection_options()
        self.max_requests = max(1, settings.concurrency) * REQUESTS_PER_WORKER
        loops = crt_io.EventLoopGroup(event_loop_threads())
        self.client = s3.S3Client(
            bootstrap=crt_io.ClientBootstrap(loops, crt_io.DefaultHostResolver(loops)),
            region=region,
            signing_config=signing,
            tls_mode=(
                s3.S3RequestTlsMode.ENABLED
                if parts.scheme == "https"
                else s3.S3RequestTlsMode.DISABLED
            ),
            tls_connection_options=tls,
            connect_timeout_ms=int(settings.connect_timeout * 1000),
            retry_config=s3.S3RetryConfig(retry_mode=s3.S3RetryMode.NONE),  # ours: policy
            # The runtime sizes its connection pool from this target (default 10 Gbps); for
            # small objects that pool, not the requests we allow, capped it near 1,000 a
            # second at 20 ms per request (docs/performance.md).
            throughput_target_gbps=THROUGHPUT_TARGET_GBPS,
        )
        self._lock = threading.Condition()
        self._live: dict[int, tuple[float, S3Request]] = {}  # for the watcher and cancel
        self._ended: set[int] = set()  # requests that ended before they were registered
        self._count = 0  # requests in flight
        self._bytes = 0  # their bodies' bytes
        self._serial = 0
        self._stopping = False
        self.policy = RetryPolicy(attempts=max(1, settings.max_attempts), base=0.1, cap=20.0)
        self._watch_stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="publisher-s3-crt", daemon=True)
        self._watcher.start()

    def put(self, key: str, data: bytes, checksum: str, content_type: str, done: Done) -> None:
        """Send PutObject ``data`` at ``key``; ``done`` is called once, when it has ended.

        Blocks while the most requests allowed are in flight (``concurrency`` x
        :data:`REQUESTS_PER_WORKER`), or their bodies would pass :data:`MAX_BYTES_IN_FLIGHT`
        (a larger body goes alone). A transient failure (5xx,
        429, a throttling or timeout code, a 200 carrying an error, a broken or stalled
        connection) is tried again as the retry policy says, up to ``max_attempts``.
        """
        headers = [
            ("Host", self.host),
            ("Content-Length", str(len(data))),
            ("Content-Type", content_type),
            ("x-amz-checksum-sha256", checksum),
            ("x-amz-sdk-checksum-algorithm", "SHA256"),
            *self.static_headers,
        ]
        path = self.base_path + quote(key, safe="/~")
        size = len(data)
        with self._lock:
            self._lock.wait_for(
                lambda: (
                    self._count < self.max_requests
                    and (self._bytes == 0 or self._bytes + size <= MAX_BYTES_IN_FLIGHT)
                )
            )
            self._count += 1
            self._bytes += size
        try:
            self._send(path, headers, data, done, 1)
        except BaseException:
            self._finished(size)
            raise

    def _finished(self, size: int) -> None:
        with self._lock:
            self._count -= 1
            self._bytes -= size
            self._lock.notify_all()

    def _send(
        self, path: str, headers: list[tuple[str, str]], data: bytes, done: Done, number: int
    ) -> None:
        """Attempt ``number`` of one PutObject."""
        http, s3 = self._http, self._s3
        request = http.HttpRequest("PUT", path, http.HttpHeaders(headers), io.BytesIO(data))
        reply: dict[str, str] = {}
        with self._lock:
            self._serial += 1
            serial = self._serial

        def on_headers(status_code: int, headers: list[tuple[str, str]], **_: Any) -> None:
            reply.update((name.lower(), value) for name, value in headers)

        def on_done(
            error: BaseException | None = None,
            status_code: int | None = None,
            error_headers: list[tuple[str, str]] | None = None,
            error_body: bytes | None = None,
            **_: Any,
        ) -> None:
            with self._lock:
                if self._live.pop(serial, None) is None:
                    self._ended.add(serial)
                stopping = self._stopping
            if error is None:
                self._finished(len(data))
                done(version_of({"VersionId": reply.get("x-amz-version-id")}), None)
                return
            failure = _failure(error, status_code, error_body)
            if number < self.policy.attempts and not stopping and _transient(failure):
                hint = dict((k.lower(), v) for k, v in error_headers or ()).get("retry-after")
                wait = self.policy.delay(number, retry_after_seconds(hint))
                _log.debug("PUT %s: %s; attempt %d in %.2f s", path, failure, number + 1, wait)
                timer = threading.Timer(wait, self._resend, (path, headers, data, done, number))
                timer.daemon = True
                timer.start()
                return
            failure.publisher_attempts = number
            self._finished(len(data))
            done(None, failure)

        sent = self.client.make_request(
            type=s3.S3RequestType.PUT_OBJECT,
            request=request,
            on_headers=on_headers,
            on_done=on_done,
        )
        with self._lock:
            if serial in self._ended:
                self._ended.discard(serial)
            else:
                self._live[serial] = (time.monotonic(), sent)

    def _resend(
        self, path: str, headers: list[tuple[str, str]], data: bytes, done: Done, failed: int
    ) -> None:
        try:
            with self._lock:
                stopping = self._stopping
            if stopping:
                raise CrtRequestError("stopped before it was tried again")
            self._send(path, headers, data, done, failed + 1)
        except BaseException as exc:
            self._finished(len(data))
            done(None, exc if isinstance(exc, CrtRequestError) else _failure(exc, None, None))

    def _watch(self) -> None:
        """Cancel requests in flight for longer than the read timeout (the runtime has none)."""
        while not self._watch_stop.wait(min(1.0, self.read_timeout / 4)):
            now = time.monotonic()
            with self._lock:
                late = [r for t, r in self._live.values() if now - t > self.read_timeout]
            for request in late:
                _log.debug("cancelling a request in flight for over %.0f s", self.read_timeout)
                request.cancel()

    def stop(self) -> None:
        """Start no more retries; the requests in flight go on to their end (see :meth:`cancel`).

        After a failure or an interrupt this comes first: a PutObject cut off mid-flight
        may still be completed by the store after clean-up has deleted its key, leaving an
        object behind, so in-flight requests are left to end while clean-up waits for them.
        """
        with self._lock:
            self._stopping = True

    def cancel(self) -> None:
        """Cancel every request in flight and every retry (each still calls its ``done``)."""
        self.stop()
        with self._lock:
            live = [r for _, r in self._live.values()]
        for request in live:
            request.cancel()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no request is in flight, at most ``timeout`` seconds; whether none is."""
        with self._lock:
            return self._lock.wait_for(lambda: self._count == 0, timeout)

    def close(self) -> None:
        """Stop the watcher; the runtime's client shuts down when it is released."""
        self._watch_stop.set()


def crt_puts(
    to: Destination,
    session: Session | None,
    settings: S3Settings,
    expected_bucket_owner: str | None,
) -> CrtPuts | None:
    """A :class:`CrtPuts` for ``to``, or None where the runtime cannot carry its requests.

    None when the settings ask for botocore (``request_path``), without awscrt, behind a
    proxy (the runtime ignores ``HTTPS_PROXY``), without a session, or when the bucket's
    URL or an attribute cannot be mapped: botocore then sends every request.
    """
    if session is None or settings.request_path != "crt":
        return None
    endpoint = to.client.meta.endpoint_url
    if _proxied(endpoint):
        _log.debug("a proxy is configured for %s: requests go through botocore", endpoint)
        return None
    try:
        return CrtPuts(to, session, settings, expected_bucket_owner)
    except ImportError:
        _log.debug("awscrt is not installed: requests go through botocore")
    except Exception as exc:  # never worse than without it
        _log.debug("the AWS Common Runtime cannot be used (%s): requests go through botocore", exc)
    return None
