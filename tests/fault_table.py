"""The fault suite's table: one row per scenario run, printed at the end of the session.

A pytest plugin (listed in ``conftest.pytest_plugins``): tests append :class:`Row` s and
``pytest_terminal_summary`` prints them with the totals a release note can quote.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

__all__ = ["ROWS", "Row", "pytest_terminal_summary"]


@dataclass(frozen=True)
class Row:
    """One fault scenario run against one server in one mode.

    ``outcome`` is ``recovered`` (the publish or get succeeded and the result round-trips
    verified) or ``failed cleanly`` (one clear error, nothing half-visible).
    ``objects_left`` counts stray objects (or local files, for get) and ``uploads_left``
    incomplete multipart uploads; ``lost`` marks a result lost or left half-visible.
    """

    server: str
    scenario: str
    mode: str
    variant: str
    outcome: str
    objects_left: int
    uploads_left: int
    lost: bool
    attempts: str = ""


ROWS: list[Row] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the fault table and its totals, if any fault scenario ran."""
    if not ROWS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault injection")
    header = ("server", "scenario", "mode", "variant", "outcome", "objects left", "uploads left")
    rows = [header] + [
        (
            r.server,
            r.scenario,
            r.mode,
            r.variant,
            r.outcome + (f" ({r.attempts})" if r.attempts else "") + (" LOST" if r.lost else ""),
            str(r.objects_left),
            str(r.uploads_left),
        )
        for r in sorted(ROWS, key=lambda r: (r.server, r.scenario, r.mode, r.variant))
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    recovered = sum(r.outcome == "recovered" for r in ROWS)
    failed = sum(r.outcome == "failed cleanly" for r in ROWS)
    lost = sum(r.lost for r in ROWS)
    write(
        f"fault scenarios: {len(ROWS)} tried, {recovered + failed} survived "
        f"({recovered} recovered by retrying, {failed} failed cleanly), "
        f"{lost} results lost or half-visible"
    )
