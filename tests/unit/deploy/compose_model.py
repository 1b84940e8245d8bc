"""compose.yaml as `docker compose` would see it: loaded by compose-go (tools/compose-check),
which applies the Compose specification's schema, interpolation, merges, `extends` and the
references between services and volumes, with every profile enabled."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
TOOL = ROOT / "tools" / "compose-check"


@functools.cache
def compose_project() -> dict[str, Any]:
    go = shutil.which("go")
    assert go is not None, "compose.yaml is checked with compose-go: install Go (see README, Tests)"
    binary = Path(tempfile.mkdtemp(prefix="compose-check-")) / "compose-check"
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=TOOL, check=True, timeout=600)
    loaded = subprocess.run(
        [str(binary), str(ROOT / "compose.yaml")], capture_output=True, text=True, check=False, timeout=60
    )
    assert loaded.returncode == 0, f"compose-go refused compose.yaml: {loaded.stderr}"
    project: dict[str, Any] = json.loads(loaded.stdout)
    return project


def services() -> dict[str, dict[str, Any]]:
    return dict(compose_project()["services"])
