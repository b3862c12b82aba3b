"""The hooks a publisher plugin implements, and the markers to implement them with.

A publisher is a pluggy plugin (usually a module) registered in the entry-point group
``publisher_core.publishers`` under its ``Type``. It implements :func:`publisher_info`
and whichever of the other hooks it supports; an implementation may accept any subset
of a hook's arguments, as pluggy allows. The core calls only the plugin registered for
a spec's Type; other plugins registered with the host may wrap any hook
(``@hookimpl(wrapper=True)``) for tracing, timing or progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

from ._models import (
    PublishContext,
    PublishedResult,
    PublisherInfo,
    PublishPlan,
    ResultDescription,
    ValidatedSpec,
)

__all__ = [
    "PROJECT_NAME",
    "describe_result",
    "hookimpl",
    "hookspec",
    "plan_publish",
    "publish",
    "publisher_info",
    "validate_spec",
]

PROJECT_NAME = "publisher_core"
"""The pluggy project name; hook implementations are marked for it."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marker for hook specifications (used by the core only)."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for hook implementations: decorate your plugin's functions with it."""


@hookspec(firstresult=True)
def publisher_info() -> PublisherInfo:  # type: ignore[empty-body]
    """Declare the publisher's params, result and settings classes. Required."""


@hookspec(firstresult=True)
def validate_spec(
    spec: ValidatedSpec, context: PublishContext | None, settings: Any
) -> list[str] | None:
    """Check what types alone cannot (bucket names, key templates, combinations).

    ``spec.params`` is already an instance of the declared params class. Return every
    problem as a string ending in its path (``... @ $.Params.Bucket``); an empty list or
    None means valid. ``context`` is None when only the template can be checked.
    """


@hookspec(firstresult=True)
def plan_publish(  # type: ignore[empty-body]
    spec: ValidatedSpec, source: Path, context: PublishContext, settings: Any
) -> PublishPlan:
    """Say what :func:`publish` would write, writing nothing (``publish --dry-run``)."""


@hookspec(firstresult=True)
def publish(  # type: ignore[empty-body]
    spec: ValidatedSpec, source: Path, context: PublishContext, settings: Any
) -> PublishedResult:
    """Publish the result at ``source`` (a directory or one file) and return its record.

    On failure, raise :class:`publisher_core.PublishError` and leave nothing half-visible.
    """


@hookspec(firstresult=True)
def describe_result(  # type: ignore[empty-body]
    result: PublishedResult, params: Any, settings: Any
) -> ResultDescription:
    """Turn a published result into items a client can download without credentials.

    ``params`` is ``result.params`` structured into the declared result class.
    """
