"""`models.published`: one record per promotion, keyed by model name, from an idempotent
producer; `publish` returns only once the broker acknowledged it."""

from __future__ import annotations

from confluent_kafka import Producer

from fraudstream_common.deadletter import PROTOBUF_HEADERS
from fraudstream_common.kafka import DeliveryError, produce_acknowledged, producer_config
from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.settings import ServiceSettings


class EventPublisher:
    def __init__(self, settings: ServiceSettings, topic: str, *, client_id: str, timeout: float = 30.0) -> None:
        self._producer = Producer(producer_config(settings, client_id=client_id, overrides={"linger.ms": 0}))
        self._topic = topic
        self._timeout = timeout

    def __call__(self, event: ModelPublished) -> None:
        try:
            produce_acknowledged(
                self._producer,
                self._topic,
                event.SerializeToString(),
                event.model_name.encode(),
                PROTOBUF_HEADERS,
                self._timeout,
            )
        except DeliveryError as exc:
            raise DeliveryError(f"models.published for version {event.version}: {exc}") from exc

    def close(self) -> None:
        self._producer.flush(self._timeout)
