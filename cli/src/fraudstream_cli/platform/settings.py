"""Where the local platform lives and which ports it takes (FRAUDSTREAM_ environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    """`.platform` beside the workspace's uv.lock when run inside the repository, else in the cwd."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "uv.lock").exists() and (folder / "proto").is_dir():
            return folder / ".platform"
    return here / ".platform"


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUDSTREAM_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Folder for the platform's data, logs and caches.",
    )
    kafka_port: int = Field(default=9092, description="Kafka broker port (PLAINTEXT, 127.0.0.1).")
    kafka_controller_port: int = Field(default=9093, description="KRaft controller port.")
    kafka_proxied_port: int = Field(
        default=9094,
        description="A second PLAINTEXT listener, for a proxy in front of the broker: it advertises "
        "kafka_proxy_port, so that clients that bootstrap through the proxy stay behind it (the chaos suite's "
        "Toxiproxy slows and cuts their connections there).",
    )
    kafka_proxy_port: int = Field(
        default=9095, description="Where the proxy in front of kafka_proxied_port listens; nothing, without one."
    )
    kafka_heap: str = Field(default="768m", description="Broker JVM heap (-Xmx).")
    redis_port: int = Field(default=6379, description="Redis port.")
    redis_max_memory_mb: int = Field(
        default=2048,
        ge=16,
        description=(
            "Redis's maxmemory. Full, it drops the oldest keys that expire (dedupe ids, decisions), never the "
            "feature state or the API keys."
        ),
    )
    mlflow_port: int = Field(default=5000, description="MLflow tracking server port.")
    topic_prefix: str = Field(default="", description="Prefix of every topic name.")
    stream_partitions: int = Field(
        default=4,
        ge=1,
        le=256,
        description=(
            "Partitions of each stream the services share by partition (transactions, labels, predictions and the "
            "features' own): the most replicas of a stage that all have work. Set before the topics are created."
        ),
    )
    maven_args: str = Field(
        default="", description="Extra arguments for mvn when fetching Kafka (e.g. '-s settings.xml' for a mirror)."
    )
    start_timeout_seconds: float = Field(default=120.0, description="How long each part may take to become ready.")

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def feature_store_redis_url(self) -> str:
        """Feast's online store: the same Redis, its own database."""
        return f"redis://127.0.0.1:{self.redis_port}/1"

    @property
    def feature_registry(self) -> Path:
        return self.home / "feast" / "registry.db"

    @property
    def feature_offline_dir(self) -> Path:
        return self.home / "feast" / "offline"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"
