"""`fraudstream train` runs the trainer's one-off run as a process: the options passed through,
the outcome read from the last line of its stdout, its exit status kept."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from fraudstream_cli.main import app

OUTCOME: dict[str, Any] = {
    "outcome": "rejected",
    "version": "7",
    "run_id": "r1",
    "reasons": ["average_precision 0.5 against the champion's 0.7: worse"],
    "metrics": {},
    "champion_metrics": {},
    "published": False,
}


def trainer_answering(stdout: str, returncode: int, calls: list[list[str]]) -> Any:
    def run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, returncode, stdout=stdout)

    return run


def test_the_options_reach_the_trainer_and_its_outcome_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    noise = "a library's line on stdout\n"
    monkeypatch.setattr(subprocess, "run", trainer_answering(noise + json.dumps(OUTCOME) + "\n", 0, calls))
    options = ["--history", "data/history", "--cutoff", "2018-06-15T00:00:00Z", "--no-publish", "--reason", "dvc"]

    result = CliRunner().invoke(app, ["train", *options, "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == OUTCOME
    (command,) = calls
    assert command[:4] == [sys.executable, "-m", "fraudstream_trainer", "train"]
    assert command[4:] == [
        "--reason",
        "dvc",
        "--history",
        "data/history",
        "--cutoff",
        "2018-06-15T00:00:00Z",
        "--no-publish",
    ]

    result = CliRunner().invoke(app, ["train"])
    assert result.stdout.splitlines() == ["rejected: version 7 (run r1)", f"  {OUTCOME['reasons'][0]}"]
    assert "--no-publish" not in calls[-1]


@pytest.mark.parametrize(
    ("stdout", "returncode"), [(json.dumps({**OUTCOME, "outcome": "data_check_failed"}), 1), ("", 2)]
)
def test_the_trainers_exit_status_is_kept(monkeypatch: pytest.MonkeyPatch, stdout: str, returncode: int) -> None:
    monkeypatch.setattr(subprocess, "run", trainer_answering(stdout, returncode, []))
    result = CliRunner().invoke(app, ["train"])
    assert result.exit_code == returncode
    assert ("data_check_failed" in result.stdout) == bool(stdout)
