"""Sizes in bytes, read from people (``500M``, ``1.5G``) and written for them (``1.5 KiB``).

Both directions use binary units: 1K = 1 KiB = 1024 bytes.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_SIZE_DIGITS", "format_size", "format_sizes", "parse_size"]

MAX_SIZE_DIGITS: Final = 30
"""Digits, before and after the point together, that :func:`parse_size` reads at most."""

_UNITS = {
    **{"": 0, "b": 0, "k": 1, "kib": 1, "m": 2, "mib": 2},
    **{"g": 3, "gib": 3, "t": 4, "tib": 4},
}
_SIZE = re.compile(r"\s*(\d*)(?:\.(\d*))?\s*([a-z]*)\s*", re.IGNORECASE | re.ASCII)


def parse_size(text: str) -> int:
    """Bytes from a size such as ``1048576``, ``500M``, ``1.5G`` or ``2 TiB``.

    A number of bytes, or a number with a binary suffix K, M, G or T (also KiB, MiB, GiB,
    TiB; any case; 1K = 1024). Fractions are rounded down to whole bytes. Raises
    :class:`ValueError` naming ``text`` and the accepted forms.
    """
    match = _SIZE.fullmatch(text)
    unit = _UNITS.get(match.group(3).lower()) if match else None
    if match is None or unit is None or not (match.group(1) or match.group(2)):
        raise ValueError(
            f"{text!r} is not a size: expected a number of bytes, or a number with a binary "
            "suffix K, M, G or T (or KiB, MiB, GiB, TiB; any case), e.g. 500M or 1.5G"
        )
    whole, fraction = match.group(1) or "0", match.group(2) or ""
    if len(whole) + len(fraction) > MAX_SIZE_DIGITS:
        raise ValueError(f"{text!r} is not a size: more than {MAX_SIZE_DIGITS} digits")
    scale = int(10 ** len(fraction))
    return (int(whole) * scale + int(fraction or "0")) * int(1024**unit) // scale


def format_size(size: int) -> str:
    """``size`` bytes for people: ``512 B``, ``1.5 KiB`` ... ``12.0 GiB``, ``3.0 TiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def format_sizes(size: int, limit: int) -> tuple[str, str]:
    """``size`` and the ``limit`` it went over, in bytes when they would read alike.

    ``4097 bytes`` over ``4096 bytes`` says what ``4.0 KiB`` over ``4.0 KiB`` cannot.
    """
    shown, limit_shown = format_size(size), format_size(limit)
    if shown == limit_shown:
        return f"{size} bytes", f"{limit} bytes"
    return shown, limit_shown
