import os
import subprocess
import sys

import pytest

from fraudstream_common import grpc_engine
from fraudstream_common.grpc_engine import SERVING_EXPERIMENTS, prefer_poll_engine


@pytest.fixture
def grpc_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "grpc", raising=False)
    monkeypatch.delenv("GRPC_EXPERIMENTS", raising=False)


@pytest.mark.usefixtures("grpc_not_imported")
def test_the_poll_engine_is_asked_for_when_nobody_chose() -> None:
    prefer_poll_engine()

    assert os.environ["GRPC_EXPERIMENTS"] == SERVING_EXPERIMENTS


@pytest.mark.usefixtures("grpc_not_imported")
def test_an_operators_choice_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPC_EXPERIMENTS", "")

    prefer_poll_engine()

    assert os.environ["GRPC_EXPERIMENTS"] == ""


def test_too_late_once_grpc_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "grpc", grpc_engine)
    monkeypatch.delenv("GRPC_EXPERIMENTS", raising=False)

    with pytest.raises(RuntimeError, match="already imported"):
        prefer_poll_engine()
    assert "GRPC_EXPERIMENTS" not in os.environ


def test_the_installed_grpc_knows_the_experiments_turned_off() -> None:
    # gRPC logs unknown names and goes on with its defaults: an upgrade that drops them would
    # silently serve on EventEngine again.
    imported = subprocess.run(
        [sys.executable, "-c", "import grpc"],
        env={**os.environ, "GRPC_EXPERIMENTS": SERVING_EXPERIMENTS, "GRPC_VERBOSITY": "error"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "Unknown experiment" not in imported.stderr
    bogus = subprocess.run(
        [sys.executable, "-c", "import grpc"],
        env={**os.environ, "GRPC_EXPERIMENTS": "-no_such_experiment", "GRPC_VERBOSITY": "error"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "Unknown experiment: no_such_experiment" in bogus.stderr
