"""Operator settings of a publisher: typed, from ``PUBLISHER_<TYPE>_<NAME>`` or the host.

Settings belong to whoever runs the publisher (root directories, concurrency, URL
lifetimes), never to the job's spec. The host's Python call wins over the environment,
which wins over the defaults of the publisher's settings class.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from ._convert import attrs_fields, capital_name, structure_params
from ._errors import Problem, SpecError, quoted
from ._names import KnownNames

__all__ = ["DISABLED_VARIABLE", "env_prefix", "load_settings"]

T = TypeVar("T")

DISABLED_VARIABLE = "PUBLISHER_DISABLED"
"""Comma-separated publisher Types the registry treats as disabled."""


def env_prefix(type_name: str) -> str:
    """``PUBLISHER_S3_`` for Type ``s3``: the prefix of that publisher's variables."""
    return "PUBLISHER_" + type_name.upper().replace("-", "_").replace(".", "_") + "_"


def load_settings(
    type_name: str,
    cls: type[T] | None,
    overrides: Mapping[str, Any] | object | None = None,
    environ: Mapping[str, str] | None = None,
) -> T | None:
    """Build the settings of publisher ``type_name`` from the environment and the host.

    ``overrides`` is an instance of ``cls`` (used as is) or a mapping of setting names,
    matched like spec parameters. Unknown variables under the publisher's prefix are
    errors with a did-you-mean, so a typo never silently falls back to a default.
    """
    if cls is None:
        if overrides:
            raise SpecError(
                f"publisher {quoted(type_name)} has no operator settings", what="setting"
            )
        return None
    if isinstance(overrides, cls):
        return overrides
    environ = os.environ if environ is None else environ
    prefix = env_prefix(type_name)
    fields = KnownNames(f.name for f in attrs_fields(cls))
    # The prefix is the same on both sides, so a variable matches as its suffix would.
    variables = {prefix + field.upper(): field for field in fields.names}
    known_variables = KnownNames(variables)
    env_name: dict[str, str] = {}
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(prefix):
            continue
        variable = known_variables.match(name)
        if variable is None:
            problems.append(Problem(None, f"unknown setting {name}", known_variables.unknown(name)))
            continue
        field = variables[variable]
        env_name[field] = name
        values[capital_name(field)] = value
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise SpecError(
                f"settings for {quoted(type_name)} must be a mapping or a {cls.__name__}, "
                f"got {type(overrides).__name__}",
                what="setting",
            )
        for name, value in overrides.items():
            found = fields.match(str(name))
            key = capital_name(found) if found else str(name)
            values.pop(key, None)
            if found:
                env_name.pop(found, None)
            values[key] = value

    def where(field: str) -> str:
        return env_name.get(field, f"settings[{type_name}].{capital_name(field)}")

    return structure_params(
        values,
        cls,
        path=f"settings[{type_name}]",
        what="setting",
        extra_problems=problems,
        where=where,
    )
