"""What inference tells the rest of the system.

The prediction log: every decision to `predictions`, keyed by transaction id, through an
idempotent, batching producer that the request never waits on. A background thread serves the
delivery reports; what the broker does not acknowledge is counted. On stop, the log is flushed.
Rollout events: each step of a model's rollout on this replica to `models.rollout`.

A prediction's feature values are encoded for a whole scoring pass at once (`FeatureValues`)
rather than as a FeatureValue message each, which cost more than the rest of the record
(benchmarks/prediction_record.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from confluent_kafka import KafkaError, Message, Producer

from fraudstream_common.deadletter import PROTOBUF_HEADERS
from fraudstream_common.kafka import producer_config
from fraudstream_common.schemas.v1.model_pb2 import RolloutEvent
from fraudstream_common.schemas.v1.prediction_pb2 import FeatureValue, Prediction
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.timestamps import timestamp_of
from fraudstream_inference import metrics
from fraudstream_inference.rollout import RolloutStep

logger = logging.getLogger(__name__)


class FeatureValues:
    """The `features` field of `Prediction` (repeated FeatureValue: name, value, age_seconds),
    encoded for many rows at once from the value and age arrays: the wire bytes of every
    feature but its two doubles are the same in every record, so a row is a copy of that
    template with the doubles written in. Appended to the rest of a serialised Prediction, they
    parse as the same message (a field may come anywhere in a record); unlike protobuf's own
    encoder, zeros are written rather than left out, which reads the same."""

    def __init__(self, names: Sequence[str]) -> None:
        template = bytearray()
        value_at, age_at = [], []
        field_tag = _tag(Prediction.FEATURES_FIELD_NUMBER, _LENGTH_DELIMITED)
        for name in names:
            encoded = name.encode()
            name_field = _tag(FeatureValue.NAME_FIELD_NUMBER, _LENGTH_DELIMITED) + _varint(len(encoded)) + encoded
            value_tag = _tag(FeatureValue.VALUE_FIELD_NUMBER, _FIXED64)
            age_tag = _tag(FeatureValue.AGE_SECONDS_FIELD_NUMBER, _FIXED64)
            body_length = len(name_field) + len(value_tag) + 8 + len(age_tag) + 8
            template += field_tag + _varint(body_length) + name_field + value_tag
            value_at.append(len(template))
            template += bytes(8) + age_tag
            age_at.append(len(template))
            template += bytes(8)
        self._template = np.frombuffer(bytes(template), dtype=np.uint8)
        self._value_bytes = (np.asarray(value_at)[:, None] + np.arange(8)).ravel()
        self._age_bytes = (np.asarray(age_at)[:, None] + np.arange(8)).ravel()
        self._width = len(names)

    def encode(self, values: np.ndarray, ages: np.ndarray) -> list[bytes]:
        """One encoded field per row of `values` and `ages` (rows x features, in the names' order)."""
        rows = len(values)
        if values.shape != (rows, self._width) or ages.shape != values.shape:
            raise ValueError(f"expected {rows} x {self._width} values and ages, got {values.shape} and {ages.shape}")
        encoded = np.tile(self._template, (rows, 1))
        encoded[:, self._value_bytes] = np.ascontiguousarray(values, dtype="<f8").view(np.uint8)
        encoded[:, self._age_bytes] = np.ascontiguousarray(ages, dtype="<f8").view(np.uint8)
        return [row.tobytes() for row in encoded]


_LENGTH_DELIMITED, _FIXED64 = 2, 1


def _tag(field_number: int, wire_type: int) -> bytes:
    return _varint(field_number << 3 | wire_type)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class PredictionSink(Protocol):
    """Where the core logs each prediction it makes."""

    def log(self, transaction_id: str, record: bytes) -> None:
        """`record`: a serialised Prediction, keyed by its transaction id."""


class PredictionLog:
    """Only failures come back as delivery reports (`delivery.report.only.error`): a report for
    every record, served by the poll thread, took about a tenth of the process's time under
    load (py-spy). A record that left the producer's queue without one was acknowledged; the
    acknowledged count is worked out from that after every poll."""

    name = "prediction-log"

    def __init__(self, settings: ServiceSettings, topic: str, *, client_id: str) -> None:
        overrides = {"linger.ms": 20, "delivery.report.only.error": True, "on_delivery": self._delivered}
        self._producer = Producer(producer_config(settings, client_id=client_id, overrides=overrides))
        self._topic = topic
        self._stopping = threading.Event()
        self._produced = 0
        self._acknowledged = 0
        self._failed_total = 0

    def log(self, transaction_id: str, record: bytes) -> None:
        """`record`: a serialised Prediction, keyed by its transaction id."""
        try:
            self._producer.produce(self._topic, record, transaction_id.encode(), headers=PROTOBUF_HEADERS)
        except BufferError:
            # The local queue is full (the broker has been away for a while): the answer goes
            # out, the record does not, and the counter says so.
            metrics.PREDICTION_LOG_ERRORS.inc()
            logger.error("prediction log queue full; prediction for %s not logged", transaction_id)
            return
        self._produced += 1

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failed_total += 1
            metrics.PREDICTION_LOG_ERRORS.inc()
            logger.error("prediction not logged: %s", error)

    def _count_acknowledged(self) -> None:
        # Read in this order, a record produced meanwhile can only make the figure low for a
        # moment, never high: it is counted once it has left the queue.
        acknowledged = self._produced - len(self._producer) - self._failed_total
        if acknowledged > self._acknowledged:
            metrics.PREDICTIONS_LOGGED.inc(acknowledged - self._acknowledged)
            self._acknowledged = acknowledged

    def serve(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.1)
            self._count_acknowledged()

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
