"""The frozen records that travel between hosts, the core and publisher plugins."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import attrs

__all__ = [
    "DownloadItem",
    "PublishContext",
    "PublishPlan",
    "PublishedResult",
    "PublisherInfo",
    "PublisherSpec",
    "ResultDescription",
    "ValidatedSpec",
    "redact_url",
]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"PublishContext.now must be timezone-aware (got naive {value.isoformat()}); "
            "use datetime.now(timezone.utc)"
        )
    return value.astimezone(timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def redact_url(url: str) -> str:
    """Return ``url`` without its query string and user info, safe for logs and errors.

    Pre-signed URLs carry their signature in the query string; this keeps the scheme,
    host and path, which is what a person needs to recognise the object.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "<unparseable URL>"
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


@attrs.frozen(kw_only=True)
class PublishContext:
    """What a publish knows about the job: ids for key placeholders and one UTC instant.

    ``now`` is read once per publish so ``{date}`` and ``{time}`` always agree; tests and
    hosts may inject it. A naive datetime is refused rather than guessed at.
    """

    job_id: str | None = None
    execution_id: str | None = None
    node_id: str | None = None
    now: datetime = attrs.field(factory=_now, converter=_utc)


@attrs.frozen
class PublisherSpec:
    """A spec as the user wrote it: a publisher ``Type`` and its raw parameters.

    Both document shapes (flat and ``{Type, Params}``) and the imperative form load into
    this. Parameter names are kept as written; :func:`publisher_core.validate` turns this
    into a :class:`ValidatedSpec`.
    """

    type: str
    params: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ValidatedSpec:
    """A spec whose parameters were structured into the publisher's params class."""

    type: str
    params: Any


@attrs.frozen
class PublishedResult:
    """The record of one publish: its ``Type`` and canonical CapitalCase ``Params``.

    Emitted as ``{Type, Params}``; publishers build ``Params`` with
    :func:`publisher_core.unstructure_params` from their own result class.
    """

    type: str
    params: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class DownloadItem:
    """One thing ``get`` downloads: where it goes, where it comes from, how to check it.

    ``path`` is the relative POSIX path in the rebuilt tree; for an archive (``archive``
    true) it is only a display name and the archive is extracted into the target.
    ``url`` may be a pre-signed URL: it is redacted in the repr.
    """

    path: str
    url: str = attrs.field(repr=redact_url)
    size: int | None = None
    checksum_sha256: str | None = None
    expires: datetime | None = None
    archive: bool = False


@attrs.frozen(kw_only=True)
class ResultDescription:
    """What a client needs to download a result without storage credentials.

    ``name`` is the default output directory name; ``directories`` are empty
    directories of the result tree, which have no item of their own.
    """

    type: str
    name: str
    items: tuple[DownloadItem, ...] = ()
    directories: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class PublishPlan:
    """What a publish would write, computed without writing (``publish --dry-run``)."""

    type: str
    mode: Literal["archive", "directory"]
    location: str
    keys: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class PublisherInfo:
    """What a publisher plugin declares about itself through the ``publisher_info`` hook.

    - ``params``: attrs class of the spec parameters (field ``key`` -> parameter ``Key``).
    - ``result``: attrs class of the published result parameters.
    - ``settings``: attrs class of operator settings, read from ``PUBLISHER_<TYPE>_<NAME>``.
    - ``destination``: the parameters that ``TYPE://A/B`` fills in the imperative form;
      ``("Bucket", "Key")`` puts ``A`` in Bucket and ``B`` in Key, ``("Key",)`` puts ``A/B``
      in Key.
    - ``summary``: one line for ``publisher list``.
    """

    params: type[Any]
    result: type[Any]
    settings: type[Any] | None = None
    destination: tuple[str, ...] = ("Key",)
    summary: str = ""
