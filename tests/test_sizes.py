"""Sizes read from people (``_sizes.parse_size``): every accepted spelling, fractions, and a
clear error for anything else.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from publisher_core._sizes import parse_size

UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def exact(size: int) -> str:
    """``size`` in the largest unit that divides it, spelt in a few of the accepted ways."""
    for suffix, factor in reversed(UNITS.items()):
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


@given(st.integers(min_value=0, max_value=2**80))
def test_parse_size_round_trips(size):
    """Printing a size with the largest exact unit and parsing it gives it back."""
    assert parse_size(exact(size)) == size


@given(
    st.integers(min_value=0, max_value=10**12),
    st.sampled_from(list(UNITS)),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["", " "]),
)
@example(1, "K", True, True, "")
def test_parse_size_accepts_every_spelling(number, suffix, lower, iec, space):
    """K and KiB, k and kib, with or without a space, all mean 1024."""
    spelt = suffix + ("iB" if iec and suffix else "")
    text = f"{number}{space}{spelt.lower() if lower else spelt}"
    assert parse_size(text) == number * UNITS[suffix]


@given(st.integers(min_value=0, max_value=10**6), st.integers(0, 999), st.sampled_from(list(UNITS)))
def test_parse_size_rounds_fractions_down(whole, thousandths, suffix):
    """1.5G is 1.5 * 2**30 bytes; a fraction of a byte is dropped."""
    text = f"{whole}.{thousandths:03d}{suffix}"
    assert parse_size(text) == (whole * 1000 + thousandths) * UNITS[suffix] // 1000


@given(st.text())
@example("12X")
@example("1KB")
@example("-5")
@example(".")
@example("1" * 40)
def test_parse_size_is_an_int_or_a_clear_error(text):
    """Any string is either a size or a ValueError naming it and the accepted forms."""
    try:
        size = parse_size(text)
    except ValueError as exc:
        assert str(exc).startswith(f"{text!r} is not a size: ")
    else:
        assert isinstance(size, int) and size >= 0
        assert text.strip()[:1].isdigit() or text.strip().startswith(".")
