"""`fraudstream platform` against the running platform: idempotent, and clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from fraudstream_cli.platform.mlflow_server import MlflowServer
from tests.platform import PLATFORM, free_port

pytestmark = pytest.mark.integration


def fraudstream(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fraudstream_cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def test_up_is_idempotent_and_status_reports_every_part() -> None:
    again = fraudstream("platform", "up")
    assert again.returncode == 0, again.stderr
    assert "kafka: already running" in again.stdout
    assert "0 created, all present" in again.stdout
    status = fraudstream("platform", "status")
    assert status.returncode == 0
    for part in ("kafka", "redis", "mlflow"):
        assert any(line.startswith(part) and "running" in line for line in status.stdout.splitlines()), status.stdout


def test_mlflow_runs_without_its_job_runner() -> None:
    pid = MlflowServer(PLATFORM).process.pid()
    assert pid is not None
    commands = [" ".join(child.cmdline()) for child in psutil.Process(pid).children(recursive=True)]
    assert any("uvicorn" in command for command in commands), commands  # the server's worker
    assert not [command for command in commands if "huey" in command or "jobs._job_runner" in command], commands


def test_a_taken_port_is_a_clear_error_not_a_stack_trace(tmp_path: Path) -> None:
    result = fraudstream(
        "platform",
        "up",
        env={"FRAUDSTREAM_HOME": str(tmp_path), "FRAUDSTREAM_KAFKA_PORT": str(PLATFORM.redis_port)},
    )
    assert result.returncode == 1
    assert f"port {PLATFORM.redis_port} is already taken" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_status_of_a_platform_that_is_not_running(tmp_path: Path) -> None:
    result = fraudstream(
        "platform",
        "status",
        env={
            "FRAUDSTREAM_HOME": str(tmp_path),
            "FRAUDSTREAM_KAFKA_PORT": "1",
            "FRAUDSTREAM_REDIS_PORT": "2",
            "FRAUDSTREAM_MLFLOW_PORT": "3",
        },
    )
    assert result.returncode == 3
    assert result.stdout.count("stopped") == 3


def elsewhere(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A platform home and Kafka ports of its own, so the running platform is not touched."""
    return {
        "FRAUDSTREAM_HOME": str(tmp_path),
        "FRAUDSTREAM_KAFKA_PORT": str(free_port()),
        "FRAUDSTREAM_KAFKA_CONTROLLER_PORT": str(free_port()),
        "FRAUDSTREAM_KAFKA_PROXIED_PORT": str(free_port()),
        **extra,
    }


def test_no_java_is_a_clear_error(tmp_path: Path) -> None:
    python_only = str(Path(sys.executable).parent)
    result = fraudstream(
        "platform",
        "up",
        env=elsewhere(tmp_path, PATH=python_only),
    )
    assert result.returncode == 1
    assert "Java 17+ is needed" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_refused_download_is_a_clear_error(tmp_path: Path) -> None:
    # Maven offline with an empty local repository: the jars cannot be had, as when Maven
    # Central refuses or is unreachable.
    result = fraudstream(
        "platform",
        "up",
        env=elsewhere(tmp_path, FRAUDSTREAM_MAVEN_ARGS=f"-o -Dmaven.repo.local={tmp_path / 'empty-m2'}"),
    )
    assert result.returncode == 1
    assert "could not resolve Apache Kafka from Maven Central" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
