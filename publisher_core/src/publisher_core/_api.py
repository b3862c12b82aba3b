"""The Python API for hosts: load, validate, plan, publish, describe and get results."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ._convert import structure_params
from ._documents import (
    description_from_document,
    parse_document,
    result_from_document,
    spec_from_document,
)
from ._download import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT, GetReport, download, safe_relative_path
from ._errors import PluginError, Problem, PublisherError, PublishError, SpecError, quoted
from ._imperative import looks_imperative, parse_imperative
from ._models import (
    PublishContext,
    PublishedResult,
    PublisherSpec,
    PublishPlan,
    ResultDescription,
    ValidatedSpec,
)
from ._registry import Publisher, Registry
from ._settings import load_settings

_PLUGIN_TEXT_LIMIT = 300
"""Characters of an unexpected plugin exception's message an error keeps."""

__all__ = [
    "default_registry",
    "describe",
    "get",
    "load_result",
    "load_spec",
    "plan",
    "publish",
    "validate",
]

_log = logging.getLogger(__name__)

SpecLike = PublisherSpec | Mapping[str, Any] | str | os.PathLike[str]
ResultLike = PublishedResult | Mapping[str, Any] | str | os.PathLike[str]


@functools.cache
def default_registry() -> Registry:
    """The registry of installed entry points, built once per process."""
    return Registry()


def _read_text(source: str | os.PathLike[str], what: str) -> str:
    try:
        return Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{os.fspath(source)}: no such file", what=what) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{os.fspath(source)}: cannot read ({exc})", what=what) from None


def load_spec(source: SpecLike, *, registry: Registry | None = None) -> PublisherSpec:
    """A spec from a :class:`PublisherSpec`, a mapping, a YAML/JSON file or an imperative string.

    A string names a file when such a file exists; otherwise it is read as the imperative
    form (``s3://bucket/key,opt=region=eu-west-1``). The imperative form asks the
    publisher of its Type which parameters its destination fills.
    """
    if isinstance(source, PublisherSpec):
        return source
    if isinstance(source, Mapping):
        return spec_from_document(source)
    if isinstance(source, str) and not os.path.exists(source) and looks_imperative(source):
        reg = registry or default_registry()
        return parse_imperative(source, lambda type_name: reg.get(type_name).info.destination)
    return spec_from_document(parse_document(_read_text(source, "spec"), what="spec"))


def load_result(
    source: ResultLike | ResultDescription,
) -> PublishedResult | ResultDescription:
    """A published result, or the output of ``describe --json``, from a file or mapping."""
    if isinstance(source, (PublishedResult, ResultDescription)):
        return source
    doc = (
        source
        if isinstance(source, Mapping)
        else parse_document(_read_text(source, "result"), what="result")
    )
    if isinstance(doc, Mapping) and any(str(k).lower() == "items" for k in doc):
        return description_from_document(doc)
    return result_from_document(doc)


def _settings_for(publisher: Publisher, settings: Any) -> Any:
    return load_settings(publisher.type, publisher.info.settings, settings)


def _validate(
    publisher: Publisher, spec: PublisherSpec, context: PublishContext | None, settings: Any
) -> ValidatedSpec:
    params = structure_params(spec.params, publisher.info.params)
    validated = ValidatedSpec(type=publisher.type, params=params)
    if publisher.implements("validate_spec"):
        found = _call_plugin(
            publisher,
            "validate_spec",
            PluginError,
            spec=validated,
            context=context,
            settings=settings,
        )
        problems = _plugin_problems(publisher, found)
        if problems:
            raise SpecError(problems)
    return validated


def _plugin_problems(publisher: Publisher, found: object) -> list[str | Problem]:
    """What ``validate_spec`` returned: strings and :class:`Problem` records, or None.

    A string is a problem whose text names its place (``... @ $.Params.Bucket``), as it
    was before problems had paths of their own.
    """
    if found is None:
        return []
    given = (
        found
        if isinstance(found, Iterable) and not isinstance(found, (str, bytes, Problem))
        else [found]
    )
    problems: list[str | Problem] = []
    for problem in given:
        if not isinstance(problem, (str, Problem)):
            raise PluginError(
                f"publisher {quoted(publisher.type)} returned {quoted(found)} from "
                "validate_spec, expected a list of problems (str or Problem)"
            )
        problems.append(problem)
    return problems


def validate(
    spec: SpecLike,
    *,
    context: PublishContext | None = None,
    settings: Any = None,
    registry: Registry | None = None,
) -> ValidatedSpec:
    """Check ``spec`` completely and return it with typed parameters.

    Without ``context`` only the key template is checked; with it, placeholder values
    are checked too. Raises :class:`SpecError` listing every problem, or
    :class:`PluginError` when the Type cannot be used.
    """
    registry = registry or default_registry()
    loaded = load_spec(spec, registry=registry)
    publisher = registry.get(loaded.type)
    return _validate(publisher, loaded, context, _settings_for(publisher, settings))


def _source_path(source: str | os.PathLike[str]) -> Path:
    path = Path(source)
    if not path.exists():
        raise SpecError(f"{path}: no such file or directory", what="result path")
    return path


