"""Processes fraudstream starts do not inherit the metrics directory importing Feast made."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = """
import os, sys
operator = sys.argv[1]
if operator:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = operator
import feast.metrics
from fraudstream_common.environment import MULTIPROCESS_VARIABLES, child_environment
child = child_environment({"EXTRA": "1"})
print(child["EXTRA"], *(child.get(name, "-") for name in MULTIPROCESS_VARIABLES), feast.metrics._prometheus_mp_dir)
"""


def run(operator: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROGRAM, operator], capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_the_directory_feast_made_is_not_passed_on() -> None:
    extra, multiproc, multiprocess, feasts = run("")
    assert "feast_metrics_" in feasts, "Feast no longer makes its own directory: the helper may be moot"
    assert (extra, multiproc, multiprocess) == ("1", "-", "-")


def test_an_operators_directory_is_passed_on(tmp_path: Path) -> None:
    extra, multiproc, multiprocess, feasts = run(str(tmp_path))
    assert extra == "1"
    assert multiproc == str(tmp_path)
    # Feast made a directory only for the variable the operator left unset, and it is dropped.
    assert multiprocess == "-"
    assert "feast_metrics_" in feasts
