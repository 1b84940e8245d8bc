"""fraudstream's own services as local processes, on the architecture's default ports.

Each later service adds one entry to SERVICES.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

from fraudstream_cli.platform.processes import ManagedProcess, require_free_port, wait_until
from fraudstream_cli.platform.settings import PlatformSettings


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    http_port: int
    grpc_port: int | None = None
    # Started once alive: inference is ready only when a model has been published to it.
    alive_is_enough: bool = False


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("ingest", "fraudstream_ingest", 8081, 50052),
    ServiceSpec("features", "fraudstream_features", 8083),
    ServiceSpec("trainer", "fraudstream_trainer", 8084),
    ServiceSpec("inference", "fraudstream_inference", 8080, 50051, alive_is_enough=True),
    ServiceSpec("monitor", "fraudstream_monitor", 8082),
)


class LocalService:
    def __init__(self, spec: ServiceSpec, settings: PlatformSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.process = ManagedProcess(spec.name, settings.home / "run")

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.spec.module) is not None

    def environment(self) -> dict[str, str]:
        env = {
            "FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap,
            "FRAUDSTREAM_REDIS_URL": self.settings.redis_url,
            "FRAUDSTREAM_MLFLOW_TRACKING_URI": self.settings.mlflow_url,
            "FRAUDSTREAM_TOPIC_PREFIX": self.settings.topic_prefix,
            "FRAUDSTREAM_FEATURE_STORE_REDIS_URL": self.settings.feature_store_redis_url,
            "FRAUDSTREAM_FEATURE_REGISTRY": str(self.settings.feature_registry),
            "FRAUDSTREAM_FEATURE_OFFLINE_DIR": str(self.settings.feature_offline_dir),
            "FRAUDSTREAM_HTTP_PORT": str(self.spec.http_port),
        }
        if self.spec.grpc_port is not None:
            env["FRAUDSTREAM_GRPC_PORT"] = str(self.spec.grpc_port)
        return env

    def start(self) -> str:
        if self.process.pid() is not None:
            self.wait_ready()
            return "already running"
        require_free_port(self.spec.http_port, self.spec.name)
        if self.spec.grpc_port is not None:
            require_free_port(self.spec.grpc_port, f"{self.spec.name} gRPC")
        self.process.start([sys.executable, "-m", self.spec.module], env=self.environment())
        self.wait_ready()
        return "started"

    def readiness(self) -> dict[str, object] | None:
        url = f"http://127.0.0.1:{self.spec.http_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body: dict[str, object] = json.loads(response.read())
                return body
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            return body
        except (OSError, ValueError):
            return None

    def wait_ready(self) -> None:
        def ready() -> bool:
            state = self.readiness()
            return state is not None and (self.spec.alive_is_enough or bool(state.get("ready")))

        wait_until(
            ready,
            process=self.process,
            what=f"the {self.spec.name} service",
            timeout=self.settings.start_timeout_seconds,
        )

    def stop(self) -> bool:
        return self.process.stop(timeout=40)
