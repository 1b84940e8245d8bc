"""The Dockerfile as BuildKit reads it: parsed by its parser and instruction parser, with the
build checks it applies while parsing (tools/checks/dockerfile-check)."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

from . import go_tools

ROOT = Path(__file__).resolve().parents[3]


@functools.cache
def dockerfile() -> dict[str, Any]:
    checked = subprocess.run(
        [str(go_tools.built("./dockerfile-check")), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, f"BuildKit refused the Dockerfile: {checked.stderr}"
    parsed: dict[str, Any] = json.loads(checked.stdout)
    return parsed


def stages() -> dict[str, dict[str, Any]]:
    return {stage["name"]: stage for stage in dockerfile()["stages"]}


def lineage(target: str) -> list[dict[str, Any]]:
    """The target's stage, then the stage it is built on, and so on to an image."""
    known = stages()
    chain = [known[target]]
    while chain[-1]["base"] in known:
        chain.append(known[chain[-1]["base"]])
    return chain


def runs(target: str) -> list[str]:
    """Every RUN of the target and of the stages it is built on."""
    return [run for stage in lineage(target) for run in stage["runs"]]


def images() -> set[str]:
    """The images the stages start from or copy from (not other stages)."""
    known = stages()
    return {
        reference
        for stage in known.values()
        for reference in (stage["base"], *stage["copy_from"])
        if reference not in known
    }
