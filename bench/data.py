"""Deterministic benchmark data: compressible text (CSV, JSON lines, logs) and some random
binary, generated from a seed, never downloaded.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

_WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
]


def _text_block(rng: random.Random, kind: int, size: int) -> bytes:
    lines: list[str] = []
    total = 0
    while total < size:
        if kind == 0:
            line = ",".join(
                [
                    str(rng.randrange(10**6)),
                    f"{rng.random():.6f}",
                    rng.choice(_WORDS),
                    str(rng.randrange(100)),
                ]
            )
        elif kind == 1:
            line = json.dumps(
                {
                    "step": rng.randrange(10**5),
                    "loss": round(rng.random(), 5),
                    "tag": rng.choice(_WORDS),
                }
            )
        else:
            line = (
                f"2026-11-24T12:{rng.randrange(60):02}:{rng.randrange(60):02}Z INFO "
                f"worker-{rng.randrange(16)} {' '.join(rng.choices(_WORDS, k=6))}"
            )
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()[:size]


def make_text_tree(
    root: Path, total_bytes: int, files: int = 8, seed: int = 7, random_fraction: float = 0.05
) -> Path:
    """``files`` files totalling about ``total_bytes``, mostly text, some random binary."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    per_file = total_bytes // files
    block = 1 << 20
    for index in range(files):
        path = root / f"part-{index:03}.{('csv', 'jsonl', 'log')[index % 3]}"
        with open(path, "wb") as out:
            written = 0
            template = _text_block(rng, index % 3, block)
            while written < per_file:
                chunk = template if rng.random() > random_fraction else rng.randbytes(block)
                chunk = chunk[: per_file - written]
                out.write(chunk)
                written += len(chunk)
    return root


def make_small_files(root: Path, count: int, seed: int = 11) -> Path:
    """``count`` files of 2-8 KiB in 100-file directories."""
    rng = random.Random(seed)
    for index in range(count):
        path = root / f"d{index // 100:04}" / f"f{index:06}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_text_block(rng, index % 3, rng.randrange(2048, 8192)))
    return root
