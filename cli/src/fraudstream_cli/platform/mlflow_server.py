"""The MLflow tracking server: SQLite backend store, local artifact folder served by the server."""

from __future__ import annotations

import importlib.util
import sys
import urllib.request

from fraudstream_cli.platform.processes import (
    ManagedProcess,
    PlatformError,
    require_free_port,
    wait_until,
)
from fraudstream_cli.platform.settings import PlatformSettings

# The server's job runner (GenAI jobs: prompt optimisation, online scoring, trace rollups)
# starts eight Python processes of its own, 1.4 GB of memory between them here and 3% of a
# core while idle; fraudstream uses none of it.
NO_JOB_EXECUTION = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class MlflowServer:
    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        self.home = settings.home / "mlflow"
        self.process = ManagedProcess("mlflow", settings.home / "run")

    def start(self) -> str:
        if self.process.pid() is not None:
            self.wait_ready()
            return "already running"
        require_free_port(self.settings.mlflow_port, "MLflow")
        if importlib.util.find_spec("mlflow") is None:
            raise PlatformError(
                "the MLflow server is not installed: install fraudstream-cli[platform] (make install does)"
            )
        (self.home / "artifacts").mkdir(parents=True, exist_ok=True)
        self.process.start(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.home / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.home / "artifacts"),
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.settings.mlflow_port),
                "--workers",
                "1",
            ],
            env={"MLFLOW_TRACKING_URI": "", **NO_JOB_EXECUTION},
        )
        self.wait_ready()
        return "started"

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.settings.mlflow_url}/health", timeout=2) as response:  # noqa: S310 - local URL
            return bool(response.status == 200)

    def wait_ready(self) -> None:
        wait_until(
            self._healthy,
            process=self.process,
            what="MLflow",
            timeout=self.settings.start_timeout_seconds,
        )

    def stop(self) -> bool:
        return self.process.stop(timeout=20)