def _call_plugin(
    publisher: Publisher, hook: str, error: type[PublisherError], **kwargs: Any
) -> Any:
    """Call a hook; turn an unexpected exception into ``error`` naming the publisher."""
    try:
        return publisher.call(hook, **kwargs)
    except PublisherError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())
        if len(text) > _PLUGIN_TEXT_LIMIT:  # a plugin's message may quote anything
            text = text[:_PLUGIN_TEXT_LIMIT] + "..."
        raise error(
            f"publisher {quoted(publisher.type)} failed in {hook}: {type(exc).__name__}: {text}"
        ) from exc


def _publish_call(
    hook: str,
    spec: SpecLike,
    source: str | os.PathLike[str],
    context: PublishContext | None,
    settings: Any,
    registry: Registry | None,
) -> Any:
    """Validate ``spec`` with ``context``, then call ``hook`` of its publisher on ``source``."""
    registry = registry or default_registry()
    context = context or PublishContext()
    loaded = load_spec(spec, registry=registry)
    publisher = registry.get(loaded.type)
    settings_obj = _settings_for(publisher, settings)
    validated = _validate(publisher, loaded, context, settings_obj)
    path = _source_path(source)
    _log.debug("%s: %s spec %r for %s", hook, publisher.type, validated.params, path)
    if hook == "plan_publish" and not publisher.implements(hook):
        raise PluginError(f"publisher {quoted(publisher.type)} does not support dry runs")
    result = _call_plugin(
        publisher,
        hook,
        PublishError,
        spec=validated,
        source=path,
        context=context,
        settings=settings_obj,
    )
    expected = PublishPlan if hook == "plan_publish" else PublishedResult
    if not isinstance(result, expected):
        raise PluginError(
            f"publisher {quoted(publisher.type)} returned {type(result).__name__} from {hook}, "
            f"expected a {expected.__name__}"
        )
    return result


def plan(
    spec: SpecLike,
    source: str | os.PathLike[str],
    *,
    context: PublishContext | None = None,
    settings: Any = None,
    registry: Registry | None = None,
) -> PublishPlan:
    """What :func:`publish` would write for ``source``, writing nothing."""
    result: PublishPlan = _publish_call("plan_publish", spec, source, context, settings, registry)
    return result


def publish(
    spec: SpecLike,
    source: str | os.PathLike[str],
    *,
    context: PublishContext | None = None,
    settings: Any = None,
    registry: Registry | None = None,
) -> PublishedResult:
    """Validate ``spec``, publish the result at ``source`` and return its record.

    ``context`` supplies the job, execution and node ids and the instant used for
    ``{date}``/``{time}`` (default: now, no ids). ``settings`` overrides the publisher's
    operator settings (a mapping of names, or the publisher's settings instance).
    """
    result: PublishedResult = _publish_call("publish", spec, source, context, settings, registry)
    return result


def describe(
    result: ResultLike | ResultDescription,
    *,
    settings: Any = None,
    registry: Registry | None = None,
) -> ResultDescription:
    """Turn a published result into download items (URLs, sizes, SHA-256, expiry)."""
    registry = registry or default_registry()
    loaded = load_result(result)
    if isinstance(loaded, ResultDescription):
        return loaded
    publisher = registry.get(loaded.type)
    params = structure_params(loaded.params, publisher.info.result, what="result")
    description = _call_plugin(
        publisher,
        "describe_result",
        PublisherError,
        result=loaded,
        params=params,
        settings=_settings_for(publisher, settings),
    )
    if not isinstance(description, ResultDescription):
        raise PluginError(
            f"publisher {quoted(publisher.type)} returned {type(description).__name__} from "
            "describe_result, expected a ResultDescription"
        )
    return description


def get(
    result: ResultLike | ResultDescription,
    target: str | os.PathLike[str] | None = None,
    *,
    settings: Any = None,
    registry: Registry | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    attempts: int = DEFAULT_ATTEMPTS,
    max_bytes: int | None = None,
) -> GetReport:
    """Download, verify and rebuild a result in ``target`` (default: ``./NAME``).

    ``result`` is a published result (described first, which may need credentials) or a
    :class:`ResultDescription` (needs none). ``timeout`` (seconds, per connection and
    read), ``attempts`` (per HTTP(S) download) and ``max_bytes`` (all the bytes the result
    takes, downloaded and extracted; default: the free space where ``target`` is) are those of
    :func:`~publisher_core.download`, which lists the errors raised.
    """
    description = (
        result
        if isinstance(result, ResultDescription)
        else describe(result, settings=settings, registry=registry)
    )
    if target is None:
        name = description.name
        if "/" in name or name in (".", "..") or name.startswith("."):
            raise SpecError(
                f"result name {quoted(name)} is not a plain directory name; "
                "pass an output directory",
                what="description",
            )
        safe_relative_path(name)
        target = name
    return download(
        description, Path(target), timeout=timeout, attempts=attempts, max_bytes=max_bytes
    )
