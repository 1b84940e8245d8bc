"""The chaos suite's table: one row per fault, printed at the end of the run and written to
FRAUDSTREAM_CHAOS_REPORT (JSON) when that is set."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    fault: str
    transactions: int
    ready_seconds: float  # from the fault's end until every service answered ready
    caught_up_seconds: float  # from the fault's end until the segment's last prediction
    lost: int  # valid transactions with no prediction, or missing from `transactions`
    duplicated: int  # records beyond one per transaction (and per version on `predictions`)
    client_answers: int
    degraded_answers: int
    client_errors: int
    exited: str  # services that exited instead of recovering


ROWS: list[Row] = []

COLUMNS = (
    ("fault", "fault"),
    ("transactions", "transactions"),
    ("ready_seconds", "ready s"),
    ("caught_up_seconds", "caught up s"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("client_answers", "answers"),
    ("degraded_answers", "degraded"),
    ("client_errors", "client errors"),
    ("exited", "exited"),
)


def table(rows: list[Row]) -> str:
    cells = [[title for _, title in COLUMNS]]
    for row in rows:
        values = dataclasses.asdict(row)
        cells.append(
            [f"{values[name]:.1f}" if isinstance(values[name], float) else str(values[name]) for name, _ in COLUMNS]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def write(rows: list[Row]) -> Path | None:
    target = os.environ.get("FRAUDSTREAM_CHAOS_REPORT")
    if not target:
        return None
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([dataclasses.asdict(row) for row in rows], indent=2) + "\n")
    return path
