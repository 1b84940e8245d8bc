"""The monitor's input: `predictions` and `labels`; its output: `monitor.alerts` and
`retrain.requests` (and `deadletter`).

Order within a batch, and why: the records are decoded (an undecodable one becomes a dead
letter), handed to the core, the alerts it raises and any retrain request that is due are
produced, the producer is flushed until the broker acknowledged every output, and only then
are the batch's offsets committed. A crash before the commit reads the batch again; alert and
request ids are derived from their evidence, so a repeat carries the same ids (the trainer acts
on a request id once).

The core's windows live in memory. A starting monitor rebuilds them by reading again what was
produced in the last `replay_seconds` (quality needs a window and its label maturity); records
below the group's committed offset rebuild the state only (`live=False`): their alerts were
sent and acknowledged when they were first read. Records from the committed offset on are new
to the monitor, and their alerts go out. (A group with no commit takes what is there as history.)
With `replay_seconds=0`, reading starts at the committed offsets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from google.protobuf.message import DecodeError

from fraudstream_common.deadletter import PROTOBUF_HEADERS, Output, dead_letter, produce_outputs
from fraudstream_common.kafka import consumer_config, next_offsets, producer_config, usable
from fraudstream_common.lifecycle import BlockingLoop
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.monitoring_pb2 import DriftAlert, RetrainRequest
from fraudstream_common.schemas.v1.prediction_pb2 import Prediction
from fraudstream_monitor import metrics
from fraudstream_monitor.core import MonitorCore
from fraudstream_monitor.settings import MonitorSettings

logger = logging.getLogger(__name__)

GROUP_ID = "monitor"
SERVICE = "monitor"


class MonitorConsumer(BlockingLoop):
    name = "monitor-consumer"

    def __init__(
        self,
        settings: MonitorSettings,
        core: MonitorCore,
        *,
        predictions_topic: str,
        labels_topic: str,
        alerts_topic: str,
        requests_topic: str,
        deadletter_topic: str,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._core = core
        self._predictions_topic = predictions_topic
        self._labels_topic = labels_topic
        self._alerts_topic = alerts_topic
        self._requests_topic = requests_topic
        self._deadletter_topic = deadletter_topic
        # Per partition: the end offset when it was assigned; records below it are replayed.
        self._replay_until: dict[tuple[str, int], int] = {}

    def _loop(self) -> None:
        settings = self._settings
        consumer = Consumer(consumer_config(settings, group_id=GROUP_ID, client_id=f"{settings.instance_id}-consumer"))
        producer = Producer(producer_config(settings, client_id=f"{settings.instance_id}-outputs"))
        try:
            consumer.subscribe([self._predictions_topic, self._labels_topic], on_assign=self._on_assign)
            self._ready.set()
            while not self._stopping.is_set():
                records = [m for m in consumer.consume(settings.batch_size, 0.5) if usable(m)]
                outputs = self._take(records)
                request = self._core.due_request()
                if request is not None:
                    outputs.append(self._request_output(request))
                if outputs:
                    self._deliver(producer, outputs)
                if records:
                    consumer.commit(offsets=next_offsets(records), asynchronous=False)
                metrics.REPLAYING.set(1 if self._replaying(consumer) else 0)
        finally:
            producer.flush(30)
            consumer.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Starts each partition this process has not read yet `replay_seconds` back (by record
        time), and notes where its replay ends: at the committed offset, below which every output
        was acknowledged. A partition assigned again (a rebalance) goes on from its committed
        offset: its records are in the windows already."""
        committed = {(p.topic, p.partition): p.offset for p in consumer.committed(partitions, timeout=10)}
        fresh = [p for p in partitions if (p.topic, p.partition) not in self._replay_until]
        for partition in fresh:
            offset = committed[(partition.topic, partition.partition)]
            if offset < 0:  # the group never committed here: what is there is history
                _, offset = consumer.get_watermark_offsets(partition, timeout=10)
            self._replay_until[(partition.topic, partition.partition)] = offset
        if self._settings.replay_seconds <= 0 or not fresh:
            return
        since_ms = int((time.time() - self._settings.replay_seconds) * 1000)
        found = consumer.offsets_for_times([TopicPartition(p.topic, p.partition, since_ms) for p in fresh], timeout=10)
        starts = {(p.topic, p.partition): p.offset for p in found}
        assignment = []
        for partition in partitions:
            key = (partition.topic, partition.partition)
            offset = starts.get(key, committed[key])
            if key in starts and offset < 0:  # nothing produced since then: start at the end
                offset = self._replay_until[key]
            assignment.append(TopicPartition(partition.topic, partition.partition, offset))
        consumer.assign(assignment)
        logger.info("replaying", extra={"since_ms": since_ms, "partitions": len(fresh)})

    def _replaying(self, consumer: Consumer) -> bool:
        positions = consumer.position([TopicPartition(t, p) for t, p in self._replay_until])
        return any(0 <= tp.offset < self._replay_until[(tp.topic, tp.partition)] for tp in positions)

    def _take(self, records: Sequence[Message]) -> list[Output]:
        """Decodes and observes a batch; the outputs it makes (dead letters, alerts)."""
        outputs: list[Output] = []
        predictions: list[Prediction] = []
        labels: list[Label] = []
        live = {"predictions": False, "labels": False}
        for message in records:
            topic = message.topic() or ""
            kind = "predictions" if topic == self._predictions_topic else "labels"
            try:
                if kind == "predictions":
                    predictions.append(Prediction.FromString(message.value() or b""))
                else:
                    labels.append(Label.FromString(message.value() or b""))
            except DecodeError as invalid:
                outputs.append(
                    dead_letter(self._deadletter_topic, SERVICE, message, code=f"invalid_{kind}", reason=str(invalid))
                )
                metrics.DEADLETTERS.labels(topic).inc()
                continue
            if (message.offset() or 0) >= self._replay_until.get((topic, message.partition() or 0), 0):
                live[kind] = True
        alerts: list[DriftAlert] = []
        if predictions:
            alerts += self._core.predictions(predictions, live=live["predictions"])
        if labels:
            alerts += self._core.labels(labels, live=live["labels"])
        for alert in alerts:
            logger.warning(
                "alert",
                extra={
                    "alert_id": alert.alert_id,
                    "model_version": alert.model_version,
                    "subject": alert.subject,
                    "detector": alert.detector,
                    "statistic": alert.statistic,
                    "threshold": alert.threshold,
                },
            )
            outputs.append(
                Output(self._alerts_topic, alert.model_name.encode(), alert.SerializeToString(), PROTOBUF_HEADERS)
            )
        return outputs

    def _request_output(self, request: RetrainRequest) -> Output:
        logger.warning(
            "retrain requested",
            extra={"request_id": request.request_id, "reason": request.reason, "evidence": len(request.evidence)},
        )
        return Output(self._requests_topic, request.model_name.encode(), request.SerializeToString(), PROTOBUF_HEADERS)

    def _deliver(self, producer: Producer, outputs: list[Output]) -> None:
        """Produces the outputs and waits until the broker acknowledged them all; while it does
        not, nothing is committed (and the loop does not go on)."""
        failures: list[str] = []
        produce_outputs(producer, outputs, lambda error, _m: failures.append(str(error)) if error else None)
        while producer.flush(10) > 0 or failures:
            if failures:
                raise RuntimeError(f"monitor outputs not acknowledged: {failures[0]}")
            logger.warning("waiting for the broker to acknowledge the monitor's outputs")
