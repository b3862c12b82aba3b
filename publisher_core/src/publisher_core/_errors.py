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
string of a pre-signed URL. What is wrong with an input stays structured until then: a
:class:`Problem` is a path and a message, and only the error's message renders it.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Sequence

import attrs

__all__ = [
    "DownloadError",
    "IntegrityError",
    "PluginError",
    "Problem",
    "PublishError",
    "PublisherError",
    "SpecError",
    "TargetExistsError",
    "UnsafePathError",
    "quoted",
    "summarize",
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


_TEXT = attrs.validators.instance_of(str)


@attrs.frozen
class Problem:
    """One thing wrong with a spec, a result, a setting or a value, and where it is.

    ``path`` is the place: a path into the document (``$.Params.Key``, ``$.Items[2]``), the
    environment variable a setting came from (``PUBLISHER_S3_CONCURRENCY``), or None when
    the problem concerns the input as a whole or ``message`` names its place itself.
    ``hint`` is what follows the place (`` (did you mean 'Key'?); known: Bucket, Key``).

    ``str(problem)`` is how messages show it: ``{message} @ {path}{hint}``, such as
    ``unknown parameter 'Kye' @ $.Params.Kye (did you mean 'Key'?)``, or
    ``{message}{hint}`` when there is no path.
    """

    path: str | None = attrs.field(validator=attrs.validators.optional(_TEXT))
    message: str = attrs.field(validator=_TEXT)
    hint: str = attrs.field(default="", validator=_TEXT)

    def __str__(self) -> str:
        place = f" @ {self.path}" if self.path else ""
        return f"{self.message}{place}{self.hint}"


def summarize(
    items: Iterable[object],
    shown: int,
    *,
    separator: str = "; ",
    before_more: str | None = None,
) -> str:
    """The first ``shown`` of ``items`` (as ``str``) joined by ``separator``, then how many more.

    ``summarize(["a", "b", "c"], 2)`` is ``a; b; and 1 more``; no items give the empty
    string. ``before_more`` goes before ``and N more`` instead of ``separator``
    (``summarize(names, 2, separator=", ", before_more=" ")`` is ``a, b and 1 more``).
    Only the items shown are turned into text.
    """
    listed = items if isinstance(items, Sequence) else list(items)
    head = [str(item) for item in listed[: max(shown, 0)]]
    text = separator.join(head)
    rest = len(listed) - len(head)
    if rest > 0:
        joint = (separator if before_more is None else before_more) if head else ""
        text += f"{joint}and {rest} more"
    return text


class PublisherError(Exception):
    """Root of every error the publisher framework raises on purpose."""


class SpecError(PublisherError, ValueError):
    """A spec, published result, download description or operator setting is invalid.

    ``details`` holds every problem found, each a :class:`Problem` naming its place;
    ``problems`` is the same as text, each ending in its place
    (``unknown parameter 'Bucke' @ $.Params.Bucke (did you mean 'Bucket'?)``). The
    message joins them on one line, the first :data:`SHOWN_PROBLEMS` of them and a count
    of the rest. A string given for a problem is a :class:`Problem` without a path: its
    text says where, as it did before problems had paths of their own.
    """

    def __init__(
        self, problems: str | Problem | Iterable[str | Problem], *, what: str = "spec"
    ) -> None:
        given = (problems,) if isinstance(problems, (str, Problem)) else problems
        self.details: tuple[Problem, ...] = tuple(
            p if isinstance(p, Problem) else Problem(None, p) for p in given
        )
        self.what = what
        if len(self.details) == 1:
            message = f"invalid {what}: {self.details[0]}"
        else:
            shown = summarize(self.details, SHOWN_PROBLEMS)
            message = f"invalid {what} ({len(self.details)} problems): {shown}"
        super().__init__(message)

    @property
    def problems(self) -> tuple[str, ...]:
        """Every problem as text (``str`` of each of :attr:`details`)."""
        return tuple(str(p) for p in self.details)


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
