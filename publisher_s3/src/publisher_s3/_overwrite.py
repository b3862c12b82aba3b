"""What a publish does about what is already at its key: replace it whole, or refuse.

``Overwrite: true`` (the default, as Bacalhau overwrites) — :class:`Replace`:

- An archive is replaced by its own PutObject (or CompleteMultipartUpload).
- A directory result is replaced whole. Before the first file goes up, the objects under
  the prefix are listed and the earlier manifest is withdrawn, so from then until the new
  manifest is stored the key holds no complete result (a reader never takes a mixture for
  one). Once the new manifest is stored, every listed object the new result does not hold
  is deleted: the prefix then holds exactly the new result's files.
- In a versioned bucket every delete leaves a delete marker: earlier versions stay, an
  earlier record still reads its own result (its manifest pins each file's version), and
  a publish that fails removes its markers with what it wrote, so the earlier result is
  the latest again. In an unversioned bucket the earlier result is gone once the
  publish has begun replacing it.

``Overwrite: false`` — :class:`Claim`:

- Anything at the key (an archive) or under the prefix or at the manifest (a directory)
  fails the publish before anything is written.
- Two publishes that pass that check at the same moment are told apart by a *claim*: a
  small object beside the result (``KEY.tar.gz.claim``, ``KEY.manifest.json.claim``)
  written with ``If-None-Match: *`` before anything else. Only one publish can create
  it; the other writes nothing. The claim is written a second time the same way, which
  must be refused. A store that accepts it ignores conditional writes (Ceph 16 does in
  versioned buckets): there every claim is a version of one key, and only the publish
  whose version is the oldest goes on. Where an unversioned bucket ignores them, only
  the check protects the publish, and a warning says so.
- The final object (archive or manifest) is written with ``If-None-Match: *`` as well, and
  the claim is removed once the result is complete. A claim left by a killed publish
  blocks the key until it is deleted; the error names it.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from publisher_core import (
    MANIFEST_SUFFIX,
    Manifest,
    PublishError,
    SpecError,
    manifest_key,
    summarize,
)

from ._cleanup import CleanupLog
from ._client import describe_client_error, error_code, is_missing
from ._transfer import Destination, put_object

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import DeleteObjectRequestTypeDef, PaginatorConfigTypeDef

__all__ = ["CLAIM_SUFFIX", "Claim", "Replace", "claim_key", "overwrite_policy"]

_log = logging.getLogger(__name__)

CLAIM_SUFFIX = ".claim"
"""Appended to a result's final key (archive or manifest) to name its claim."""

_DENIED = ("AccessDenied", "403", "AllAccessDisabled")


def claim_key(key: str) -> str:
    """The claim of the result at ``key``: beside its archive or its manifest."""
    final = manifest_key(key) if key.endswith("/") else key
    return final + CLAIM_SUFFIX


def _first(keys: Iterable[str], limit: int = 3) -> str:
    return summarize(keys, limit, separator=", ", before_more=" ")


def _listed(to: Destination, prefix: str, limit: int | None = None) -> list[str]:
    """Keys under ``prefix``, at most ``limit`` of them."""
    found: list[str] = []
    paginator = to.client.get_paginator("list_objects_v2")
    config: PaginatorConfigTypeDef = {"MaxItems": limit} if limit else {}
    for page in paginator.paginate(Bucket=to.bucket, Prefix=prefix, PaginationConfig=config):
        found += [o["Key"] for o in page.get("Contents", [])]
    return found[:limit] if limit else found


def _exists(to: Destination, key: str) -> bool:
    """Whether ``key`` exists; False also where HeadObject is denied for a missing key."""
    try:
        to.client.head_object(Bucket=to.bucket, Key=key)
    except Exception as exc:
        if is_missing(exc) or error_code(exc) in _DENIED:
            return False
        raise
    return True


def _nested_results(keys: list[str]) -> list[str]:
    """Manifests among ``keys`` whose own directory result lies among ``keys`` too."""
    listed = set(keys)
    prefixes = {k[: -len(MANIFEST_SUFFIX)] + "/" for k in keys if k.endswith(MANIFEST_SUFFIX)}
    holding = {p for p in prefixes if any(k.startswith(p) for k in listed)}
    return sorted(p[:-1] + MANIFEST_SUFFIX for p in holding)


