"""`fraudstream status` lines up its columns however long a replica's name is."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fraudstream_cli import main
from fraudstream_cli.platform.manager import Status

ROWS = [
    Status("kafka", running=True, pid=101, port=9092, port_open=True),
    Status("features-1", running=True, pid=102, port=8183, port_open=True, detail="ready"),
    Status("inference-1", running=False, pid=None, port=8180, port_open=False),
]


class FakePlatform:
    def status(self, with_services: bool) -> list[Status]:
        return ROWS


def test_each_name_is_apart_from_its_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "_platform", FakePlatform)
    result = CliRunner().invoke(main.app, ["status"])
    assert result.exit_code == 3  # a part is stopped
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["part", "state"],
        ["kafka", "running"],
        ["features-1", "running"],
        ["inference-1", "stopped"],
    ]
    assert len({line.index(line.split()[1]) for line in lines}) == 1  # the states in one column
