"""Reading the bytes behind a URL (``file``, ``http``, ``https``) for ``get``.

A :class:`Transport` serves one ``get``: it keeps HTTP(S) connections open and reuses
them, per host, from one download to the next (a urllib3 pool manager, closed with the
transport). What it does per request is what ``get`` always did:

- a timeout on connecting and on every read; up to 10 redirects (301, 302, 303, 307,
  308) to http or https URLs; TLS verified against the system's certificates, as
  :func:`ssl.create_default_context` does; ``http_proxy``, ``https_proxy`` and
  ``no_proxy`` honoured as :mod:`urllib.request` reads them;
- the bytes exactly as stored (no content decoding), with ``Body.length`` saying how
  much of a ``Content-Length`` never arrived;
- failures sorted for the retry policy: what another attempt may fix (HTTP 429, 500, 502,
  503 and 504 with their ``Retry-After``; refused, reset or dropped connections; timeouts;
  malformed replies; anything that breaks a body) is a :class:`TransientError`, anything
  else a :class:`~publisher_core.DownloadError`.

Nothing here quotes a URL's query string or user info (a pre-signed URL's signature is
in it): errors name :func:`~publisher_core.redact_url`'s form, exception texts that may
contain the URL are never quoted, and query strings are cut from what urllib3 logs.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, Protocol
from urllib.parse import unquote, urljoin, urlsplit

from ._crt import RUNTIME_MAX_SIZE, RuntimeFiles
from ._errors import DownloadError
from ._models import redact_url
from ._retry import RETRY_STATUSES, TransientError, retry_after_seconds

if TYPE_CHECKING:
    import ssl
    from urllib.parse import SplitResult

    from urllib3 import BaseHTTPResponse, PoolManager, Timeout

__all__ = [
    "DEFAULT_TIMEOUT",
    "REQUEST_PATH_VARIABLE",
    "RETRY_STATUSES",
    "RUNTIME_MAX_SIZE",
    "Body",
    "TransientError",
    "Transport",
]

DEFAULT_TIMEOUT: Final = 60.0
"""Seconds ``get`` waits on a silent connection or read before the attempt fails."""
MAX_REDIRECTS: Final = 10
"""Redirects followed per request, as :mod:`urllib.request` follows them."""
REQUEST_PATH_VARIABLE: Final = "PUBLISHER_GET_REQUEST_PATH"
"""``urllib3`` sends every request of ``get`` through urllib3; ``crt`` (the default) lets
small downloads go through the AWS Common Runtime where it is installed
(:mod:`publisher_core._crt`)."""

_log = logging.getLogger(__name__)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DRAIN_LIMIT = 64 * 1024  # an error or redirect body this small is read, to keep its connection
_URLLIB3_LOGGERS = (
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
)


class Body(Protocol):
    """The body of a response, read into a caller's buffer."""

    @property
    def length(self) -> int | None:
        """Bytes of a ``Content-Length`` not read yet (None: unknown, or not HTTP)."""
        ...

    def readinto(self, buffer: memoryview, /) -> int:
        """Fill ``buffer`` from the body; 0 at its end. :class:`TransientError` if it broke."""
        ...


def _safe_text(text: str, *urls: str) -> str | None:
    """``text`` unless it may quote the query string or user info of one of ``urls``."""
    for url in urls:
        parts = urlsplit(url)
        secrets = [parts.query, parts.username or "", parts.password or ""]
        if any(s and s in text for s in secrets):
            return None
    return text