class Replace:
    """``Overwrite: true``: the new result replaces the whole earlier one."""

    create_only = False
    """Whether the final object is written with ``If-None-Match: *``."""

    def __init__(self, to: Destination, log: CleanupLog, key: str) -> None:
        self.to, self.client, self.bucket = to, to.client, to.bucket
        self.log, self.key = log, key
        self.earlier: list[str] | None = []  # keys under the prefix; None: could not list

    def before(self) -> None:
        """List what is under a directory prefix and withdraw the earlier manifest."""
        if not self.key.endswith("/"):
            return  # an archive's PutObject replaces it
        try:
            self.earlier = _listed(self.to, self.key)
        except Exception as exc:
            if error_code(exc) not in _DENIED:
                raise
            self.earlier = None
            _log.warning(
                "cannot list s3://%s/%s (%s): objects of an earlier result there that this "
                "one lacks are not removed; grant s3:ListBucket to replace results whole",
                self.bucket,
                self.key,
                error_code(exc),
            )
        manifest = manifest_key(self.key)
        found = _exists(self.to, manifest)
        own = self._files_of(manifest) if found else set()
        nested = _nested_results([k for k in self.earlier or [] if k not in own])
        if nested:
            raise PublishError(
                f"s3://{self.bucket}/{self.key} holds other results ({_first(nested)}); "
                "replacing it would delete them: choose a key that holds no other result"
            )
        if found:
            _log.debug("withdrawing the earlier manifest s3://%s/%s", self.bucket, manifest)
            reply = self.client.delete_object(Bucket=self.bucket, Key=manifest)
            self.log.hid(manifest, reply.get("VersionId") if reply.get("DeleteMarker") else None)

    def _files_of(self, manifest: str) -> set[str]:
        """The keys of the files the earlier manifest lists (none if it is unreadable)."""
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=manifest)["Body"].read()
            files = Manifest.from_bytes(data).files
        except (SpecError, ValueError):
            return set()
        return {self.key + f.path for f in files}

    def after(self, kept: set[str]) -> None:
        """Delete what the earlier result had and the new one lacks; warn about failures.

        The new result is complete by now, so a failure here does not fail the publish.
        """
        stale = [k for k in self.earlier or () if k not in kept]
        left: list[str] = []
        problem = ""
        for start in range(0, len(stale), 1000):
            batch = stale[start : start + 1000]
            try:
                reply = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch]}
                )
            except Exception as exc:
                left += batch
                problem = describe_client_error(exc, self.bucket, self.key)
                continue
            for deleted in reply.get("Deleted", []):
                if deleted.get("DeleteMarker"):
                    self.log.hid(deleted["Key"], deleted.get("DeleteMarkerVersionId"))
            for error in reply.get("Errors", []):
                left.append(error.get("Key", "?"))
                problem = f"DeleteObjects failed with {error.get('Code', 'an error')}"
        if stale:
            _log.debug("removed %d objects of an earlier result", len(stale) - len(left))
        if left:
            _log.warning(
                "s3://%s/%s still holds %d objects of an earlier result (%s): %s",
                self.bucket,
                self.key,
                len(left),
                _first(left),
                problem,
            )


