"""SHA-256 as results record it: base64 of the raw digest, and the check of a recorded one.

The encoding is S3's ``x-amz-checksum-sha256``, so a store that keeps the checksum of an
object keeps the very value a result records.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any

from ._convert import capital_name

__all__ = ["sha256_b64", "sha256_of", "sha256_validator"]


def sha256_b64(digest: bytes) -> str:
    """Base64 of a raw SHA-256 digest: the encoding S3 uses for ``x-amz-checksum-sha256``."""
    return base64.b64encode(digest).decode("ascii")


def sha256_of(data: bytes | bytearray | memoryview) -> str:
    """Base64 SHA-256 of ``data`` (see :func:`sha256_b64`)."""
    return sha256_b64(hashlib.sha256(data).digest())


_SHA256_B64 = re.compile(r"[A-Za-z0-9+/]{43}=")
_COMPOSITE = re.compile(_SHA256_B64.pattern + r"(-[1-9][0-9]{0,4})?")  # S3's <sum>-<parts>


def sha256_validator(*, composite: bool = False) -> Callable[[object, Any, object], None]:
    """An attrs validator for an optional base64 SHA-256 field of a result.

    ``composite`` also admits S3's multipart form ``<base64>-<parts>``, which results
    written by other tools (Bacalhau) record. The error names the field in CapitalCase.
    """
    pattern = _COMPOSITE if composite else _SHA256_B64

    def check(_instance: object, attribute: Any, value: object) -> None:
        if value is None or (isinstance(value, str) and pattern.fullmatch(value)):
            return
        raise ValueError(
            f"{capital_name(attribute.name)} must be a base64 SHA-256 (44 characters "
            f"ending in '='), got {value!r}"
        )

    return check