def _timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` is a connect or read timeout (urllib3's, whatever lies under it)."""
    import urllib3.exceptions as u3

    if isinstance(exc, u3.NewConnectionError):  # a subclass of ConnectTimeoutError
        return False
    return isinstance(exc, (TimeoutError, u3.TimeoutError))


def _cause(exc: BaseException) -> BaseException:
    """The error under urllib3's wrappers: the socket's, ssl's or http.client's own."""
    import urllib3.exceptions as u3

    for _ in range(8):  # wrappers nest a few levels deep at most
        if _timed_out(exc):
            break
        inner: object = None
        if isinstance(exc, u3.MaxRetryError):
            inner = exc.reason
        elif isinstance(exc, u3.HTTPError):
            inner = exc.__cause__
            if inner is None and isinstance(exc, (u3.ProtocolError, u3.ProxyError)):
                inner = exc.args[1] if len(exc.args) > 1 else None
            if inner is None and isinstance(exc, u3.SSLError):
                inner = exc.args[0] if exc.args else None
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def _failure(exc: BaseException, url: str, timeout: float) -> TransientError | str:
    """What an error of a request means: retryable, or the final reason.

    Never quotes the exception's own message, which may contain the URL.
    """
    import http.client
    import socket

    import urllib3.exceptions as u3

    exc = _cause(exc)
    if _timed_out(exc):
        return TransientError(f"timed out after {timeout:g} s")
    if isinstance(exc, http.client.RemoteDisconnected):
        return TransientError("the server closed the connection without a response")
    if isinstance(exc, ConnectionError):
        return TransientError(_safe_text(exc.strerror or "", url) or type(exc).__name__)
    if isinstance(exc, socket.gaierror):
        reason = _safe_text(exc.strerror or "", url) or "name resolution failed"
        return TransientError(reason) if exc.errno == socket.EAI_AGAIN else reason
    if isinstance(exc, http.client.IncompleteRead):
        got = exc.partial if isinstance(exc.partial, int) else len(exc.partial)
        return TransientError(f"the connection closed after {got} bytes of the body")
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, http.client.InvalidURL):
        return TransientError(f"malformed HTTP response ({type(exc).__name__})")
    if isinstance(exc, u3.ProtocolError):  # a broken reply urllib3 found on its own
        return TransientError(f"malformed HTTP response ({type(exc).__name__})")
    if isinstance(exc, OSError) and exc.strerror:
        return _safe_text(exc.strerror, url) or type(exc).__name__
    return type(exc).__name__


def _read_error(exc: BaseException, url: str, timeout: float) -> TransientError:
    """A body that broke off: always worth another attempt."""
    outcome = _failure(exc, url, timeout)
    why = outcome.reason if isinstance(outcome, TransientError) else outcome
    return TransientError(f"{why} while reading the body")


class _FileBody:
    """A local file's bytes."""

    length = None

    def __init__(self, handle: io.BufferedReader, url: str) -> None:
        self._handle = handle
        self._url = url

    def readinto(self, buffer: memoryview, /) -> int:
        try:
            return self._handle.readinto(buffer)
        except OSError as exc:
            raise _read_error(exc, self._url, 0) from None


class _HttpBody:
    """An HTTP response's bytes, as sent (never decoded)."""

    def __init__(self, response: BaseHTTPResponse, url: str, timeout: float) -> None:
        self._response = response
        self._url = url
        self._timeout = timeout
        self.ended = False

    @property
    def length(self) -> int | None:
        return self._response.length_remaining

    def readinto(self, buffer: memoryview, /) -> int:
        import http.client

        import urllib3.exceptions as u3

        try:
            count = self._response.readinto(buffer)
        except (u3.HTTPError, OSError, http.client.HTTPException) as exc:
            raise _read_error(exc, self._url, self._timeout) from None
        self.ended = count == 0
        return count


class _RedactQueries(logging.Filter):
    """Cut query strings out of urllib3's log records: the request line carries them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                f"{a.partition('?')[0]}?<redacted>" if isinstance(a, str) and "?" in a else a
                for a in record.args
            )
        return True


_redaction_lock = threading.Lock()


def _redact_urllib3_logs() -> None:
    """Put a :class:`_RedactQueries` on each urllib3 logger that names URLs, once."""
    with _redaction_lock:
        for name in _URLLIB3_LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, _RedactQueries) for f in logger.filters):
                logger.addFilter(_RedactQueries())


def _discard(response: BaseHTTPResponse) -> None:
    """Be done with an unwanted response: read a short body, else close the connection.

    A connection whose response was read to its end can serve the next request.
    """
    remaining = response.length_remaining
    if remaining is not None and remaining <= _DRAIN_LIMIT:
        response.drain_conn()
    else:
        response.close()
    response.release_conn()


class Transport:
    """Opens ``file``, ``http`` and ``https`` URLs for one ``get``, reusing connections.

    Up to ``connections`` connections per host are kept open for later requests (the
    number of downloads that run at once). Use it as a context manager, or call
    :meth:`close`, which closes them all. ``timeout`` (seconds) is the default for
    connecting and for each read. Thread-safe.
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        connections: int = 8,
        runtime: bool | None = None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be more than 0 seconds, not {timeout}")
        self.timeout = timeout
        self.connections = max(1, connections)
        if runtime is None:
            runtime = os.environ.get(REQUEST_PATH_VARIABLE, "crt").strip().lower() != "urllib3"
        self._runtime: RuntimeFiles | None = None
        self._runtime_wanted = runtime
        self._answered: set[tuple[str, str]] = set()  # (scheme, netloc) urllib3 was answered by
        self._avoided: set[tuple[str, str]] = set()  # hosts the runtime cannot serve
        self._lock = threading.Lock()
        self._managers: dict[str | None, PoolManager] = {}
        self._proxies: dict[str, str] | None = None
        self._tls: ssl.SSLContext | None = None
        self._timeout: Timeout | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"Transport(timeout={self.timeout:g}, connections={self.connections}, "
            f"runtime={self._runtime_wanted})"
        )

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection; the transport opens no more."""
        with self._lock:
            self._closed = True
            managers, self._managers = list(self._managers.values()), {}
            runtime, self._runtime = self._runtime, None
        for manager in managers:
            manager.clear()
        if runtime is not None:
            runtime.close()

    @contextmanager
    def open(self, url: str, timeout: float | None = None) -> Iterator[Body]:
        """The body of ``url`` (``file``, ``http`` or ``https``), while the block runs.

        Raises :class:`TransientError` for what another attempt may fix (see the module)
        and :class:`~publisher_core.DownloadError` for the rest: a missing file, an HTTP
        403 or 404, a certificate that does not verify, ... A body read to its end leaves
        its connection open for the next request; one left early closes it.
        """
        parts = urlsplit(url)
        if parts.scheme == "file":
            try:
                handle = open(unquote(parts.path), "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                raise DownloadError(f"{redact_url(url)}: no such file") from None
            with handle:
                yield _FileBody(handle, url)
            return
        seconds = self.timeout if timeout is None else timeout
        response = self._get(url, seconds)
        if parts.scheme == "https":  # its certificate verified: the runtime may go there
            with self._lock:
                self._answered.add((parts.scheme, parts.netloc))
        body = _HttpBody(response, url, seconds)
        try:
            yield body
        finally:
            if not body.ended:
                response.close()
            response.release_conn()

    def runtime_for(self, parts: SplitResult) -> RuntimeFiles | None:
        """The runtime, where it may carry a small download of ``parts`` (made once).

        None for a host the runtime cannot serve (:meth:`avoid`), one a proxy
        applies to, an https host urllib3 has not yet been answered by, or when the
        runtime is turned off or not installed. One thread drives what it returns.
        """
        if not self._runtime_wanted or parts.scheme not in ("http", "https"):
            return None
        if self._proxy_for(parts) is not None:
            return None  # the runtime reads no *_proxy variable
        host = (parts.scheme, parts.netloc)
        with self._lock:
            if self._closed:
                raise RuntimeError("the transport is closed")
            if host in self._avoided:
                return None
            if parts.scheme == "https" and host not in self._answered:
                return None  # the standard library verifies the host's certificate first
            if self._runtime is None:
                try:
                    self._runtime = RuntimeFiles(timeout=self.timeout)
                except ImportError:
                    _log.debug("awscrt is not installed: every GET goes through urllib3")
                    self._runtime_wanted = False
                    return None
            return self._runtime

    def awaits_tls(self, parts: SplitResult) -> bool:
        """Whether the runtime would carry ``parts`` once urllib3 has verified its host."""
        with self._lock:
            waiting = parts.scheme == "https" and (parts.scheme, parts.netloc) not in (
                self._answered | self._avoided
            )
        return waiting and self._runtime_wanted and self._proxy_for(parts) is None

    def avoid(self, parts: SplitResult) -> None:
        """The runtime cannot serve this host: its later requests go to urllib3."""
        with self._lock:
            self._avoided.add((parts.scheme, parts.netloc))

    def _get(self, url: str, timeout: float) -> BaseHTTPResponse:
        """The 2xx response to ``GET url``, redirects followed; raises for anything else."""
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            response = self._send(current, url, timeout)
            location = response.status in _REDIRECTS and response.get_redirect_location()
            if not location or hop == MAX_REDIRECTS:
                break
            _discard(response)
            current = urljoin(current, location)
            scheme = urlsplit(current).scheme
            if scheme not in ("http", "https"):
                raise DownloadError(
                    f"GET {redact_url(url)} failed: HTTP {response.status} redirected it to "
                    f"a {scheme or 'relative'} URL; expected http or https"
                )
        if 200 <= response.status < 300:
            return response
        text = _safe_text(response.reason or "", url, current) or ""
        reason = f"HTTP {response.status} {text}".rstrip()
        if location:
            reason += f" after {MAX_REDIRECTS} redirects"
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        _discard(response)
        if response.status in RETRY_STATUSES:
            raise TransientError(reason, retry_after=retry_after)
        raise DownloadError(f"GET {redact_url(url)} failed: {reason}")

    def _send(self, url: str, original: str, timeout: float) -> BaseHTTPResponse:
        """One request on a pooled connection; network failures sorted."""
        import http.client

        import urllib3.exceptions as u3

        parts = urlsplit(url)
        try:
            proxy = self._proxy_for(parts)
            tls = {"ssl_context": self._context()} if parts.scheme == "https" else None
            pool = self._manager(proxy).connection_from_host(
                parts.hostname, parts.port, parts.scheme, pool_kwargs=tls
            )
            # The request target exactly as given (urllib3 would remove dot segments from
            # the path, and a signature covers the path); absolute through an http proxy.
            start = url.index("//") + 2 + len(parts.netloc)
            target = url if proxy and parts.scheme == "http" else url[start:]
            return pool.urlopen(
                "GET",
                target.partition("#")[0] or "/",
                redirect=False,
                assert_same_host=False,
                timeout=self._timeouts(timeout),
                preload_content=False,
                decode_content=False,
                enforce_content_length=False,  # a short body shows in Body.length
            )
        except (u3.HTTPError, OSError, ValueError, http.client.HTTPException) as exc:
            outcome = _failure(exc, original, timeout)
        if isinstance(outcome, TransientError):
            raise outcome
        raise DownloadError(f"GET {redact_url(original)} failed: {outcome}")

    def _manager(self, proxy: str | None) -> PoolManager:
        """The pool manager for requests through ``proxy`` (None: direct), made once."""
        import urllib3

        with self._lock:
            if self._closed:
                raise RuntimeError("the transport is closed")
            manager = self._managers.get(proxy)
            if manager is None:
                _redact_urllib3_logs()
                # retries=False: the retry policy decides, with its own count and waits.
                if proxy is None:
                    manager = urllib3.PoolManager(
                        maxsize=self.connections, block=False, retries=False
                    )
                else:
                    user = urlsplit(proxy)
                    headers = None
                    if user.username is not None:  # as urllib.request's ProxyHandler does
                        auth = f"{unquote(user.username)}:{unquote(user.password or '')}"
                        headers = urllib3.make_headers(proxy_basic_auth=auth)
                    manager = urllib3.ProxyManager(
                        proxy,
                        proxy_headers=headers,
                        maxsize=self.connections,
                        block=False,
                        retries=False,
                    )
                self._managers[proxy] = manager
            return manager

    def _timeouts(self, seconds: float) -> Timeout:
        """Connect and read timeouts of ``seconds`` (the transport's own made once)."""
        import urllib3

        if seconds != self.timeout:
            return urllib3.Timeout(connect=seconds, read=seconds)
        if self._timeout is None:
            self._timeout = urllib3.Timeout(connect=seconds, read=seconds)
        return self._timeout

    def _context(self) -> ssl.SSLContext:
        """The TLS settings of every https connection: the standard library's defaults."""
        import ssl

        with self._lock:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            return self._tls

    def _proxy_for(self, parts: SplitResult) -> str | None:
        """The proxy ``http_proxy``/``https_proxy`` name for a URL, unless ``no_proxy``."""
        import urllib.request

        if self._proxies is None:
            self._proxies = urllib.request.getproxies()
        proxy = self._proxies.get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.netloc.rpartition("@")[2]):
            return None
        return proxy if "://" in proxy else f"http://{proxy}"
