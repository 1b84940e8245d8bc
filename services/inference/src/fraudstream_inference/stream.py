"""Stream scoring: every record of `transactions.enriched` (each transaction with the vector
the features service computed for it) scored by the core, its prediction to `predictions`.

At-least-once, in this order: consume a batch, score it, produce its predictions, wait until
the broker acknowledged all of them, then commit the batch's offsets. A crash in between
replays the batch: the decision cache answers each replayed transaction as it was first
decided, and its prediction is logged again under the same key (consumers keep one per
transaction id). An undecodable record goes to `deadletter` with its reason.
"""

from __future__ import annotations

import asyncio
import logging

from confluent_kafka import Consumer, Message, Producer
from google.protobuf.message import DecodeError

from fraudstream_common.deadletter import dead_letter, produce_outputs
from fraudstream_common.kafka import consumer_config, next_offsets, producer_config, usable
from fraudstream_common.lifecycle import BlockingLoop
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction
from fraudstream_inference import metrics
from fraudstream_inference.core import InferenceCore
from fraudstream_inference.predictions import PredictionLog
from fraudstream_inference.settings import InferenceSettings

logger = logging.getLogger(__name__)

GROUP_ID = "inference"
SERVICE = "inference"


class StreamScorer(BlockingLoop):
    name = "stream-scorer"

    def __init__(
        self,
        settings: InferenceSettings,
        core: InferenceCore,
        loop: asyncio.AbstractEventLoop,
        *,
        enriched_topic: str,
        predictions_topic: str,
        deadletter_topic: str,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._core = core
        self._event_loop = loop
        self._enriched_topic = enriched_topic
        self._deadletter_topic = deadletter_topic
        self._log = PredictionLog(settings, predictions_topic, client_id=f"{settings.instance_id}-stream")

    def _loop(self) -> None:
        settings = self._settings
        consumer = Consumer(consumer_config(settings, group_id=GROUP_ID, client_id=f"{settings.instance_id}-stream"))
        deadletters = Producer(producer_config(settings, client_id=f"{settings.instance_id}-deadletter"))
        try:
            while not self._core.ready and not self._stopping.wait(0.2):
                pass  # nothing to score with yet: leave the records where they are
            consumer.subscribe([self._enriched_topic])
            self._ready.set()
            while not self._stopping.is_set():
                batch = consumer.consume(settings.batch_max_messages, timeout=settings.batch_max_wait_seconds)
                messages = [m for m in batch if usable(m)]
                if messages and self._score(messages, deadletters):
                    consumer.commit(offsets=next_offsets(messages), asynchronous=False)
        finally:
            self._log.flush(30)
            deadletters.flush(30)
            consumer.close()

    def _score(self, messages: list[Message], deadletters: Producer) -> bool:
        """Scores a batch; True when all its outputs were acknowledged (its offsets may go)."""
        records = []
        letters = []
        for message in messages:
            try:
                record = EnrichedTransaction.FromString(message.value() or b"")
                if not record.transaction.transaction_id or len(record.feature_values) != len(record.feature_names):
                    raise ValueError("no transaction id, or feature names and values of different lengths")
            except (DecodeError, ValueError) as invalid:
                letters.append(
                    dead_letter(self._deadletter_topic, SERVICE, message, code="invalid_enriched", reason=str(invalid))
                )
                continue
            records.append(record)
        if records:
            future = asyncio.run_coroutine_threadsafe(self._core.score_enriched(records, self._log), self._event_loop)
            future.result(timeout=60)
        metrics.REQUESTS.labels("stream", "ok").inc(len(records))
        produce_outputs(deadletters, letters)
        if not self._log.flush(30) or deadletters.flush(30):
            # Committing now would skip what was not acknowledged: stop, and replay from the
            # last commit on the next start.
            raise RuntimeError("predictions or dead letters not acknowledged; the batch will be replayed")
        return True
