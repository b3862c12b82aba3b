"""Helper processes for directory mode, the parent's side: start them, apply their reports.

botocore spends ~1 ms of CPU on every request, and threads share one interpreter lock,
so one process tops out near a thousand small objects a second however fast the store
is. A directory with many small files is therefore split: the publishing process keeps
one share (and every large file), and each helper process uploads another share with
its own client and thread pool.

A helper is a fresh interpreter running ``_helper_main.main`` (the working directory is
kept off its ``sys.path``). Its job (:class:`HelperJob`, this module's to define) arrives
as one JSON line on stdin (the credentials the parent's session resolved travel there,
never in arguments or the environment); what it does comes back as JSON lines on
stdout, each written before the request it announces, so the parent's clean-up log
knows every key a helper may have created even if the helper is killed. A report is a
clean-up log verb and its arguments (:data:`FORWARDED_VERBS`), a finished ``file``, an
``error`` or ``done``. A helper ignores SIGINT (the parent decides) and stops when its
stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypedDict

import attrs

from publisher_core import ManifestFile, PublishError, TreeEntry

from ._cleanup import JUDGED_VERBS, LOG_VERBS, CleanupLog
from ._client import FrozenCredentials, frozen_credentials

if TYPE_CHECKING:
    from botocore.session import Session

    from ._spec import S3Settings
    from ._transfer import Destination

__all__ = [
    "FILES_PER_PROCESS",
    "FORWARDED_VERBS",
    "Helper",
    "HelperJob",
    "entry_document",
    "entry_from_document",
    "helper_count",
    "helper_job",
]

_log = logging.getLogger(__name__)

FILES_PER_PROCESS = 400
"""Fewer small files than this per process do not pay for a process start (~0.35 s)."""
STOP_TIMEOUT = 60.0
"""Seconds a stopping helper gets to finish its requests in flight before it is killed."""
FORWARDED_VERBS = frozenset(LOG_VERBS).difference(JUDGED_VERBS)
"""Reports that are calls on the parent's clean-up log: every verb but those taking an
exception, which a helper judges itself and forwards as ``forget`` or ``forget_upload``."""

_BOOT = (
    "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
    "from publisher_s3._helper_main import main; sys.exit(main())"
)
"""The helper's entry: the working directory is taken off sys.path before any import."""


def helper_count(small_files: int, processes: int) -> int:
    """How many helper processes to start for ``small_files`` one-request files."""
    return max(0, min(processes, small_files // FILES_PER_PROCESS) - 1)


class HelperJob(TypedDict):
    """What every helper of one upload is told; each is sent it with its ``files`` added."""

    endpoint: str
    addressing_style: str | None
    region: str
    bucket: str
    key: str
    settings: dict[str, Any]
    arguments: Mapping[str, Any]
    expected_bucket_owner: str | None
    credentials: FrozenCredentials | None


def helper_job(
    to: Destination,
    session: Session | None,
    key: str,
    settings: S3Settings,
    expected_bucket_owner: str | None,
) -> HelperJob:
    """The job of the helpers of an upload to ``to``, whose client ``session`` made.

    Without a session the helpers look for credentials themselves (the default chain).
    """
    client = to.client
    # Set from Config's options, which botocore's stubs do not declare as attributes.
    s3_options: Mapping[str, Any] | None = getattr(client.meta.config, "s3", None)
    return {
        # The very endpoint and addressing style this client uses (a VPC, FIPS or
        # dual-stack endpoint on amazonaws.com too).
        "endpoint": client.meta.endpoint_url,
        "addressing_style": (s3_options or {}).get("addressing_style"),
        "region": client.meta.region_name,
        "bucket": to.bucket,
        "key": key,
        "settings": attrs.asdict(settings),
        "arguments": to.arguments,  # every object carries the result's attributes
        "expected_bucket_owner": expected_bucket_owner,
        "credentials": frozen_credentials(session) if session is not None else None,
    }


def entry_document(entry: TreeEntry) -> list[Any]:
    """``entry`` as it travels in a helper's job (JSON)."""
    return [entry.path, os.fsdecode(entry.source), entry.size, entry.identity]


def entry_from_document(document: list[Any]) -> TreeEntry:
    """The file an :func:`entry_document` describes."""
    path, source, size, identity = document
    return TreeEntry(
        path=path,
        kind="file",
        source=Path(source),
        size=size,
        identity=tuple(identity) if identity else None,
    )


class Helper:
    """The parent's side of one helper: start it, apply what it reports, stop it."""

    def __init__(
        self,
        job: HelperJob,
        entries: list[TreeEntry],
        log: CleanupLog,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.log = log
        self.on_failure = on_failure
        self.files: list[ManifestFile] = []
        self.error: str | None = None
        self.done = False
        # Not `-m`: that puts the working directory (often the job's own output) first on
        # sys.path, and a module planted there would run with our credentials.
        self.process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed code
            [sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        document = {**job, "files": [entry_document(e) for e in entries]}
        self.reader = threading.Thread(
            target=self._run,
            args=(json.dumps(document).encode() + b"\n", self.process.stdout),
            name="publisher-s3-helper",
        )
        self.reader.start()

    def _run(self, job: bytes, stream: IO[bytes]) -> None:
        """Send the job (in this thread: helpers start side by side), then read reports."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(job)
            self.process.stdin.flush()
        except OSError:  # the helper died at start; its exit code says more below
            pass
        self._read(stream)

    def _read(self, stream: IO[bytes]) -> None:
        try:
            with stream:
                for line in stream:
                    self._apply(json.loads(line))
        except Exception as exc:  # a garbled report: stop the helper, fail the publish
            self.process.kill()
            self.error = f"a helper process sent an unreadable report ({type(exc).__name__})"
        code = self.process.wait()
        if not self.done and self.error is None:
            self.error = f"a helper process exited with code {code} before it finished"
        if self.error is not None:
            self.on_failure(PublishError(self.error))

    def _apply(self, message: list[Any]) -> None:
        """Apply one report: a clean-up log call, a finished file, an error or the end."""
        kind, *args = message
        if kind in FORWARDED_VERBS:
            getattr(self.log, kind)(*args)
        elif kind == "file":
            path, size, checksum, version = args
            self.files.append(
                ManifestFile(path=path, size=size, checksum_sha256=checksum, version_id=version)
            )
        elif kind == "error":
            self.error = args[0]
        elif kind == "done":
            self.done = True

    def finish(self) -> list[ManifestFile]:
        """Wait for the helper; its files, or the error it ended with."""
        assert self.process.stdin is not None
        self.reader.join()
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        if self.error is not None:
            raise PublishError(self.error)
        return self.files

    def stop(self) -> None:
        """Stop the helper and apply everything it reported (before clean-up).

        Closing its stdin asks it to start no new request and to wait for those in
        flight, so nothing it sent can land after the parent's clean-up; a helper that
        does not end within ``STOP_TIMEOUT`` seconds is killed.
        """
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.reader.join()
