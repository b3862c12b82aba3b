"""The compression level trade-off: speed and size of each ISA-L level against gzip -6.

    .venv/bin/python bench/levels.py [--mib 256]

Compresses the same generated data (the text of scenario A, 5 % random binary) with
ISA-L levels 0-3 (what ``PUBLISHER_S3_COMPRESSION_LEVEL`` selects) and with the standard
library's zlib at level 6 (what ``gzip -6``, ``tar -czf`` and Bacalhau use), one thread
each, from memory. Prints MB/s of input, the compression ratio, and both relative to zlib
-6 measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import make_text_tree

_BLOCK = 1 << 20


def measure(data: bytes, compressobj: object, level: int) -> tuple[float, int]:
    """Seconds and compressed size of ``data`` through one gzip stream."""
    started = time.perf_counter()
    compressor = compressobj(level, zlib.DEFLATED, 31)  # type: ignore[operator]
    size = 0
    view = memoryview(data)
    for start in range(0, len(data), _BLOCK):
        size += len(compressor.compress(view[start : start + _BLOCK]))
    size += len(compressor.flush())
    return time.perf_counter() - started, size


def main() -> None:
    from isal import isal_zlib

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = make_text_tree(Path(tmp), args.mib << 20, files=4)
        data = b"".join(p.read_bytes() for p in sorted(root.iterdir()))
    mb = len(data) / 1e6
    base_seconds, base_size = measure(data, zlib.compressobj, 6)
    print(f"{len(data) >> 20} MiB of generated text; one thread; from memory")
    print(f"{'codec':16} {'MB/s':>8} {'ratio':>7} {'speed vs zlib -6':>17} {'size vs zlib -6':>16}")
    rows = [("zlib -6", base_seconds, base_size)]
    rows += [(f"ISA-L level {n}", *measure(data, isal_zlib.compressobj, n)) for n in range(4)]
    for name, seconds, size in rows:
        print(
            f"{name:16} {mb / seconds:8.0f} {len(data) / size:7.2f} "
            f"{base_seconds / seconds:16.1f}x {size / base_size:15.2f}x"
        )


if __name__ == "__main__":
    main()
