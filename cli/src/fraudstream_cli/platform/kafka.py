"""A single-node Apache Kafka broker in KRaft mode, from the official jars on Maven Central.

The jars are resolved once with Maven (kafka-pom.xml beside this file) into
<home>/cache/kafka-<hash>/lib; later starts need no network. The broker then runs as
`java -cp 'lib/*' kafka.Kafka server.properties`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from fraudstream_cli.platform.debian import ensure_debian_package
from fraudstream_cli.platform.processes import (
    ManagedProcess,
    PlatformError,
    port_open,
    require_free_port,
    wait_until,
)
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.topics import TOPIC_SPECS, partition_layout_errors, topic_name, topic_partitions

MINIMUM_JAVA = 17

LOG4J2 = """Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
      - name: kafka.server.KafkaServer
        level: INFO
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
"""


class KafkaBroker:
    def __init__(self, settings: PlatformSettings) -> None:
        self.settings = settings
        self.home = settings.home / "kafka"
        self.process = ManagedProcess("kafka", settings.home / "run")

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def _pom(self) -> bytes:
        return resources.files("fraudstream_cli.platform").joinpath("kafka-pom.xml").read_bytes()

    @property
    def lib_dir(self) -> Path:
        digest = hashlib.sha256(self._pom()).hexdigest()[:12]
        return self.settings.home / "cache" / f"kafka-{digest}" / "lib"

    def start(self) -> str:
        if self.process.pid() is not None:
            self.wait_ready()
            return "already running"
        require_free_port(self.settings.kafka_port, "Kafka")
        require_free_port(self.settings.kafka_controller_port, "the Kafka controller")
        require_free_port(self.settings.kafka_proxied_port, "Kafka's listener for a proxy")
        java = find_java()
        lib = self.ensure_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        properties = self.home / "server.properties"
        properties.write_text(self._server_properties())
        log_config = self.home / "log4j2.yaml"
        log_config.write_text(LOG4J2)
        classpath = f"{lib}/*"
        if not (self.data_dir / "meta.properties").exists():
            format_storage(java, classpath, properties)
        self.process.start(
            [
                java,
                "-Xms256m",
                f"-Xmx{self.settings.kafka_heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={log_config}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(properties),
            ]
        )
        self.wait_ready()
        return "started"

    def wait_ready(self) -> None:
        wait_until(
            self._metadata_ok,
            process=self.process,
            what="Kafka",
            timeout=self.settings.start_timeout_seconds,
        )

    def stop(self) -> bool:
        return self.process.stop(timeout=30)

    def admin(self) -> AdminClient:
        # log_level 0: the start-up wait probes a broker that is not listening yet; its
        # "connection refused" lines are expected, and failures surface as PlatformError.
        return AdminClient(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "socket.timeout.ms": 5000,
                "log_level": 0,
            }
        )

    def _metadata_ok(self) -> bool:
        if not port_open(self.settings.kafka_port):
            return False
        self.admin().list_topics(timeout=2)
        return True

    def ensure_jars(self) -> Path:
        lib = self.lib_dir
        marker = lib / ".complete"
        if marker.exists():
            return lib
        # Kafka's jars are not cached yet: Maven fetches them from Maven Central.
        mvn = ensure_debian_package("maven", "mvn")
        lib.mkdir(parents=True, exist_ok=True)
        pom = lib.parent / "pom.xml"
        pom.write_bytes(self._pom())
        result = subprocess.run(  # noqa: S603
            [
                mvn,
                "-B",
                "-q",
                *shlex.split(self.settings.maven_args),
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={lib}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
            raise PlatformError(
                f"could not resolve Apache Kafka from Maven Central (mvn exit {result.returncode}):\n{tail}"
            )
        marker.write_text("ok\n")
        return lib

    def _server_properties(self) -> str:
        s = self.settings
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{s.kafka_controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},PROXIED://127.0.0.1:{s.kafka_proxied_port},"
                f"CONTROLLER://127.0.0.1:{s.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{s.kafka_port},PROXIED://127.0.0.1:{s.kafka_proxy_port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={self.data_dir}",
                "num.partitions=1",
                "auto.create.topics.enable=false",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=8",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "log.retention.hours=168",
                "log.segment.bytes=268435456",
                "",
            ]
        )

    def ensure_topics(self) -> list[str]:
        return ensure_topics(
            {"bootstrap.servers": self.settings.kafka_bootstrap},
            self.settings.topic_prefix,
            stream_partitions=self.settings.stream_partitions,
        )


def ensure_topics(
    client_config: Mapping[str, str | int | float | bool],
    prefix: str = "",
    timeout: float = 60.0,
    *,
    stream_partitions: int = 4,
) -> list[str]:
    """Creates every fraudstream topic missing on the cluster (`client_config`: librdkafka's
    settings for reaching it, ServiceSettings.kafka_client_config) and waits until each one is
    in the metadata with a leader for every partition; returns the names created. New topics
    take the cluster's default replication factor.

    Fails when an existing topic has fewer partitions than fraudstream needs, or a changelog
    other than as many as the topic whose state it holds (PartitionLayoutError).
    """
    admin = AdminClient({**client_config, "socket.timeout.ms": 5000, "log_level": 0})
    try:
        existing = admin.list_topics(timeout=15).topics
    except KafkaException as exc:
        raise PlatformError(f"cannot reach Kafka at {client_config['bootstrap.servers']}: {exc}") from exc
    wanted = topic_partitions(prefix, stream_partitions)
    for name, partitions in wanted.items():
        if name in existing and len(existing[name].partitions) < partitions:
            found = len(existing[name].partitions)
            raise PlatformError(f"topic {name} has {found} partitions; fraudstream needs {partitions}")
    layout = partition_layout_errors(
        {name: len(existing[name].partitions) if name in existing else count for name, count in wanted.items()}, prefix
    )
    if layout:
        raise PlatformError("; ".join(str(error) for error in layout))
    missing = [
        NewTopic(name, num_partitions=wanted[name], replication_factor=-1, config=spec.config)
        for spec in TOPIC_SPECS
        if (name := topic_name(spec.topic, prefix)) not in existing
    ]
    if missing:
        for name, future in admin.create_topics(missing, operation_timeout=30).items():
            try:
                future.result()
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise PlatformError(f"could not create topic {name}: {exc}") from exc
    # Creation is acknowledged before every broker's metadata shows the topic: wait for it.
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=10).topics
        pending = [
            name
            for name, partitions in wanted.items()
            if name not in metadata
            or len(metadata[name].partitions) < partitions
            or any(p.leader < 0 for p in metadata[name].partitions.values())
        ]
        if not pending:
            return [t.topic for t in missing]
        if time.monotonic() > deadline:
            raise PlatformError(f"topics without leaders after {timeout:.0f}s: {', '.join(pending)}")
        time.sleep(0.2)


def find_java() -> str:
    java = shutil.which("java")
    if java is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise PlatformError(
                f"Java {MINIMUM_JAVA}+ is needed to run Kafka: install it "
                f"(sudo apt-get install openjdk-{MINIMUM_JAVA}-jre-headless)"
            )
        java = ensure_debian_package(f"openjdk-{MINIMUM_JAVA}-jre-headless", "java")
    version = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr  # noqa: S603
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version)
    if match:
        major = int(match.group(1)) if match.group(1) != "1" else int(match.group(2) or 0)
        if major < MINIMUM_JAVA:
            raise PlatformError(f"Kafka 4 needs Java {MINIMUM_JAVA}+, found Java {major} at {java}")
    return java


def format_storage(java: str, classpath: str, properties: Path) -> None:
    """Formats the log directories of a new KRaft node (`properties`) with a new cluster id."""
    cluster_id = _run_java(java, classpath, ["kafka.tools.StorageTool", "random-uuid"]).strip().splitlines()[-1]
    _run_java(java, classpath, ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties)])


def _run_java(java: str, classpath: str, args: list[str]) -> str:
    result = subprocess.run([java, "-cp", classpath, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise PlatformError(f"`{' '.join(args[:2])}` failed:\n{(result.stdout + result.stderr)[-1500:]}")
    return result.stdout
