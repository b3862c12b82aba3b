"""publisher_s3's clean-up log: its verbs agree everywhere they are named.

The verbs are named once (``_cleanup.LOG_VERBS``); the Protocol, both logs and the helper's
forwarded reports must agree with that list. (The import graph: ``tests/test_modules.py``.)
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ParamValidationError

import publisher_s3
from publisher_s3._cleanup import JUDGED_VERBS, LOG_VERBS, CleanupLog, WriteLog
from publisher_s3._helper_main import _ReportingLog
from publisher_s3._helpers import FORWARDED_VERBS, Helper

PACKAGE = Path(publisher_s3.__file__).parent
SAMPLES: dict[str, Any] = {
    "key": "runs/a.txt",
    "version_id": "v1",
    "marker_version": "m1",
    "upload_id": "u1",
    "exc": ParamValidationError(report="refused before it was sent"),
}
"""An argument for every parameter name of the verbs; ``exc`` proves nothing was sent."""


def _methods(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}


def _sample_arguments(verb: str) -> list[Any]:
    parameters = list(inspect.signature(getattr(CleanupLog, verb)).parameters)[1:]
    return [SAMPLES[p] for p in parameters]


def test_the_protocol_has_exactly_the_listed_verbs():
    """CleanupLog's methods are LOG_VERBS, and the exception-taking verbs are among them."""
    assert _methods(CleanupLog) == set(LOG_VERBS)
    assert len(LOG_VERBS) == len(set(LOG_VERBS))
    assert set(JUDGED_VERBS) <= set(LOG_VERBS)
    for verb in JUDGED_VERBS:
        assert "exc" in inspect.signature(getattr(CleanupLog, verb)).parameters


def test_both_logs_implement_every_verb():
    """WriteLog and the helper's reporting log each define every verb of the Protocol."""
    for cls in (WriteLog, _ReportingLog):
        assert set(LOG_VERBS) <= _methods(cls), cls.__name__
        for verb in LOG_VERBS:
            ours = list(inspect.signature(getattr(cls, verb)).parameters)
            assert ours == list(inspect.signature(getattr(CleanupLog, verb)).parameters), verb


def test_the_helper_forwards_every_verb_but_those_taking_an_exception():
    """The reports a parent applies are the verbs, less those a helper judges itself."""
    assert frozenset(LOG_VERBS) - frozenset(JUDGED_VERBS) == FORWARDED_VERBS


def test_every_verb_a_helper_reports_reaches_the_parents_log():
    """Each verb called in a helper arrives as the same call on the parent's log.

    A verb taking an exception that proves nothing was sent arrives as ``forget`` or
    ``forget_upload``.
    """
    calls: list[tuple[str, list[Any]]] = []

    class Recorder:
        def __getattr__(self, verb: str) -> Any:
            return lambda *args: calls.append((verb, list(args)))

    read, write = os.pipe()
    try:
        report = _ReportingLog(write)
        for verb in LOG_VERBS:
            getattr(report, verb)(*_sample_arguments(verb))
    finally:
        os.close(write)
    with os.fdopen(read, "rb") as lines:
        parent = SimpleNamespace(log=Recorder(), files=[], error=None, done=False)
        for line in lines:
            Helper._apply(parent, json.loads(line))  # type: ignore[arg-type]
    judged = {"not_written": "forget", "not_created": "forget_upload"}
    assert set(judged) == set(JUDGED_VERBS)
    expected = [
        (judged[verb], [SAMPLES["key"]]) if verb in judged else (verb, _sample_arguments(verb))
        for verb in LOG_VERBS
    ]
    assert calls == expected
