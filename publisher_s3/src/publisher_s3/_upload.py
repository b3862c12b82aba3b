"""An upload in either mode: what it is asked to do, and how it ends.

Each mode (``_archive``, ``_directory``) takes an :class:`UploadRequest`. A finished
upload returns an :class:`UploadOutcome`; a failed one, or one whose record cannot be
made, calls :func:`abandon`, which removes everything the publish wrote (see
``_cleanup``) and raises one error naming the failure and what could not be removed.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import attrs

from publisher_core import PublishError, summarize

from ._cleanup import WriteLog
from ._client import describe_client_error, error_code
from ._spec import S3Settings
from ._transfer import Destination

__all__ = ["UploadOutcome", "UploadRequest", "abandon"]

_log = logging.getLogger(__name__)


@attrs.frozen(eq=False)
class UploadRequest:
    """One result to write at ``key`` of ``to``, in either mode.

    ``overwrite`` chooses what happens to an earlier result at the key (``_overwrite``).
    """

    to: Destination
    key: str
    settings: S3Settings
    overwrite: bool = True

    def new_log(self) -> WriteLog:
        """A clean-up log for this upload's writes."""
        return WriteLog(self.to.client, self.to.bucket)


@attrs.frozen(kw_only=True)
class UploadOutcome:
    """What an upload stored; for a directory, the version and checksum are the manifest's."""

    size: int
    checksum_sha256: str
    version_id: str | None
    files: int
    manifest_key: str | None = None


def _listing(left: list[str]) -> str:
    return summarize(left, 10, separator=", ", before_more=" ")


def abandon(exc: BaseException, log: WriteLog, bucket: str, key: str) -> NoReturn:
    """Remove what this publish wrote, then raise one error naming the failure.

    The error also says what could not be removed; an interrupt is re-raised as it is,
    after the clean-up, and a warning names what could not be removed.
    """
    left = log.cleanup()
    if not isinstance(exc, Exception):
        if left:
            _log.warning("publish stopped; could not remove: %s", _listing(left))
        raise exc
    if isinstance(exc, PublishError):
        message = str(exc)
    elif error_code(exc) == "PreconditionFailed":  # a create-only write (Overwrite: false)
        message = (
            f"s3://{bucket}/{key} was created by another publish while this one ran; "
            "Overwrite is false, so this publish removed what it wrote"
        )
    else:
        message = describe_client_error(exc, bucket, key)
    if left:
        message += f"; could not remove: {_listing(left)}"
    raise PublishError(message) from exc
