"""One retry policy: how many attempts, and how long to wait before each new one.

Waits grow exponentially with full jitter (a uniform draw below the ceiling, so that many
clients failing at once do not retry in step), or follow the server's hint (HTTP
``Retry-After``) up to a limit. ``get`` uses it for every HTTP(S) download; a publisher
may use it for reads its SDK does not retry (a body cut short or changed on its way).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Final, TypeVar

import attrs

__all__ = [
    "DEFAULT_ATTEMPTS",
    "RETRY_STATUSES",
    "RetryPolicy",
    "TransientError",
    "retry_after_seconds",
]

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

DEFAULT_ATTEMPTS: Final = 5
"""Tries per HTTP(S) download in ``get``, the first one included."""
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses another attempt may get past; any other 4xx or 5xx is final."""

# Past this many failures the exponential ceiling is the cap for any sensible base; the
# exponent stops here so that 2**n never overflows a float.
_MAX_DOUBLINGS = 64


def _seconds(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number of seconds >= 0, not {value}")


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds; None if absent or an HTTP date."""
    value = (value or "").strip()
    if not value.isascii() or not value.isdigit():
        return None
    return float(value)


class TransientError(Exception):
    """A failure another attempt may fix; ``reason`` says what went wrong, safe to show.

    ``retry_after`` is the server's hint in seconds (``Retry-After``), if it gave one.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Up to ``attempts`` tries; between them, full-jitter exponential backoff or a hint.

    After failure ``n`` (1, 2, ...) the wait is drawn uniformly from
    ``[0, min(cap, base * 2**(n-1))]`` seconds. A failure that carries the server's own
    hint (``Retry-After`` in seconds) waits that long instead, but never more than
    ``retry_after_cap``: a server cannot park a client for an hour. The defaults are
    ``get``'s: 5 attempts, 0.25 s doubling to at most 20 s, hints up to 20 s.

    Raises :class:`ValueError` for fewer than one attempt or a negative or infinite time.
    """

    attempts: int = attrs.field(default=DEFAULT_ATTEMPTS, validator=attrs.validators.ge(1))
    base: float = attrs.field(default=0.25, validator=_seconds)
    cap: float = attrs.field(default=20.0, validator=_seconds)
    retry_after_cap: float = attrs.field(default=20.0, validator=_seconds)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` failed attempts (1 or more).

        ``retry_after`` is the server's hint, in seconds; it is used up to
        ``retry_after_cap``. A hint that is not a number of seconds >= 0 is ignored.
        """
        if retry_after is not None and retry_after >= 0:  # False for NaN
            return min(retry_after, self.retry_after_cap)
        doublings = min(max(failures, 1) - 1, _MAX_DOUBLINGS)
        ceiling = min(self.cap, self.base * 2.0**doublings)
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret

    def run(
        self,
        attempt: Callable[[int], T],
        *,
        retry_on: type[E] | tuple[type[E], ...],
        retry_after: Callable[[E], float | None] | None = None,
        on_retry: Callable[[E, int, float], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> T:
        """Call ``attempt(1)``, ``attempt(2)``, ... until one returns; return its value.

        An exception of ``retry_on`` is retried while attempts remain, after
        ``on_retry(error, failures, wait)`` and ``sleep(wait)``; ``retry_after(error)``
        gives the server's hint, if any. The last attempt's exception is raised as it is,
        so the caller words the final error (it knows the count: :attr:`attempts`). Any
        other exception is raised at once.
        """
        for number in range(1, self.attempts + 1):
            try:
                return attempt(number)
            except retry_on as error:
                if number == self.attempts:
                    raise
                wait = self.delay(number, retry_after(error) if retry_after else None)
                if on_retry is not None:
                    on_retry(error, number, wait)
                sleep(wait)
        raise AssertionError("unreachable: attempts >= 1")
