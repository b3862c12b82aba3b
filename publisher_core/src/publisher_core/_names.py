"""Names as users write them, matched against the names a program knows.

One rule everywhere a user writes a name the core knows (spec parameters, document fields,
settings and their variables): names match when they are equal in any case, ignoring
``_`` and ``-`` (:func:`normalize_name`). A name that matches nothing gets the closest
known name as a did-you-mean, when one is close enough.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ._errors import quoted

__all__ = ["KnownNames", "did_you_mean", "normalize_name"]

SUGGESTION_CUTOFF = 0.6
"""How alike (``difflib``'s ratio, of the normalised forms) a name must be to be suggested."""


def normalize_name(name: str) -> str:
    """The form names are compared in: lower case, without ``_`` and ``-``."""
    return name.replace("_", "").replace("-", "").lower()


class KnownNames:
    """The names a user may write in one place, in the spelling messages show.

    ``KnownNames(["Bucket", "Key"]).match("bucket")`` is ``"Bucket"``; a name that matches
    none (``"Kye"``) gets a :meth:`did_you_mean` suffix and the :meth:`unknown` hint that
    lists every known name. Of known names that are equal once normalised, the last wins.
    """

    __slots__ = ("_by_norm", "names")

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(names)
        self._by_norm = {normalize_name(name): name for name in self.names}

    def __repr__(self) -> str:
        return f"KnownNames({list(self.names)!r})"

    def match(self, written: str) -> str | None:
        """The known name ``written`` stands for, or None."""
        return self._by_norm.get(normalize_name(written))

    def closest(self, written: str) -> str | None:
        """The known name most like ``written``, if any is alike enough to suggest."""
        close = difflib.get_close_matches(
            normalize_name(written), list(self._by_norm), n=1, cutoff=SUGGESTION_CUTOFF
        )
        return self._by_norm[close[0]] if close else None

    def did_you_mean(self, written: str) -> str:
        """`` (did you mean 'X'?)`` for the :meth:`closest` name, or the empty string."""
        close = self.closest(written)
        return f" (did you mean {quoted(close)}?)" if close is not None else ""

    def unknown(self, written: str) -> str:
        """What follows a name that matches none: the did-you-mean and ``; known: A, B``."""
        return f"{self.did_you_mean(written)}; known: {', '.join(self.names)}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest of ``choices``, or the empty string."""
    return KnownNames(choices).did_you_mean(word)
