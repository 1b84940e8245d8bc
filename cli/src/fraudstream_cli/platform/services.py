"""fraudstream's own services as local processes, on the architecture's default ports.

Each later service adds one entry to SERVICES. A scalable service runs as replicas 0..N-1:
replica 0 on the service's ports, replica N on ports 100 * N higher, each with its own instance
id (so its own Kafka transactional ids).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
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
    # Runs as several replicas sharing its partitions (each replica N > 0 listens 100 * N higher).
    scalable: bool = False


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("ingest", "fraudstream_ingest", 8081, 50052, scalable=True),
    ServiceSpec("features", "fraudstream_features", 8083, scalable=True),
    ServiceSpec("trainer", "fraudstream_trainer", 8084),
    ServiceSpec("inference", "fraudstream_inference", 8080, 50051, alive_is_enough=True, scalable=True),
    ServiceSpec("monitor", "fraudstream_monitor", 8082, scalable=True),
)


REPLICA_PORT_STEP = 100
MAX_REPLICAS = 16


class LocalService:
    def __init__(self, spec: ServiceSpec, settings: PlatformSettings, replica: int = 0) -> None:
        if replica and not spec.scalable:
            raise ValueError(f"{spec.name} runs as one process")
        self.spec = spec
        self.settings = settings
        self.replica = replica
        self.name = spec.name if replica == 0 else f"{spec.name}-{replica}"
        self.http_port = spec.http_port + REPLICA_PORT_STEP * replica
        self.grpc_port = None if spec.grpc_port is None else spec.grpc_port + REPLICA_PORT_STEP * replica
        self.process = ManagedProcess(self.name, settings.home / "run")

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
            "FRAUDSTREAM_HTTP_PORT": str(self.http_port),
            "FRAUDSTREAM_INSTANCE_ID": f"{self.spec.name}-{self.replica}",
        }
        if self.grpc_port is not None:
            env["FRAUDSTREAM_GRPC_PORT"] = str(self.grpc_port)
        return env

    def start(self) -> str:
        if self.process.pid() is not None:
            self.wait_ready()
            return "already running"
        require_free_port(self.http_port, self.name)
        if self.grpc_port is not None:
            require_free_port(self.grpc_port, f"{self.name} gRPC")
        self.process.start([sys.executable, "-m", self.spec.module], env=self.environment())
        self.wait_ready()
        return "started"

    def readiness(self) -> dict[str, object] | None:
        url = f"http://127.0.0.1:{self.http_port}/readyz"
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
            what=f"the {self.name} service",
            timeout=self.settings.start_timeout_seconds,
        )

    def stop(self) -> bool:
        return self.process.stop(timeout=40)


def local_services(settings: PlatformSettings, replicas: Mapping[str, int] | None = None) -> list[LocalService]:
    """Every service's processes in start order: `replicas` of each scalable one named there
    (one otherwise)."""
    wanted = dict(replicas or {})
    unknown = set(wanted) - {spec.name for spec in SERVICES}
    if unknown:
        raise ValueError(f"no service called {', '.join(sorted(unknown))}")
    services: list[LocalService] = []
    for spec in SERVICES:
        count = wanted.get(spec.name, 1)
        if not 1 <= count <= MAX_REPLICAS or (count > 1 and not spec.scalable):
            raise ValueError(f"{spec.name}: {count} replicas (scalable services: 1 to {MAX_REPLICAS}; others: 1)")
        services.extend(LocalService(spec, settings, replica) for replica in range(count))
    return services


def parse_replicas(values: Sequence[str]) -> dict[str, int]:
    """`["features=2"]` or `["features=2,ingest=2"]` -> {"features": 2, ...}."""
    replicas = {}
    for value in (part for given in values for part in given.split(",")):
        name, _, count = value.partition("=")
        if not count.isdigit():
            raise ValueError(f"--replicas takes SERVICE=N, not {value!r}")
        replicas[name.strip()] = int(count)
    return replicas
