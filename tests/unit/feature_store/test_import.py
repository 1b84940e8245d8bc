"""Importing Feast through fraudstream_feature_store leaves prometheus_client in single-process
mode (Feast 0.67 sets PROMETHEUS_MULTIPROC_DIR when imported)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import os
import fraudstream_feature_store
import feast.metrics
from prometheus_client import Counter, values
Counter("probe_total", "probe").inc()
print(values.ValueClass.__name__, sorted(k for k in os.environ if k.startswith("PROMETHEUS_MULTIPROC")))
"""


def _probe(env: dict[str, str]) -> str:
    finished = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return finished.stdout.strip()


def test_feast_does_not_switch_prometheus_to_multiprocess_mode() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    assert _probe(env) == "MutexValue []"


def test_an_operators_multiprocess_directory_is_kept(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PROMETHEUS_MULTIPROCESS_DIR": str(tmp_path)}
    assert _probe(env) == "MmapedValue ['PROMETHEUS_MULTIPROCESS_DIR', 'PROMETHEUS_MULTIPROC_DIR']"
