"""The GitHub workflows pass actionlint (built from tools/checks): syntax, expressions, the
inputs of the actions they use, runner labels, and the shell scripts where shellcheck exists."""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import go_tools

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def test_there_are_workflows_for_ci_images_the_bridge_and_retraining() -> None:
    assert {path.stem for path in WORKFLOWS} >= {"ci", "images", "bridge-wheels", "retrain"}


def test_workflows_pass_actionlint() -> None:
    linted = subprocess.run(
        [str(go_tools.built("github.com/rhysd/actionlint/cmd/actionlint")), "-color=false", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=ROOT,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_ci_runs_what_ci_runs_here() -> None:
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "run: .ci/run" in ci
    assert "make test" in (ROOT / ".ci" / "run").read_text()
