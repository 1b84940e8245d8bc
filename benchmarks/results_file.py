"""A benchmark's results file: benchmarks/results/NAME.json, with the command that wrote it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, document: dict[str, Any]) -> Path:
    path = RESULTS / f"{name}.json"
    command = f"{name}.py " + " ".join(sys.argv[1:])
    path.write_text(json.dumps({"command": command.strip(), **document}, indent=1) + "\n")
    print(f"written to {path}")
    return path
