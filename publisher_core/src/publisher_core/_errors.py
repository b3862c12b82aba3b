"""The exception tree of the publisher framework.

Every error the framework raises on purpose derives from :class:`PublisherError`, so a
host can catch "anything the publisher framework reports" with one ``except`` clause::

    PublisherError
    ├── SpecError (ValueError)          a spec, result record, description or setting is invalid
    ├── PluginError (LookupError)       unknown, disabled, broken or duplicated publisher Type
    ├── PublishError                    a publish that was attempted and failed
    └── DownloadError                   a ``get`` that was attempted and failed
        ├── IntegrityError              bytes that do not match their recorded size or SHA-256
        ├── UnsafePathError             an item or archive entry that would land outside the target
        └── TargetExistsError           the output directory exists and is not empty

Messages are single lines meant for people; they never contain credentials or the query
string of a pre-signed URL.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence

__all__ = [
    "DownloadError",
    "IntegrityError",
    "PluginError",
    "PublishError",
    "PublisherError",
    "SpecError",
    "TargetExistsError",
    "UnsafePathError",
    "quoted",
]

SHOWN_PROBLEMS = 20
"""Problems a :class:`SpecError` message lists; ``problems`` keeps them all."""

QUOTE_LIMIT = 80
"""Characters of a value an error message quotes, at most (see :func:`quoted`)."""


class _BoundedRepr(reprlib.Repr):
    """``repr`` that looks at a bounded part of a value, however large or shared it is."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxstring = self.maxother = self.maxlong = limit
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = 6


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for quoting input in a message.

    The work is bounded too: a YAML alias bomb (a small document whose aliases expand to
    billions of values) or a megabyte string costs no more to quote than a short value.
    Control characters stay escaped, as ``repr`` shows them.
    """
    text = _BoundedRepr(limit).repr(value)
    if len(text) > limit + 3:
        text = text[:limit] + "..."
    return text


class PublisherError(Exception):
    """Root of every error the publisher framework raises on purpose."""


class SpecError(PublisherError, ValueError):
    """A spec, published result, download description or operator setting is invalid.

    ``problems`` holds every problem found, each naming its field path
    (``unknown parameter 'Bucke' @ $.Params.Bucke (did you mean 'Bucket'?)``); the message
    joins them on one line.
    """

    def __init__(self, problems: str | Sequence[str], *, what: str = "spec") -> None:
        self.problems: tuple[str, ...] = (
            (problems,) if isinstance(problems, str) else tuple(problems)
        )
        self.what = what
        if len(self.problems) == 1:
            message = f"invalid {what}: {self.problems[0]}"
        else:
            joined = "; ".join(self.problems[:SHOWN_PROBLEMS])
            if len(self.problems) > SHOWN_PROBLEMS:
                joined += f"; and {len(self.problems) - SHOWN_PROBLEMS} more"
            message = f"invalid {what} ({len(self.problems)} problems): {joined}"
        super().__init__(message)


class PluginError(PublisherError, LookupError):
    """A publisher Type is unknown, disabled, failed to load, or is claimed twice."""


class PublishError(PublisherError):
    """A publish was attempted and failed; nothing half-written is left visible."""


class DownloadError(PublisherError):
    """A ``get`` was attempted and failed; the output directory was not populated."""


class IntegrityError(DownloadError):
    """Downloaded bytes do not match the size or SHA-256 the result recorded."""


class UnsafePathError(DownloadError):
    """An item or archive member would be written outside the target, or is a device."""


class TargetExistsError(DownloadError, FileExistsError):
    """The output directory of ``get`` exists and is not empty."""
