"""Bring the local platform (and fraudstream's services) up and down, in dependency order."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fraudstream_cli.platform.kafka import KafkaBroker
from fraudstream_cli.platform.mlflow_server import MlflowServer
from fraudstream_cli.platform.processes import PlatformError, port_open
from fraudstream_cli.platform.redis_server import RedisServer
from fraudstream_cli.platform.services import MAX_REPLICAS, SERVICES, LocalService, local_services
from fraudstream_cli.platform.settings import PlatformSettings

Report = Callable[[str], None]


@dataclass(frozen=True)
class Status:
    name: str
    running: bool
    pid: int | None
    port: int
    port_open: bool
    detail: str = ""


class Platform:
    def __init__(self, settings: PlatformSettings, replicas: Mapping[str, int] | None = None) -> None:
        self.settings = settings
        self.kafka = KafkaBroker(settings)
        self.redis = RedisServer(settings)
        self.mlflow = MlflowServer(settings)
        self.services = local_services(settings, replicas)

    def up(self, report: Report) -> None:
        report(f"kafka: {self.kafka.start()} on {self.settings.kafka_bootstrap}")
        created = self.kafka.ensure_topics()
        report(f"kafka topics: {len(created)} created" + (f" ({', '.join(created)})" if created else ", all present"))
        report(f"redis: {self.redis.start()} on {self.settings.redis_url}")
        report(f"mlflow: {self.mlflow.start()} on {self.settings.mlflow_url}")
        report(f"feast: {self.apply_feature_repository()}")

    def apply_feature_repository(self) -> str:
        """Registers fraudstream's Feast repository (idempotent); needs Redis up."""
        from fraudstream_feature_store.store import apply_repository

        s = self.settings
        apply_repository(s.feature_store_redis_url, s.feature_registry, s.feature_offline_dir)
        return f"repository applied (registry {s.feature_registry}, online store {s.feature_store_redis_url})"

    def down(self, report: Report) -> None:
        # Reverse of start-up order; Kafka last so that clients of it can finish first.
        for name, part in (("mlflow", self.mlflow), ("redis", self.redis), ("kafka", self.kafka)):
            report(f"{name}: {'stopped' if part.stop() else 'was not running'}")

    def delete_data(self, report: Report) -> None:
        """Deletes what the platform and the services wrote (topics, stores, models, logs), not the
        downloads in `cache`; refused while a part or a service still runs."""
        running = [row.name for row in self.status(with_services=True) if row.running]
        if running:
            raise PlatformError(f"still running, not deleted: {', '.join(running)}")
        home = self.settings.home
        for folder in (self.kafka.home, self.redis.home, self.mlflow.home, home / "feast", home / "run"):
            if folder.exists():
                shutil.rmtree(folder)
                report(f"{folder.relative_to(home)}: deleted")

    def services_up(self, report: Report) -> None:
        for service in self.services:
            if service.installed:
                report(f"{service.name}: {service.start()} on http://127.0.0.1:{service.http_port}")
            else:
                report(f"{service.name}: not installed, skipped")

    def services_down(self, report: Report) -> None:
        for service in reversed(self._running_replicas()):
            report(f"{service.name}: {'stopped' if service.stop() else 'was not running'}")

    def _running_replicas(self) -> list[LocalService]:
        """The services asked for, and any replica a `fraudstream up --replicas` left running."""
        known = {service.name for service in self.services}
        extra = [
            replica
            for spec in SERVICES
            if spec.scalable
            for n in range(1, MAX_REPLICAS)
            if (replica := LocalService(spec, self.settings, n)).name not in known and replica.process.pid() is not None
        ]
        return [*self.services, *extra]

    def status(self, with_services: bool) -> list[Status]:
        parts = [
            ("kafka", self.kafka.process.pid(), self.settings.kafka_port),
            ("redis", self.redis.process.pid(), self.settings.redis_port),
            ("mlflow", self.mlflow.process.pid(), self.settings.mlflow_port),
        ]
        rows = [Status(name, pid is not None, pid, port, port_open(port)) for name, pid, port in parts]
        if with_services:
            for service in self._running_replicas():
                pid = service.process.pid()
                state = service.readiness() if pid is not None else None
                detail = (
                    "" if state is None else ("ready" if state.get("ready") else f"not ready: {state.get('checks')}")
                )
                rows.append(
                    Status(service.name, pid is not None, pid, service.http_port, port_open(service.http_port), detail)
                )
        return rows

    def service_pids(self) -> dict[str, int | None]:
        """Each service's process id, None where it is not running (no readiness asked)."""
        return {service.name: service.process.pid() for service in self._running_replicas()}
