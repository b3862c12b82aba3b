"""One limit on what a ``get`` writes: every download counts against it as bytes arrive.

The limit is ``max_bytes`` (``publisher get --max-size``) or else the free space where the
result is rebuilt. Recorded sizes are held against it before anything is fetched, each
download's bytes before they are written, and an archive's content before it is extracted,
so that an item without a recorded size or a decompression bomb cannot fill the disk.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

from ._errors import DownloadError, quoted
from ._extract import tar_overhead
from ._models import DownloadItem
from ._sizes import format_size, format_sizes

__all__ = ["Budget"]


class Budget:
    """The bytes one ``get`` may still write, shared by every download (thread-safe).

    ``limit`` is ``max_bytes`` or the free space; ``note`` says which, for the error. A
    compressed archive may go over it by tar's allowance (an archive of many small or
    empty files is larger than its content); once extracted it counts its content instead.
    """

    def __init__(self, limit: int, note: str, *, free_space_of: Path | None = None) -> None:
        self.limit = limit
        self.note = note
        self.used = 0
        self._free_space_of = free_space_of
        self._lock = threading.Lock()

    @classmethod
    def for_result(cls, max_bytes: int | None, staging: Path, target: Path) -> Budget:
        """``max_bytes``, or the free space of ``staging`` (beside ``target``) if None."""
        if max_bytes is not None:
            return cls(max_bytes, "publisher get --max-size")
        note = f"the free space beside {target}; see publisher get --max-size"
        return cls(shutil.disk_usage(staging).free, note, free_space_of=staging)

    def check_declared(self, files: Sequence[DownloadItem]) -> None:
        """Refuse files whose recorded sizes alone take the result over the limit."""
        declared = 0
        for item in files:
            declared += item.size or 0
            if declared > self.limit:
                size, limit = format_sizes(declared, self.limit)
                raise DownloadError(
                    f"the items record {size} in all (up to {quoted(item.path)}), over the "
                    f"limit of {limit} ({self.note}); refusing the result"
                )

    def take(self, count: int, item: DownloadItem) -> None:
        """Count ``count`` more bytes of ``item``, or refuse them if over the limit."""
        slack = tar_overhead() if item.archive else 0
        with self._lock:
            if self.used + count > self.limit + slack:
                overhead = f" plus {format_size(slack)} for tar's overhead" if slack else ""
                raise DownloadError(
                    f"downloading {quoted(item.path)} went over the limit of "
                    f"{format_size(self.limit)} for the whole result ({self.note}){overhead}; "
                    "refusing it"
                )
            self.used += count

    def give_back(self, count: int) -> None:
        """Forget ``count`` bytes: a failed attempt's, or an archive's once extracted."""
        with self._lock:
            self.used -= count

    def content_limit(self, archive: int) -> tuple[int, str]:
        """What an archive of ``archive`` bytes (counted already) may extract to, and why.

        The free space as it is now, or what ``max_bytes`` leaves beside everything else
        downloaded; the note says which, for the error.
        """
        if self._free_space_of is not None:
            return shutil.disk_usage(self._free_space_of).free, self.note
        others = self.used - archive
        note = self.note
        if others > 0:
            note += f", less {format_size(others)} already downloaded"
        return max(0, self.limit - others), note
