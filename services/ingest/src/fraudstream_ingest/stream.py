"""The ingest stage: batches of `transactions.raw`, validated and deduplicated by the core, to
`transactions` and `deadletter`, on the stream runtime (fraudstream_common.stream), which owns
the commit order and the delivery guarantee (`processing_guarantee`).

Stateless: nothing to restore. The dedupe records live in Redis, written by the core as it
transforms a batch; each holds its message's position, so a batch replayed after a crash is
not taken for duplicates of itself. While Redis cannot decide, the checkpoint raises, nothing
is produced, and the runtime pauses the input and tries again: no message is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

from confluent_kafka import Message

from fraudstream_common.stream import Batch, Checkpoint, Source, StreamRuntime
from fraudstream_ingest import metrics
from fraudstream_ingest.core import IngestCore
from fraudstream_ingest.settings import IngestSettings

GROUP_ID = "ingest"


class IngestStage:
    name = "ingest"
    changelog_topic: str | None = None

    def __init__(self, settings: IngestSettings, core: IngestCore) -> None:
        self._core = core
        self.input_topics = (core.raw_topic,)
        self._batch = Batch(settings.batch_max_messages)

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        self._batch.clear()

    def add(self, message: Message) -> None:
        self._batch.add(message)

    def at_end(self, sources: Collection[Source]) -> None:
        """Nothing waits on the end of a partition."""

    def due(self) -> bool:
        return self._batch.due()

    def held_back(self) -> Collection[Source]:
        return ()

    def read_limit(self) -> int:
        return self._batch.room()

    def resumed(self) -> None:
        """Nothing waits on time."""

    def checkpoint(self, *, final: bool) -> Checkpoint:
        messages = self._batch.messages
        if not messages:
            return Checkpoint()
        started = time.perf_counter()
        result = self._core.transform(messages)  # a RedisError: the runtime pauses and retries
        metrics.MESSAGES.labels("valid").inc(result.valid)
        metrics.MESSAGES.labels("duplicate").inc(result.duplicates)
        metrics.MESSAGES.labels("rejected").inc(result.rejected)
        metrics.BATCH_SIZE.observe(len(messages))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return Checkpoint(result.outputs, self._batch.offsets())

    def store(self) -> None:
        """The core's only store is Redis, which `checkpoint` uses."""

    def committed(self) -> None:
        self._batch.clear()


def ingest_stream(settings: IngestSettings, core: IngestCore) -> StreamRuntime:
    return StreamRuntime(
        settings,
        IngestStage(settings, core),
        group_id=GROUP_ID,
        transactional_id=f"ingest-{settings.instance_id}",
        guarantee=settings.processing_guarantee,
        max_messages=settings.batch_max_messages,
        poll_timeout_seconds=settings.batch_max_wait_seconds,
        store_retry_max_seconds=settings.redis_retry_max_seconds,
        overlap_commits=True,
    )
