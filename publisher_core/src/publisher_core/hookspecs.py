"""The hooks a publisher plugin implements, and the markers to implement them with.

A publisher is a pluggy plugin (usually a module) registered in the entry-point group
``publisher_core.publishers`` under its ``Type``. It implements :func:`publisher_info`
and whichever of the other hooks it supports; an implementation may accept any subset
of a hook's arguments, as pluggy allows. The core calls only the plugin registered for
a spec's Type; other plugins registered with the host may wrap any hook
(``@hookimpl(wrapper=True)``) for tracing, timing or progress.

Every hook is ``firstresult``: the specifications return ``X | None``, as pytest types
its own, since a hook no plugin implements answers None (the core then says which
publisher lacks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy

from ._errors import Problem
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
def publisher_info() -> PublisherInfo | None:
    """Declare the publisher's params, result and settings classes. Required.

    :returns: the :class:`~publisher_core.PublisherInfo`: the attrs classes of the spec's
        params, of the published result and of the operator settings, the destination
        fields of the imperative form, and a one-line summary for ``publisher list``.
    """


@hookspec(firstresult=True)
def validate_spec(
    spec: ValidatedSpec, context: PublishContext | None, settings: Any
) -> list[str | Problem] | None:
    """Check what types alone cannot (bucket names, key templates, combinations).

    Return every problem, each a :class:`~publisher_core.Problem`
    (``Problem("$.Params.Bucket", "bucket names are lower case")``) or a string ending in
    its path (``... @ $.Params.Bucket``); an empty list or None means valid. The core
    raises one :class:`~publisher_core.SpecError` holding them all.

    :param spec: the spec; ``spec.params`` is already an instance of the declared params
        class.
    :param context: the publish context, or None when only the template can be checked.
    :param settings: the publisher's operator settings (None if it declares none).
    """


@hookspec(firstresult=True)
def plan_publish(
    spec: ValidatedSpec, source: Path, context: PublishContext, settings: Any
) -> PublishPlan | None:
    """Say what :func:`publish` would write, writing nothing (``publish --dry-run``).

    :param spec: the validated spec; ``spec.params`` is an instance of the params class.
    :param source: the result to publish: a directory, or one file.
    :param context: the job's ids and the instant the key's placeholders are filled from.
    :param settings: the publisher's operator settings (None if it declares none).
    :returns: the mode, the location and every key, in the order publish writes them.
    """


@hookspec(firstresult=True)
def publish(
    spec: ValidatedSpec, source: Path, context: PublishContext, settings: Any
) -> PublishedResult | None:
    """Publish the result at ``source`` (a directory or one file) and return its record.

    On failure, raise :class:`publisher_core.PublishError` and leave nothing half-visible.

    :param spec: the validated spec; ``spec.params`` is an instance of the params class.
    :param source: the result to publish: a directory, or one file.
    :param context: the job's ids and the instant the key's placeholders are filled from.
    :param settings: the publisher's operator settings (None if it declares none).
    :returns: the published result: ``Type`` and the result class's fields as ``Params``
        (build them with :func:`publisher_core.unstructure_params`).
    """


@hookspec(firstresult=True)
def describe_result(
    result: PublishedResult, params: Any, settings: Any
) -> ResultDescription | None:
    """Turn a published result into items a client can download without credentials.

    :param result: the published result as recorded.
    :param params: ``result.params`` structured into the declared result class.
    :param settings: the publisher's operator settings (None if it declares none).
    :returns: the items (path, URL, size, SHA-256, expiry) ``get`` downloads and checks.
    """
