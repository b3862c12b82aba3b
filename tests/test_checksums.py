"""SHA-256 as results record it (``_checksums``): the encoding and the field validator."""

from __future__ import annotations

import base64
import hashlib

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from publisher_core import sha256_b64, sha256_of, sha256_validator


@attrs.frozen
class _Record:
    checksum_sha256: str | None = attrs.field(default=None, validator=sha256_validator())
    composite_sha256: str | None = attrs.field(
        default=None, validator=sha256_validator(composite=True)
    )


@given(st.binary(max_size=4096))
def test_sha256_of_is_base64_of_the_raw_digest(data: bytes) -> None:
    """The encoding S3 uses for x-amz-checksum-sha256: 44 characters, decoding to the digest."""
    encoded = sha256_of(data)
    assert encoded == sha256_b64(hashlib.sha256(data).digest())
    assert len(encoded) == 44 and encoded.endswith("=")
    assert base64.b64decode(encoded) == hashlib.sha256(data).digest()
    assert sha256_of(memoryview(data)) == sha256_of(bytearray(data)) == encoded


@given(st.binary(min_size=32, max_size=32), st.integers(min_value=1, max_value=10_000))
def test_every_encoded_digest_passes_the_validator(digest: bytes, parts: int) -> None:
    """What sha256_b64 writes is what the validator accepts; composite adds ``-<parts>``."""
    encoded = sha256_b64(digest)
    assert _Record(checksum_sha256=encoded).checksum_sha256 == encoded
    assert _Record(composite_sha256=f"{encoded}-{parts}").composite_sha256 == f"{encoded}-{parts}"


@pytest.mark.parametrize(
    "value",
    ["", "nope", "abc=", "A" * 44, "A" * 43 + "=" + "-1", "A" * 43 + "=\n", 42],
)
def test_anything_else_is_refused_naming_the_field(value: object) -> None:
    """Wrong length, padding, a parts suffix where none is allowed, a non-string."""
    with pytest.raises(ValueError, match=r"^ChecksumSHA256 must be a base64 SHA-256 \(44 "):
        _Record(checksum_sha256=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", ["-0", "-01", "-100000", "-", "-x"])
def test_a_composite_checksum_has_at_most_five_digits_of_parts(suffix: str) -> None:
    """S3's ``<sum>-<parts>``: parts a positive number of at most five digits."""
    with pytest.raises(ValueError, match=r"^CompositeSHA256 must be a base64 SHA-256"):
        _Record(composite_sha256="A" * 43 + "=" + suffix)
