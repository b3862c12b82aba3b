"""Helper processes for directory mode: more CPUs for many small files.

botocore spends ~1 ms of CPU on every request, and threads share one interpreter lock,
so one process tops out near a thousand small objects a second however fast the store
is. A directory with many small files is therefore split: the publishing process keeps
one share (and every large file), and each helper process uploads another share with
its own client and thread pool.

A helper is a fresh interpreter running :func:`main` (the working directory is kept off
its ``sys.path``). Its job arrives as one JSON line on
stdin (the credentials the parent resolved travel there, never in arguments or the
environment); what it does comes back as JSON lines on stdout, each written before the
request it announces, so the parent's clean-up log knows every key a helper may have
created even if the helper is killed. A helper ignores SIGINT (the parent decides) and
stops when its stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from publisher_core import ManifestFile, PublishError, TreeEntry

from ._cleanup import WriteLog, unsent

__all__ = ["FILES_PER_PROCESS", "Helper", "helper_count"]

_log = logging.getLogger(__name__)

FILES_PER_PROCESS = 400
STOP_TIMEOUT = 60.0
"""Seconds a stopping helper gets to finish its requests in flight before it is killed."""

_BOOT = (
    "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
    "from publisher_s3._helpers import main; sys.exit(main())"
)
"""The helper's entry: the working directory is taken off sys.path before any import."""
"""Fewer small files than this per process do not pay for a process start (~0.35 s)."""


def helper_count(small_files: int, processes: int) -> int:
    """How many helper processes to start for ``small_files`` one-request files."""
    return max(0, min(processes, small_files // FILES_PER_PROCESS) - 1)


def _entry_document(entry: TreeEntry) -> list[Any]:
    return [entry.path, os.fsdecode(entry.source), entry.size, entry.identity]


def _entry(document: list[Any]) -> TreeEntry:
    path, source, size, identity = document
    return TreeEntry(
        path=path,
        kind="file",
        source=Path(source),
        size=size,
        identity=tuple(identity) if identity else None,
    )


_LOG_CALLS = frozenset(
    {
        "writing",
        "forget",
        "written",
        "creating",
        "forget_upload",
        "created",
        "completing",
        "completed",
    }
)
"""Reports that are calls on the parent's clean-up log (named after its methods)."""


class Helper:
    """The parent's side of one helper: start it, apply what it reports, stop it."""

    def __init__(
        self,
        job: dict[str, Any],
        entries: list[TreeEntry],
        log: WriteLog,
        on_failure: Any,
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
        document = {**job, "files": [_entry_document(e) for e in entries]}
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
        if kind in _LOG_CALLS:
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


class _ReportingLog:
    """A WriteLog stand-in in the helper: every call goes to the parent, in order."""

    def __init__(self, out: int) -> None:
        self.out = out
        self.lock = threading.Lock()

    def send(self, *message: Any) -> None:
        line = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogateescape")
        with self.lock:  # one write per line: whole lines even if the helper is killed
            os.write(self.out, line + b"\n")

    def writing(self, key: str) -> None:
        self.send("writing", key)

    def not_written(self, key: str, exc: BaseException) -> None:
        if unsent(exc):
            self.send("forget", key)

    def written(self, key: str, version_id: str | None) -> None:
        self.send("written", key, version_id)

    def creating(self, key: str) -> None:
        self.send("creating", key)

    def not_created(self, key: str, exc: BaseException) -> None:
        if unsent(exc):
            self.send("forget_upload", key)

    def created(self, key: str, upload_id: str) -> None:
        self.send("created", key, upload_id)

    def completing(self, upload_id: str) -> None:
        self.send("completing", upload_id)

    def completed(self, upload_id: str) -> None:
        self.send("completed", upload_id)


def _read_line(fd: int) -> bytes:
    """The job line from ``fd`` (the parent writes nothing after it until it closes)."""
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        line += chunk
    return bytes(line)


def main() -> int:
    """The helper process: upload the files of its job, report, exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    from ._attributes import expect_bucket_owner
    from ._client import describe_client_error, make_client
    from ._spec import S3Settings
    from ._tasks import Stopped
    from ._upload import DirectoryUpload

    out = os.dup(1)
    os.dup2(2, 1)  # nothing but our reports on the pipe
    report = _ReportingLog(out)
    line = _read_line(0)
    if not line.strip():  # the parent stopped (or died) before it sent the job
        return 1
    job = json.loads(line)
    try:
        settings = S3Settings(**job["settings"])
        client, _ = make_client(
            job["endpoint"],
            job["region"],
            job["bucket"],
            settings,
            job["credentials"],
            job["addressing_style"],
        )
        owner = job["expected_bucket_owner"]
        if owner:
            expect_bucket_owner(client, owner)
        upload = DirectoryUpload(
            client,
            job["bucket"],
            job["key"],
            settings,
            arguments=job["arguments"],
            expected_bucket_owner=owner,
            log=report,
        )

        def watch() -> None:  # stdin closes when the parent is done or gone
            while os.read(0, 4096):
                pass
            upload.pool.stop.set()

        threading.Thread(target=watch, daemon=True).start()
        files = upload.upload_files([_entry(d) for d in job["files"]])
    except Stopped:
        return 1
    except PublishError as exc:
        report.send("error", str(exc))
        return 1
    except Exception as exc:
        report.send("error", describe_client_error(exc, job["bucket"], job["key"]))
        return 1
    for f in files:
        report.send("file", f.path, f.size, f.checksum_sha256, f.version_id)
    report.send("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
