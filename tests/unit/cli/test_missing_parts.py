"""A command that needs a package the environment lacks says which and how to install it, before
doing anything."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from typer.testing import CliRunner

from fraudstream_cli.main import app

find_spec = importlib.util.find_spec


def without(package: str) -> Any:
    def find(name: str, *args: Any) -> Any:
        return None if name == package else find_spec(name, *args)

    return find


@pytest.mark.parametrize(
    ("package", "command", "hint"),
    [
        ("fraudstream_drift", ["evaluate", "gate", "--first-day", "60"], "fraudstream_drift not installed"),
        ("fraudstream_modelling", ["evaluate", "--json"], "fraudstream_modelling not installed"),
        ("fraudstream_trainer", ["train", "--no-publish"], "runs the trainer: install fraudstream-trainer"),
    ],
)
def test_a_missing_package_is_named(
    monkeypatch: pytest.MonkeyPatch, package: str, command: list[str], hint: str
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", without(package))
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1
    assert hint in result.output
