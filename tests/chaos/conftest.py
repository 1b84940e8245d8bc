"""Tests here need the real local platform (`make platform-up`) and may kill parts of it; see
tests/chaos/system.py."""

from __future__ import annotations

import pytest

from tests.chaos import report
from tests.platform import platform_running

__all__ = ["platform_running"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not report.ROWS:
        return
    terminalreporter.section("chaos: what each fault cost")
    terminalreporter.write_line(report.table(report.ROWS))
    written = report.write(report.ROWS)
    if written is not None:
        terminalreporter.write_line(f"written to {written}")
