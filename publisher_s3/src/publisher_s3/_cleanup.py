"""What a publish wrote, recorded before each request, and its removal after a failure.

Every key is recorded *before* the request that may create it, so an interrupt or a lost
reply cannot leave an object (a manifest above all) that clean-up does not know about.
Deletion is version-aware: in a versioned bucket a plain delete would only hide an
earlier good result behind a delete marker, so the versions this publish created are
deleted instead, and the earlier result stays the latest.

A CompleteMultipartUpload whose reply never came (an interrupt, a lost connection) may
still turn the upload into an object after clean-up began: such an upload cannot be
aborted any more, so clean-up waits a little for the object to appear and removes it.

Request code reports to a :class:`CleanupLog`, the log's verbs and nothing else:
:class:`WriteLog` keeps them for clean-up; a helper process's log forwards them to its
parent's (see ``_helpers``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Final, Protocol

from ._client import attempts_of, error_code, is_missing, reached_store

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

__all__ = [
    "JUDGED_VERBS",
    "LOG_VERBS",
    "CleanupLog",
    "WriteLog",
    "started_now",
    "unsent",
    "uploads_of",
]

_log = logging.getLogger(__name__)
_CLOCK_SLACK = timedelta(seconds=1)
LATE_COMPLETE_WAIT = 5.0
"""Seconds clean-up watches for the object of a completion whose reply never came."""
_LATE_COMPLETE_POLL = 0.2


def started_now() -> datetime:
    """Now, less the clock slack: what a store may stamp on an object created from now on."""
    return datetime.now(timezone.utc) - _CLOCK_SLACK


def uploads_of(client: S3Client, bucket: str, key: str) -> list[str]:
    """Ids of the incomplete multipart uploads of exactly ``key``."""
    found: list[str] = []
    paginator = client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        found += [u["UploadId"] for u in page.get("Uploads", []) if u["Key"] == key]
    return found


LOG_VERBS: Final = (
    "writing",
    "not_written",
    "forget",
    "hid",
    "written",
    "removed",
    "creating",
    "not_created",
    "forget_upload",
    "created",
    "completing",
    "completed",
)
"""The methods of :class:`CleanupLog`, by name (a helper forwards them by name)."""

JUDGED_VERBS: Final = ("not_written", "not_created")
"""Verbs that take the request's exception: judged (:func:`unsent`) where it was raised.

