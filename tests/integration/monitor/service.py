"""The monitor service as the tests and the benchmark start it."""

from __future__ import annotations

from pathlib import Path

from tests.platform import PLATFORM, ServiceProcess


def monitor_service(prefix: str, directory: Path, experiment: str, model: str, **settings: str) -> ServiceProcess:
    """The monitor service (not started) watching `model`, whose runs are in `experiment` of the
    platform's MLflow; `settings` adds or overrides FRAUDSTREAM_ variables."""
    return ServiceProcess(
        prefix=prefix,
        log_dir=directory,
        module="fraudstream_monitor",
        extra_env={
            "FRAUDSTREAM_MLFLOW_TRACKING_URI": PLATFORM.mlflow_url,
            "FRAUDSTREAM_MLFLOW_EXPERIMENT": experiment,
            "FRAUDSTREAM_REGISTERED_MODEL": model,
            **{f"FRAUDSTREAM_{name.upper()}": value for name, value in settings.items()},
        },
    )
