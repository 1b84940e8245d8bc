"""What inference tells the rest of the system.

The prediction log: every decision to `predictions`, keyed by transaction id, through an
idempotent, batching producer that the request never waits on. A background thread serves the
delivery reports; what the broker does not acknowledge is counted. On stop, the log is flushed.
Rollout events: each step of a model's rollout on this replica to `models.rollout`."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from confluent_kafka import KafkaError, Message, Producer

from fraudstream_common.deadletter import PROTOBUF_HEADERS
from fraudstream_common.kafka import producer_config
from fraudstream_common.schemas.v1.model_pb2 import RolloutEvent
from fraudstream_common.schemas.v1.prediction_pb2 import Prediction
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.timestamps import timestamp_of
from fraudstream_inference import metrics
from fraudstream_inference.rollout import RolloutStep

logger = logging.getLogger(__name__)


class PredictionLog:
    name = "prediction-log"

    def __init__(self, settings: ServiceSettings, topic: str, *, client_id: str) -> None:
        self._producer = Producer(producer_config(settings, client_id=client_id, overrides={"linger.ms": 20}))
        self._topic = topic
        self._stopping = threading.Event()
        self._failed = 0

    def log(self, prediction: Prediction) -> None:
        try:
            self._producer.produce(
                self._topic,
                prediction.SerializeToString(),
                prediction.transaction_id.encode(),
                headers=PROTOBUF_HEADERS,
                on_delivery=self._delivered,
            )
        except BufferError:
            # The local queue is full (the broker has been away for a while): the answer goes
            # out, the record does not, and the counter says so.
            metrics.PREDICTION_LOG_ERRORS.inc()
            logger.error("prediction log queue full; prediction for %s not logged", prediction.transaction_id)

    def flush(self, timeout: float) -> bool:
        """Waits for every prediction logged so far; True when all were acknowledged (the
        stream commits its offsets only then)."""
        remaining = self._producer.flush(timeout)
        failed, self._failed = self._failed, 0
        return remaining == 0 and failed == 0

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is None:
            metrics.PREDICTIONS_LOGGED.inc()
        else:
            self._failed += 1
            metrics.PREDICTION_LOG_ERRORS.inc()
            logger.error("prediction not logged: %s", error)

    def serve(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)

    async def run(self) -> None:
        await asyncio.to_thread(self.serve)

    async def stop(self) -> None:
        self._stopping.set()
        remaining = await asyncio.to_thread(self._producer.flush, 30)
        if remaining:
            logger.error("%d predictions not acknowledged at shutdown", remaining)


class RolloutEvents:
    """Each rollout step to `models.rollout` (the log line is the rollout's own)."""

    def __init__(self, settings: ServiceSettings, topic: str, *, model_name: str, replica: str) -> None:
        self._producer = Producer(producer_config(settings, client_id=f"{replica}-rollout", overrides={"linger.ms": 0}))
        self._topic = topic
        self._model_name = model_name
        self._replica = replica

    def __call__(self, step: RolloutStep) -> None:
        event = RolloutEvent(
            model_name=self._model_name,
            version=step.version,
            alias=step.alias,
            step=step.step,
            reason=step.reason,
            replica=self._replica,
            at=timestamp_of(time.time()),
        )
        self._producer.produce(
            self._topic, event.SerializeToString(), self._model_name.encode(), headers=PROTOBUF_HEADERS
        )
        self._producer.poll(0)

    def close(self) -> None:
        self._producer.flush(10)
