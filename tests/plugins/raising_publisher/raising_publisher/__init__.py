"""A publisher with bugs: the hook its spec names in ``Fail`` raises, or returns nothing.

``Fail`` is ``validate_spec``, ``publish`` (the default) or ``nothing`` (publish returns
None); ``describe_result`` always raises. The messages span two lines, as tracebacks'
often do, so the tests see that the CLI still prints one.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from publisher_core import PublisherInfo, ValidatedSpec, hookimpl


@attrs.frozen(kw_only=True)
class RaisingParams:
    key: str
    fail: str = "publish"


@attrs.frozen(kw_only=True)
class RaisingResult:
    key: str


@hookimpl
def publisher_info() -> PublisherInfo:
    return PublisherInfo(
        params=RaisingParams, result=RaisingResult, summary="fails inside its hooks"
    )


@hookimpl
def validate_spec(spec: ValidatedSpec) -> list[str]:
    if spec.params.fail == "validate_spec":
        raise RuntimeError("validator crashed\nwhile reading the key")
    return []


@hookimpl
def publish(spec: ValidatedSpec, source: Path) -> None:
    if spec.params.fail == "nothing":
        return None
    raise RuntimeError(f"the shelf for {source} is full\nand a second line")


@hookimpl
def describe_result(params: RaisingResult) -> None:
    raise KeyError(f"no shelf holds {params.key}")
