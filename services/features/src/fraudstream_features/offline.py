"""Every enriched transaction into Feast's offline store, for training sets.

The writer has its own consumer group on `transactions.enriched` and writes parquet parts of
the `transaction_features` source (fraudstream_feature_store.repository): one part per input
partition and flush, named by the offsets it holds. At-least-once, made exact by the names:
a part is written (to a temporary name, then renamed) before its offsets are committed; a
part written but never committed (a crash in between) starts at or after the committed
offset, and is deleted when the partition is assigned again, then written anew.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from google.protobuf.message import DecodeError

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.kafka import consumer_config
from fraudstream_common.lifecycle import BlockingLoop
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction
from fraudstream_common.timestamps import seconds_of
from fraudstream_feature_store.repository import (
    TRANSACTION_ID_COLUMNS,
    transaction_features_dir,
    transaction_features_frame,
)
from fraudstream_features import metrics
from fraudstream_features.settings import FeaturesSettings

logger = logging.getLogger(__name__)

GROUP_ID = "features-offline"
_FEATURE_NAMES = list(FEATURE_NAMES)  # a repeated field compares equal to a list, not a tuple
_PART = re.compile(r"^enriched-p(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)\.parquet$")


def part_name(partition: int, first: int, last: int) -> str:
    return f"enriched-p{partition:04d}-{first:015d}-{last:015d}.parquet"


class OfflineWriter(BlockingLoop):
    name = "offline-writer"

    def __init__(self, settings: FeaturesSettings, enriched_topic: str) -> None:
        super().__init__()
        self._settings = settings
        self._topic = enriched_topic
        self._directory = transaction_features_dir(settings.feature_offline_dir)
        self._parts: dict[int, _Part] = {}
        self._since: float | None = None

    def _loop(self) -> None:
        consumer = Consumer(
            consumer_config(self._settings, group_id=GROUP_ID, client_id=f"{self._settings.instance_id}-offline")
        )
        self._directory.mkdir(parents=True, exist_ok=True)
        try:
            consumer.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not self._stopping.is_set():
                self._take(consumer.consume(self._settings.batch_max_messages, timeout=0.5))
                if self._flush_due():
                    self._flush(consumer)
            if self._parts:
                self._flush(consumer)
        finally:
            consumer.close()

    def _take(self, messages: Sequence[Message]) -> None:
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("consumer error: %s", error)
                continue
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None:
                continue
            try:
                enriched = EnrichedTransaction.FromString(message.value() or b"")
            except DecodeError:
                logger.error("undecodable message at %s[%d]@%d skipped", self._topic, partition, offset)
                continue
            part = self._parts.get(partition)
            if part is None:
                part = self._parts[partition] = _Part(offset)
            part.add(offset, enriched)
            if self._since is None:
                self._since = time.monotonic()

    def _flush_due(self) -> bool:
        if self._since is None:
            return False
        if sum(len(part) for part in self._parts.values()) >= self._settings.offline_part_max_rows:
            return True
        return time.monotonic() - self._since >= self._settings.offline_part_max_seconds

    def _flush(self, consumer: Consumer) -> None:
        offsets = []
        for partition, part in self._parts.items():
            if not len(part):
                continue
            self._write_part(partition, part)
            offsets.append(TopicPartition(self._topic, partition, part.last_offset + 1))
            metrics.OFFLINE_ROWS.inc(len(part))
        if offsets:
            consumer.commit(offsets=offsets, asynchronous=False)
        self._parts = {}
        self._since = None

    def _write_part(self, partition: int, part: _Part) -> None:
        frame = transaction_features_frame(
            pd.DataFrame(part.ids, columns=list(TRANSACTION_ID_COLUMNS)),
            part.event_seconds,
            np.asarray(part.values, dtype="float64").reshape(len(part), len(FEATURE_NAMES)),
        )
        path = self._directory / part_name(partition, part.first_offset, part.last_offset)
        temporary = path.with_name(f".{path.name}.tmp")
        frame.to_parquet(temporary, index=False)
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        temporary.replace(path)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
        for path in self._directory.glob("enriched-p*.parquet"):
            match = _PART.match(path.name)
            if match is None:
                continue
            partition = int(match["partition"])
            if partition in committed and int(match["first"]) >= max(committed[partition], 0):
                logger.info("removing uncommitted offline part %s", path.name)
                path.unlink()

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self._parts = {}
        self._since = None


class _Part:
    """The rows of one part, kept as flat columns while they arrive, so that writing the part
    does not stall the stream thread (they share the interpreter)."""

    def __init__(self, first_offset: int) -> None:
        self.first_offset = first_offset
        self.last_offset = first_offset
        self.ids: list[tuple[str, str, str]] = []
        self.event_seconds: list[float] = []
        self.values: list[float] = []

    def add(self, offset: int, enriched: EnrichedTransaction) -> None:
        self.last_offset = offset
        tx = enriched.transaction
        self.ids.append((tx.transaction_id, tx.customer_id, tx.terminal_id))
        self.event_seconds.append(seconds_of(tx.event_time))
        if enriched.feature_names == _FEATURE_NAMES:
            self.values.extend(enriched.feature_values)
        else:  # written by another version: place by name
            by_name = dict(zip(enriched.feature_names, enriched.feature_values, strict=True))
            self.values.extend(by_name.get(name, float("nan")) for name in FEATURE_NAMES)

    def __len__(self) -> int:
        return len(self.ids)
