"""The stream path through a Kafka that asks for SASL_SSL (SCRAM-SHA-512) and enforces ACLs, and
a Redis that asks for TLS and an ACL user, as managed offerings do: ingest, features, inference
and the monitor each connect as their own Kafka user, with the ACLs the Kubernetes overlays
give them (fraudstream_cli.platform.acls), so a topic written by a service the topics table
does not name as its writer fails here."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer

from fraudstream_common.kafka import producer_config
from fraudstream_common.schemas.v1.prediction_pb2 import Prediction
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.topics import Topic, Writer
from fraudstream_feature_store.store import apply_repository
from fraudstream_registry.publisher import EventPublisher
from fraudstream_simulator.sinks import Pacing, replay_to_kafka
from tests.integration.features.streams import features_service
from tests.integration.inference.serving import inference_service, train_and_publish
from tests.integration.monitor.service import monitor_service
from tests.platform import ServiceProcess, Topics, eventually, feast_env

from .secured import SecuredKafka, TlsRedis, make_certificates

TRANSACTIONS = 3000


def settings_as(kafka: SecuredKafka, writer: Writer) -> ServiceSettings:
    values = {name.removeprefix("FRAUDSTREAM_").lower(): value for name, value in kafka.client_settings(writer).items()}
    return ServiceSettings(**values)  # type: ignore[arg-type]


def committed_records(kafka: SecuredKafka, topic: str, expected: int, timeout: float) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": f"127.0.0.1:{kafka.internal_port}",
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(values) < expected:
            for message in consumer.consume(1000, timeout=1):
                value = message.value()
                if message.error() is None and value is not None:
                    values.append(value)
    finally:
        consumer.close()
    return values


def write_refused(kafka: SecuredKafka, writer: Writer, topic: str) -> bool:
    outcome: list[KafkaError | None] = []
    producer = Producer(producer_config(settings_as(kafka, writer), client_id=f"{writer.value}-probe"))
    producer.produce(topic, b"x", on_delivery=lambda error, _message: outcome.append(error))
    producer.flush(30)
    return bool(outcome) and outcome[0] is not None and outcome[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_services_run_on_sasl_ssl_with_acls_and_redis_on_tls(topics: Topics, tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path / "tls")
    kafka = SecuredKafka(tmp_path / "kafka", certificates)
    online = TlsRedis(tmp_path / "redis", certificates)
    services: list[ServiceProcess] = []
    try:
        kafka.start()
        online.start()
        assert write_refused(kafka, Writer.PRODUCER, "predictions")
        assert write_refused(kafka, Writer.INGEST, "predictions")

        model_name = f"fraud-detector-{uuid.uuid4().hex[:8]}"
        world, _, _, published = train_and_publish(topics, tmp_path / "model", model_name, always_promote=False)
        # The trainer's record of version 1, on the secured cluster, written by the trainer's user.
        EventPublisher(settings_as(kafka, Writer.TRAINER), "models.published", client_id="trainer-it")(published[0])

        stores = tmp_path / "stores"
        apply_repository(online.url(1), stores / "registry.db", stores / "offline")
        store_env = feast_env(online.url(1), stores)
        logs = tmp_path / "logs"
        logs.mkdir()
        for service, writer in (
            (ServiceProcess(prefix="", log_dir=logs), Writer.INGEST),
            (features_service(Topics(""), logs, **store_env), Writer.FEATURES),
            (inference_service("", logs, model_name, store_env), Writer.INFERENCE),
            (monitor_service("", logs, model_name, model_name), Writer.MONITOR),
        ):
            service.kafka_bootstrap = kafka.bootstrap
            service.redis_url = online.url(0)
            service.extra_env.update(kafka.client_settings(writer))
            service.start(wait_ready=False)
            services.append(service)
        for service in services:
            service.wait_ready(timeout=180)

        replay_to_kafka(
            world, settings_as(kafka, Writer.PRODUCER), pacing=Pacing.fast(), limit=TRANSACTIONS, run_id="secured"
        )
        predictions = committed_records(kafka, "predictions", TRANSACTIONS, timeout=240)
        predicted = {Prediction.FromString(value).transaction_id for value in predictions}
        assert len(predicted) == TRANSACTIONS, f"{len(predicted)} of {TRANSACTIONS} predicted; see {logs}"
        assert len(predictions) == TRANSACTIONS

        monitor = services[-1]
        eventually(
            lambda: monitor.metric("fraudstream_monitor_predictions_total") >= TRANSACTIONS,
            "the monitor counts every prediction",
            timeout=120,
        )
        assert committed_records(kafka, "monitor.partials", 1, timeout=60), "the monitor wrote no partials"
        assert not committed_records(kafka, Topic.DEADLETTER.value, 1, timeout=5)
        for log in logs.glob("*.log"):
            text = log.read_text(errors="replace").lower()
            assert "authorization" not in text, log.name
    finally:
        for service in services:
            if service.process is not None and service.process.poll() is None:
                service.terminate()
        online.stop()
        kafka.stop()