A helper process cannot send an exception to its parent; it sends ``forget`` or
``forget_upload`` instead, where the exception proves the request created nothing.
"""


class CleanupLog(Protocol):
    """What request code tells the clean-up log: each verb before or after its request.

    The methods are :data:`LOG_VERBS`; :class:`WriteLog` records them for clean-up, a
    helper process's log forwards them to its parent's ``WriteLog``.
    """

    @property
    def started(self) -> datetime:
        """When the log began, less the clock slack (see :func:`started_now`)."""

    def writing(self, key: str) -> None:
        """Record ``key`` before the request that may create it."""

    def not_written(self, key: str, exc: BaseException) -> None:
        """The request on ``key`` failed with ``exc``: forget it if it created nothing."""

    def forget(self, key: str) -> None:
        """Forget the request on ``key`` announced by :meth:`writing`: it created nothing."""

    def hid(self, key: str, marker_version: str | None) -> None:
        """Record a delete marker this publish put on ``key``."""

    def written(self, key: str, version_id: str | None) -> None:
        """Record the version a request created (None: the store keeps no versions)."""

    def removed(self, key: str) -> None:
        """Forget everything written at ``key``: this publish has removed it itself."""

    def creating(self, key: str) -> None:
        """Record a CreateMultipartUpload about to be sent."""

    def not_created(self, key: str, exc: BaseException) -> None:
        """A CreateMultipartUpload failed with ``exc``: forget it if it created nothing."""

    def forget_upload(self, key: str) -> None:
        """Forget a CreateMultipartUpload of ``key`` that created nothing."""

    def created(self, key: str, upload_id: str) -> None:
        """Record the upload id a CreateMultipartUpload returned."""

    def completing(self, upload_id: str) -> None:
        """Record a CompleteMultipartUpload about to be sent."""

    def completed(self, upload_id: str) -> None:
        """Forget an upload that was completed (its key is recorded separately)."""


class WriteLog:
    """Keys (with the version each created, once known) and multipart uploads of one publish.

    A :class:`CleanupLog` that can also :meth:`cleanup`.
    """

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client, self.bucket = client, bucket
        self.started = started_now()
        self._lock = threading.Lock()
        self._pending: set[str] = set()  # keys a request in flight, or lost, may create
        self._versions: list[ObjectIdentifierTypeDef] = []  # versions (and delete markers) made
        self._unversioned: set[str] = set()  # keys written where the store gave no version
        self._uploads: dict[str, str] = {}  # upload id -> key
        self._creating: set[str] = set()  # keys whose CreateMultipartUpload got no reply
        self._completing: set[str] = set()  # upload ids whose Complete was sent

    def writing(self, key: str) -> None:
        """Record ``key`` before the request that may create it."""
        with self._lock:
            self._pending.add(key)

    def hid(self, key: str, marker_version: str | None) -> None:
        """Record a delete marker this publish put on ``key`` (a versioned bucket's).

        Clean-up removes the marker, so the version it hid is the latest again. An
        unversioned bucket's delete (``marker_version`` None) cannot be undone.
        """
        if marker_version is not None:
            with self._lock:
                self._versions.append({"Key": key, "VersionId": marker_version})

    def not_written(self, key: str, exc: BaseException) -> None:
        """Forget ``key`` if ``exc`` proves its request created nothing (see :func:`unsent`)."""
        if unsent(exc):
            self.forget(key)

    def forget(self, key: str) -> None:
        """Forget the request on ``key`` announced by :meth:`writing`: it created nothing.

        What earlier requests of this publish made at ``key`` stays recorded.
        """
        with self._lock:
            self._pending.discard(key)

    def not_created(self, key: str, exc: BaseException) -> None:
        """Forget a CreateMultipartUpload that ``exc`` proves created no upload."""
        if unsent(exc):
            self.forget_upload(key)

    def forget_upload(self, key: str) -> None:
        """Forget a CreateMultipartUpload of ``key`` that created nothing."""
        with self._lock:
            self._creating.discard(key)

    def written(self, key: str, version_id: str | None) -> None:
        """Record the version a request created (None: the store keeps no versions)."""
        with self._lock:
            self._pending.discard(key)
            if version_id is None:
                self._unversioned.add(key)
            else:
                self._versions.append({"Key": key, "VersionId": version_id})

    def removed(self, key: str) -> None:
        """Forget everything written at ``key``: this publish has removed it itself."""
        with self._lock:
            self._pending.discard(key)
            self._unversioned.discard(key)
            self._versions = [v for v in self._versions if v["Key"] != key]

    def creating(self, key: str) -> None:
        """Record a CreateMultipartUpload about to be sent."""
        with self._lock:
            self._creating.add(key)

    def created(self, key: str, upload_id: str) -> None:
        """Record the upload id a CreateMultipartUpload returned."""
        with self._lock:
            self._creating.discard(key)
            self._uploads[upload_id] = key

    def completing(self, upload_id: str) -> None:
        """Record a CompleteMultipartUpload about to be sent."""
        with self._lock:
            self._completing.add(upload_id)

    def completed(self, upload_id: str) -> None:
        """Forget an upload that was completed (its key is recorded separately)."""
        with self._lock:
            self._uploads.pop(upload_id, None)
            self._completing.discard(upload_id)

    def cleanup(self) -> list[str]:
        """Abort open uploads and delete what was written; return what could not be removed.

        The caller reports what is left (in its error, or as a warning after an interrupt).
        """
        with self._lock:  # a request still in flight may report while this runs
            unknown = self._pending | self._unversioned  # versions not known
            objects = list(self._versions)
            uploads = dict(self._uploads)
            creating = set(self._creating)
            completing = {u: k for u, k in uploads.items() if u in self._completing}
        left, landing = self._abort_uploads(uploads, creating, completing)
        versioned = bool(unknown) and self._versioned()
        for key in landing:
            _log.debug("s3://%s/%s: waiting for a completion with no reply", self.bucket, key)
            self._await_completion(key, versioned)
        for key in sorted(unknown):
            if versioned:
                objects += self._versions_since_start(key, left)
            else:
                objects.append({"Key": key})
        objects = list({(o["Key"], o.get("VersionId")): o for o in objects}.values())
        left += self._delete(objects)
        return left

    def _delete(self, objects: list[ObjectIdentifierTypeDef]) -> list[str]:
        left: list[str] = []
        for start in range(0, len(objects), 1000):
            batch = objects[start : start + 1000]
            try:
                reply = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
                left += [e.get("Key", "?") for e in reply.get("Errors", [])]
            except Exception:
                left += [o["Key"] for o in batch]
        return left

    def _abort_uploads(
        self, uploads: dict[str, str], creating: set[str], completing: dict[str, str]
    ) -> tuple[list[str], list[str]]:
        """Abort ``uploads``; return what is left and the keys a completion may still create.

        An upload whose CompleteMultipartUpload was sent and that is gone when aborted
        (NoSuchUpload) was completed, or is being completed, by the store.
        """
        left: list[str] = []
        landing: list[str] = []
        for key in creating:  # the reply was lost: find the upload by its key
            try:
                uploads.update(dict.fromkeys(uploads_of(self.client, self.bucket, key), key))
            except Exception:
                left.append(f"a multipart upload of {key}")
        for upload_id, key in uploads.items():
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception as exc:
                if upload_id in completing and error_code(exc) in ("NoSuchUpload", "404"):
                    landing.append(key)
                else:
                    left.append(f"the multipart upload of {key}")
        return left, landing

    def _await_completion(self, key: str, versioned: bool) -> None:
        """Wait until the object a completion sent before the failure appears, or a while.

        Objects of ``key`` older than this publish do not count; what is newer was made
        from this publish's parts (an upload id is known only to its creator).
        """
        deadline = time.monotonic() + LATE_COMPLETE_WAIT
        while True:
            left: list[str] = []
            if versioned:
                found = self._versions_since_start(key, left)
            else:
                found = self._newer_object(key, left)
            if found or left or time.monotonic() >= deadline:
                return  # there to delete, or cannot tell, or never completed
            time.sleep(_LATE_COMPLETE_POLL)

    def _newer_object(self, key: str, left: list[str]) -> list[ObjectIdentifierTypeDef]:
        """``key`` in an unversioned bucket, if this publish may have created it."""
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if not is_missing(exc):
                left.append(key)
            return []
        return [{"Key": key}] if head["LastModified"] >= self.started else []

    def _versioned(self) -> bool:
        try:
            reply = self.client.get_bucket_versioning(Bucket=self.bucket)
        except Exception:
            return True  # cannot tell: take the path that never hides older versions
        return reply.get("Status") in ("Enabled", "Suspended")

    def _versions_since_start(self, key: str, left: list[str]) -> list[ObjectIdentifierTypeDef]:
        """Versions of ``key`` created by this publish whose reply never arrived."""
        try:
            listed = self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
        except Exception:
            left.append(key)
            return []
        return [
            {"Key": key, "VersionId": v["VersionId"]}
            for v in listed.get("Versions", [])
            if v["Key"] == key and v["LastModified"] >= self.started
        ]


def unsent(exc: BaseException) -> bool:
    """Whether ``exc`` proves that its request created nothing.

    A call none of whose attempts connected proves it (DNS failure, connection refused,
    connect timeout: the store never heard of it), as does a failure before the request
    left (no credentials, bad parameters). Otherwise only a call made once can: a 4xx
    reply from S3. A 5xx or a 200 with an error inside may have been applied, and after
    retries an earlier attempt (reset or timed out) may have been; such keys stay
    recorded for clean-up.
    """
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
    )

    if isinstance(exc, (NoCredentialsError, ParamValidationError)):
        return True
    if reached_store(exc) is False:
        return True
    if (attempts_of(exc) or 1) > 1:
        return False
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return isinstance(status, int) and 400 <= status < 500
    return isinstance(exc, (ConnectTimeoutError, EndpointConnectionError))