class Claim:
    """``Overwrite: false``: refuse what exists, and claim the key against a racing publish."""

    create_only = True
    """Whether the final object is written with ``If-None-Match: *``."""

    def __init__(self, to: Destination, log: CleanupLog, key: str) -> None:
        self.to, self.client, self.bucket = to, to.client, to.bucket
        self.log, self.key = log, key  # the claim carries the result's attributes (to)
        self.claim = claim_key(key)
        self.versions: list[str | None] = []

    def _refuse(self, what: str) -> PublishError:
        return PublishError(
            f"{what}; Overwrite is false, so nothing was written: choose another Key "
            "(e.g. with {executionID}) or set Overwrite: true"
        )

    def before(self) -> None:
        """Check that nothing is at the key, claim it, check again; PublishError if not.

        The second check catches a publish that passed its check before this one claimed
        the key, then stalled, and completed before the claim was made.
        """
        self._check()
        if _exists(self.to, self.claim):
            raise self._held()
        self._claim()
        self._check()

    def _held(self) -> PublishError:
        return PublishError(
            f"another publish to s3://{self.bucket}/{self.key} holds its claim "
            f"s3://{self.bucket}/{self.claim}; Overwrite is false, so nothing was "
            "written (if no publish is running, a killed one left the claim: delete it)"
        )

    def _check(self) -> None:
        where = f"s3://{self.bucket}/{self.key}"
        try:
            if self.key.endswith("/"):
                found = _listed(self.to, self.key, limit=3)
                if found:
                    raise self._refuse(f"{where} already holds objects ({_first(found)})")
                if _exists(self.to, manifest_key(self.key)):
                    raise self._refuse(
                        f"s3://{self.bucket}/{manifest_key(self.key)} already exists"
                    )
            elif _exists(self.to, self.key):
                raise self._refuse(f"{where} already exists")
        except PublishError:
            raise
        except Exception as exc:
            if error_code(exc) in _DENIED:
                raise PublishError(
                    f"Overwrite: false needs s3:ListBucket on {self.bucket} to check that "
                    f"nothing is at {where} ({describe_client_error(exc, self.bucket, self.key)})"
                ) from None
            raise

    def _put(self, body: bytes) -> str | None:
        return put_object(self.to, self.log, self.claim, body, "application/json", create_only=True)

    def _claim(self) -> None:
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        body = json.dumps(
            {"Claim": secrets.token_hex(16), "Key": self.key, "Started": started}
        ).encode()
        try:
            self.versions.append(self._put(body))
        except Exception as exc:
            if error_code(exc) != "PreconditionFailed":
                raise
            raise self._held() from None
        try:
            self.versions.append(self._put(body))
        except Exception as exc:
            if error_code(exc) != "PreconditionFailed":
                raise
            return  # refused, as it must be: the store honours If-None-Match
        if self.versions[-1] is not None:
            self._first_version()
            return
        _log.warning(
            "s3://%s ignores If-None-Match (a second write of the claim %s was accepted): "
            "Overwrite: false rests on the check made before this publish, which a publish "
            "starting at the same moment can pass too",
            self.bucket,
            self.claim,
        )

    def _first_version(self) -> None:
        """Where conditional writes are ignored in a versioned bucket: the oldest claim wins.

        Every racing publish has written its claim as a version of the same key before it
        lists them, so all see the same oldest version; only its writer goes on.
        """
        _log.debug("s3://%s ignores If-None-Match; the oldest claim version wins", self.bucket)
        listed = self.client.list_object_versions(Bucket=self.bucket, Prefix=self.claim)
        versions = [v for v in listed.get("Versions", []) if v["Key"] == self.claim]
        if not versions or versions[-1]["VersionId"] not in self.versions:  # newest first
            raise PublishError(
                f"another publish to s3://{self.bucket}/{self.key} claimed it first "
                f"(s3://{self.bucket}/{self.claim}); Overwrite is false, so nothing was "
                "written"
            )

    def after(self, kept: set[str]) -> None:
        """Remove the claim: the result is complete; a failure is a warning."""
        del kept
        try:
            for version in self.versions:
                request: DeleteObjectRequestTypeDef = {"Bucket": self.bucket, "Key": self.claim}
                if version is not None:
                    request["VersionId"] = version
                self.client.delete_object(**request)
        except Exception as exc:
            _log.warning(
                "the result is complete, but its claim s3://%s/%s is left (%s); delete it, "
                "or a publish with Overwrite: false to this key is refused",
                self.bucket,
                self.claim,
                describe_client_error(exc, self.bucket, self.claim),
            )
            return
        self.log.removed(self.claim)  # a later clean-up must not touch the next claim


def overwrite_policy(
    overwrite: bool, to: Destination, log: CleanupLog, key: str
) -> Replace | Claim:
    """The policy for ``Overwrite``: :class:`Replace` (true) or :class:`Claim` (false)."""
    return Replace(to, log, key) if overwrite else Claim(to, log, key)
