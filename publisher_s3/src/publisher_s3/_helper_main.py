"""A helper process, from the inside: read its job, upload its share of files, report.

The parent (``_helpers``) starts a fresh interpreter that runs :func:`main`. The job
(``_helpers.HelperJob`` and the files of this share) is one JSON line on stdin; every
clean-up log verb (``_cleanup.CleanupLog``) goes back to the parent as a JSON line on
stdout *before* the request it announces, then a ``file`` line for every file uploaded,
and ``done`` (or one ``error``). SIGINT is ignored (the parent decides); the helper
stops starting requests when its stdin closes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

from publisher_core import PublishError

from ._cleanup import started_now, unsent
from ._helpers import HelperJob, entry_from_document

__all__ = ["main"]


class _ReportingLog:
    """The helper's clean-up log (a ``CleanupLog``): every call goes to the parent, in order.

    Verbs that take an exception are judged here (:func:`unsent`) and sent as ``forget``
    or ``forget_upload`` (``_helpers.FORWARDED_VERBS``).
    """

    def __init__(self, out: int) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.started = started_now()

    def send(self, *message: Any) -> None:
        """Write one report line (one write: whole lines even if the helper is killed)."""
        line = json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogateescape")
        with self.lock:
            os.write(self.out, line + b"\n")

    def writing(self, key: str) -> None:
        """Forward :meth:`WriteLog.writing <publisher_s3._cleanup.WriteLog.writing>`."""
        self.send("writing", key)

    def not_written(self, key: str, exc: BaseException) -> None:
        """Forward ``forget`` if ``exc`` proves the request on ``key`` created nothing."""
        if unsent(exc):
            self.send("forget", key)

    def forget(self, key: str) -> None:
        """Forward ``forget``."""
        self.send("forget", key)

    def hid(self, key: str, marker_version: str | None) -> None:
        """Forward ``hid``."""
        self.send("hid", key, marker_version)

    def written(self, key: str, version_id: str | None) -> None:
        """Forward ``written``."""
        self.send("written", key, version_id)

    def removed(self, key: str) -> None:
        """Forward ``removed``."""
        self.send("removed", key)

    def creating(self, key: str) -> None:
        """Forward ``creating``."""
        self.send("creating", key)

    def not_created(self, key: str, exc: BaseException) -> None:
        """Forward ``forget_upload`` if ``exc`` proves no upload of ``key`` was created."""
        if unsent(exc):
            self.send("forget_upload", key)

    def forget_upload(self, key: str) -> None:
        """Forward ``forget_upload``."""
        self.send("forget_upload", key)

    def created(self, key: str, upload_id: str) -> None:
        """Forward ``created``."""
        self.send("created", key, upload_id)

    def completing(self, upload_id: str) -> None:
        """Forward ``completing``."""
        self.send("completing", upload_id)

    def completed(self, upload_id: str) -> None:
        """Forward ``completed``."""
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
    from ._directory import FileUploads
    from ._spec import S3Settings
    from ._transfer import Destination, Stopped

    out = os.dup(1)
    os.dup2(2, 1)  # nothing but our reports on the pipe
    report = _ReportingLog(out)
    line = _read_line(0)
    if not line.strip():  # the parent stopped (or died) before it sent the job
        return 1
    document = json.loads(line)
    job: HelperJob = document
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
        to = Destination(client, job["bucket"], job["arguments"])
        uploads = FileUploads(to, report, job["key"], settings)

        def watch() -> None:  # stdin closes when the parent is done or gone
            while os.read(0, 4096):
                pass
            uploads.pool.stop.set()

        threading.Thread(target=watch, daemon=True).start()
        files = uploads.upload([entry_from_document(d) for d in document["files"]])
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
