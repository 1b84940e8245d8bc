"""Each atheris target of tests/fuzz for a fixed time (FRAUDSTREAM_FUZZ_SECONDS, 15 by default;
`make fuzz` gives each 300), in a process of its own: libFuzzer's coverage feedback needs the
code imported under atheris's instrumentation, which this process's imports would have made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SECONDS = int(os.environ.get("FRAUDSTREAM_FUZZ_SECONDS", "15"))


def targets() -> list[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return listed.stdout.split()


@pytest.mark.timeout(SECONDS + 120)
@pytest.mark.parametrize("target", targets())
def test_nothing_breaks_the_contract(target: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", target, str(SECONDS), str(tmp_path)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert run.returncode == 0, f"{target}: {crashes}\n{run.stderr[-3000:]}"
    assert "Done" in run.stderr, run.stderr[-2000:]  # it ran its time, not merely started
