"""compose.yaml as `docker compose` would see it: loaded by compose-go (tools/checks/compose-check),
which applies the Compose specification's schema, interpolation, merges, `extends` and the
references between services and volumes, with every profile enabled, and the secrets of
.env.example set to stand-ins."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from . import go_tools

ROOT = Path(__file__).resolve().parents[3]


def secrets() -> dict[str, str]:
    """A stand-in for each secret .env.example asks for."""
    names = [
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    return {name: f"stand-in-{name.lower()}" for name in names}


def load(compose_file: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """compose-go's answer for the file with this environment (and no other)."""
    return subprocess.run(
        [str(go_tools.built("./compose-check")), str(compose_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": os.environ["PATH"], **environment},
    )


@functools.cache
def compose_project() -> dict[str, Any]:
    loaded = load(ROOT / "compose.yaml", secrets())
    assert loaded.returncode == 0, f"compose-go refused compose.yaml: {loaded.stderr}"
    project: dict[str, Any] = json.loads(loaded.stdout)
    return project


def services() -> dict[str, dict[str, Any]]:
    return dict(compose_project()["services"])
