"""Fixtures and helpers for tests that run against the real local platform (`make platform-up`): a Kafka broker,
Redis and MLflow. Each test gets its own topic prefix, so its topics, consumer groups,
transactional ids and dedupe keys are its own."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from fraudstream_cli.platform.kafka import KafkaBroker
from fraudstream_cli.platform.processes import port_open
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.environment import child_environment
from fraudstream_common.topics import Topic, topic_name

PLATFORM = PlatformSettings()


@pytest.fixture(scope="session", autouse=True)
def platform_running() -> None:
    missing = [
        name
        for name, port in (
            ("Kafka", PLATFORM.kafka_port),
            ("Redis", PLATFORM.redis_port),
            ("MLflow", PLATFORM.mlflow_port),
        )
        if not port_open(port)
    ]
    if missing:
        pytest.fail(f"{', '.join(missing)} not reachable: start the platform with `make platform-up`")


@dataclass
class Topics:
    prefix: str

    def __call__(self, topic: Topic) -> str:
        return topic_name(topic, self.prefix)


@pytest.fixture
def topics() -> Iterator[Topics]:
    prefix = f"it-{uuid.uuid4().hex[:8]}."
    broker = KafkaBroker(PlatformSettings(topic_prefix=prefix))
    broker.ensure_topics()
    yield Topics(prefix)
    admin = AdminClient({"bootstrap.servers": PLATFORM.kafka_bootstrap})
    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """A real fraudstream service, as `python -m <module>`, in a subprocess."""

    prefix: str
    log_dir: Path
    module: str = "fraudstream_ingest"
    redis_url: str = PLATFORM.redis_url
    kafka_bootstrap: str = PLATFORM.kafka_bootstrap
    extra_env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def name(self) -> str:
        return self.module.removeprefix("fraudstream_")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log_path(self) -> Path:
        """The log of its latest start."""
        return self.log_dir / f"{self.name}-{self.starts}.log"

    def start(self, wait_ready: bool = True) -> None:
        self.starts += 1
        env = child_environment(
            {
                "FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
                "FRAUDSTREAM_REDIS_URL": self.redis_url,
                "FRAUDSTREAM_TOPIC_PREFIX": self.prefix,
                "FRAUDSTREAM_HTTP_PORT": str(self.http_port),
                "FRAUDSTREAM_GRPC_PORT": str(self.grpc_port),
                "FRAUDSTREAM_INSTANCE_ID": f"{self.name}-it",
                **self.extra_env,
            }
        )
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        if wait_ready:
            self.wait_ready()

    def metric(self, name: str) -> float:
        """The sum of a Prometheus metric's samples (over all labels)."""
        return sum(self.metric_samples(name).values())

    def metric_samples(self, name: str) -> dict[str, float]:
        """A Prometheus metric's samples, by their labels as written."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=2) as response:
            text = response.read().decode()
        pattern = rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$"
        return {labels: float(value) for labels, value in re.findall(pattern, text, re.M)}

    def readiness(self) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def checks(self) -> dict[str, bool]:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
        checks: dict[str, bool] = json.loads(body)["checks"]
        return checks

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}; see {self.log_dir}")
            if self.readiness() == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready within {timeout}s; see {self.log_dir}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(45)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return int(self.process.returncode)


@pytest.fixture
def ingest(topics: Topics, tmp_path: Path) -> Iterator[ServiceProcess]:
    service = ServiceProcess(prefix=topics.prefix, log_dir=tmp_path)
    yield service
    if service.process is not None:
        service.terminate()


def eventually(check: Callable[[], bool], what: str, timeout: float = 180) -> None:
    """Waits until `check()` holds, failing with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout}s: {what}")


def producer() -> Producer:
    return Producer({"bootstrap.servers": PLATFORM.kafka_bootstrap, "enable.idempotence": True, "linger.ms": 10})


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes


def drain(topic: str, expected: int | None = None, timeout: float = 120, quiet: float = 3.0) -> list[Record]:
    """Every committed message on `topic`, reading until `expected` arrived (or nothing new for
    `quiet` seconds after it), or failing at `timeout`."""
    consumer = Consumer(
        {
            "bootstrap.servers": PLATFORM.kafka_bootstrap,
            "group.id": f"drain-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
    messages: list[Record] = []
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, timeout=0.5)
            fresh = [Record(m.key(), m.value() or b"") for m in batch if m.error() is None]
            for message in batch:
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"consumer error on {topic}: {error}")
            if fresh:
                messages.extend(fresh)
                last_new = time.monotonic()
            reached = expected is None or len(messages) >= expected
            if reached and time.monotonic() - last_new > quiet:
                return messages
        if expected is not None and len(messages) < expected:
            raise AssertionError(f"{topic}: {len(messages)} messages after {timeout}s, expected {expected}")
        return messages
    finally:
        consumer.close()


@pytest.fixture
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(PLATFORM.redis_url)


def wait_for_redis(url: str, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Until the Redis at `url` answers PING; fails when `process`, its server, exits first."""
    # A timeout per try: whoever else holds the port may accept and never answer.
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.ping():
                return
        except (redis.ConnectionError, redis.TimeoutError):
            assert process.poll() is None, f"redis-server exited with {process.returncode}"
            assert time.monotonic() < deadline, f"Redis did not answer within {timeout:.0f} s"
            time.sleep(0.1)


class PrivateRedis:
    def __init__(self, directory: Path, *options: str) -> None:
        self.port = free_port()
        self.directory = directory
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for_redis(self.url, self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


def feast_env(online_url: str, stores: Path) -> dict[str, str]:
    """A service's Feast settings: the online store's Redis, the registry and offline store
    under `stores`."""
    return {
        "FRAUDSTREAM_FEATURE_STORE_REDIS_URL": online_url,
        "FRAUDSTREAM_FEATURE_REGISTRY": str(stores / "registry.db"),
        "FRAUDSTREAM_FEATURE_OFFLINE_DIR": str(stores / "offline"),
    }
