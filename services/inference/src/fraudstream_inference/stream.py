"""Stream scoring: every record of `transactions.enriched` (each transaction with the vector
the features service computed for it) scored by the core, its prediction to `predictions`, on
the stream runtime (fraudstream_common.stream) with the guarantee `processing_guarantee`.
Exactly-once (the default): a batch's predictions and its offsets commit in one transaction,
so each transaction has one prediction per model version that scored it. A batch replayed after
a fault is answered from the decision cache as it was first decided; at-least-once, its
predictions may then be logged twice under the same keys. An undecodable record goes to
`deadletter` with its reason. Until a model is loaded the input is paused: the records wait in
Kafka, not in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence

from confluent_kafka import Message
from google.protobuf.message import DecodeError

from fraudstream_common.deadletter import PROTOBUF_HEADERS, Output, dead_letter, missing_fields
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction
from fraudstream_common.stream import Batch, Checkpoint, Source, StreamRuntime
from fraudstream_common.topics import Topic, topic_name
from fraudstream_inference import metrics
from fraudstream_inference.core import InferenceCore
from fraudstream_inference.settings import InferenceSettings

GROUP_ID = "inference"
SERVICE = "inference"
# A prediction names these; a record without them goes to the dead-letter topic.
REQUIRED_TRANSACTION = ("transaction_id", "customer_id", "terminal_id", "event_time")


class _Predictions:
    """The predictions the core logs while it scores one batch, as outputs of its checkpoint."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self.outputs: list[Output] = []

    def log(self, transaction_id: str, record: bytes) -> None:
        self.outputs.append(Output(self._topic, transaction_id.encode(), record, PROTOBUF_HEADERS))


class ScoringStage:
    name = "scoring"
    changelog_topic: str | None = None

    def __init__(
        self,
        settings: InferenceSettings,
        core: InferenceCore,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        prefix = settings.topic_prefix
        self._core = core
        self._event_loop = loop
        self.input_topics = (topic_name(Topic.TRANSACTIONS_ENRICHED, prefix),)
        self._predictions_topic = topic_name(Topic.PREDICTIONS, prefix)
        self._deadletter_topic = topic_name(Topic.DEADLETTER, prefix)
        self._assignment: list[Source] = []
        self._batch = Batch(settings.batch_max_messages)

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        self._assignment = list(assignment)
        self._batch.clear()

    def add(self, message: Message) -> None:
        self._batch.add(message)

    def at_end(self, sources: Collection[Source]) -> None:
        """Nothing waits on the end of a partition."""

    def due(self) -> bool:
        return self._core.ready and self._batch.due()

    def held_back(self) -> Collection[Source]:
        return () if self._core.ready else self._assignment

    def read_limit(self) -> int:
        return self._batch.room()

    def resumed(self) -> None:
        """Nothing waits on time."""

    def checkpoint(self, *, final: bool) -> Checkpoint:
        if not self._batch.messages or not self._core.ready:
            return Checkpoint()  # what was read is read again by the next owner
        records = []
        outputs: list[Output] = []
        for message in self._batch.messages:
            try:
                record = EnrichedTransaction.FromString(message.value() or b"")
                if missing := missing_fields(record.transaction, REQUIRED_TRANSACTION):
                    raise ValueError(f"missing transaction.{', transaction.'.join(missing)}")
                if len(record.feature_values) != len(record.feature_names):
                    raise ValueError("feature names and values of different lengths")
            except (DecodeError, ValueError) as invalid:
                outputs.append(
                    dead_letter(self._deadletter_topic, SERVICE, message, code="invalid_enriched", reason=str(invalid))
                )
                continue
            records.append(record)
        if records:
            predictions = _Predictions(self._predictions_topic)
            scoring = asyncio.run_coroutine_threadsafe(
                self._core.score_enriched(records, predictions), self._event_loop
            )
            scoring.result(timeout=60)
            outputs += predictions.outputs
        metrics.REQUESTS.labels("stream", "ok").inc(len(records))
        return Checkpoint(outputs, self._batch.offsets())

    def store(self) -> None:
        """The decision cache is written while scoring, in `checkpoint`."""

    def committed(self) -> None:
        self._batch.clear()


def scoring_stream(settings: InferenceSettings, core: InferenceCore, loop: asyncio.AbstractEventLoop) -> StreamRuntime:
    return StreamRuntime(
        settings,
        ScoringStage(settings, core, loop),
        group_id=GROUP_ID,
        transactional_id=f"inference-{settings.instance_id}",
        guarantee=settings.processing_guarantee,
        max_messages=settings.batch_max_messages,
        poll_timeout_seconds=settings.batch_max_wait_seconds,
        overlap_commits=True,
    )
