"""A publisher that writes to stdout: at import and inside its hooks, in Python and by fd.

It publishes nothing anywhere (its result only names the key), and logs a warning from
its publish hook, so the tests see where the CLI sends plugin output and plugin logs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import attrs

from publisher_core import PublishedResult, PublisherInfo, ValidatedSpec, hookimpl

print("noisy: print at import")
sys.stdout.flush()
os.write(1, b"noisy: fd 1 at import\n")
_log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class NoisyParams:
    key: str


@attrs.frozen(kw_only=True)
class NoisyResult:
    key: str


@hookimpl
def publisher_info() -> PublisherInfo:
    print("noisy: print in publisher_info")
    return PublisherInfo(params=NoisyParams, result=NoisyResult, summary="prints everywhere")


@hookimpl
def validate_spec(spec: ValidatedSpec) -> list[str]:
    print("noisy: print in validate_spec")
    return []


@hookimpl
def publish(spec: ValidatedSpec, source: Path) -> PublishedResult:
    print(f"noisy: print in publish of {source.name}")
    sys.stdout.flush()
    os.write(1, b"noisy: fd 1 in publish\n")
    _log.warning("noisy: could not remove\nsome/thing")
    return PublishedResult(type="noisy", params={"Key": spec.params.key})
