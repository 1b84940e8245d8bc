"""Prometheus's own tool on our configuration: `promtool check config` (the scrape config and
the rules it loads) and `promtool test rules` (each alert fires on the series that should fire
it, at the time it should, and stays quiet on the healthy ones). promtool comes from Debian's
`prometheus` package, installed when missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fraudstream_cli.platform.debian import ensure_debian_package

pytestmark = pytest.mark.integration

PROMETHEUS = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


@pytest.mark.parametrize(
    "arguments",
    [["check", "config", "prometheus.yml"], ["test", "rules", "alerts_test.yml"]],
    ids=["check-config", "test-rules"],
)
def test_promtool(arguments: list[str]) -> None:
    promtool = ensure_debian_package("prometheus", "promtool")
    result = subprocess.run(
        [promtool, *arguments], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
