"""A Kafka topic into a folder of parquet parts, each named by the offsets it holds.

Used for the offline stores: every enriched transaction (the features service) and every label
(the trainer). The sink has its own consumer group and writes one part per input partition and
flush. At-least-once, made exact by the names: a part is written (to a temporary name, then
renamed) before its offsets are committed; a part written but never committed (a crash in
between) starts at or after the committed offset, and is deleted when the partition is assigned
again, then written anew. A record that does not decode is logged and skipped: the topic's
producer already validated it, and a dead letter here would be a second copy of its mistake.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd
from confluent_kafka import Consumer, Message, TopicPartition

from fraudstream_common.kafka import consumer_config, usable
from fraudstream_common.lifecycle import BlockingLoop
from fraudstream_common.settings import ServiceSettings

logger = logging.getLogger(__name__)


class Rows(Protocol):
    """The rows of one part, collected while records arrive."""

    def add(self, value: bytes) -> None:
        """Adds one record's row; raises ValueError (or a protobuf DecodeError) when it does not decode."""

    def __len__(self) -> int: ...

    def frame(self) -> pd.DataFrame: ...


def part_name(prefix: str, partition: int, first: int, last: int) -> str:
    return f"{prefix}-p{partition:04d}-{first:015d}-{last:015d}.parquet"


class PartSink(BlockingLoop):
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        name: str,
        topic: str,
        group_id: str,
        client_id: str,
        directory: Path,
        prefix: str,
        new_rows: Callable[[], Rows],
        max_rows: int,
        max_seconds: float,
        batch_max_messages: int = 5000,
        on_written: Callable[[int], None] = lambda _rows: None,
    ) -> None:
        super().__init__()
        self.name = name
        self._settings = settings
        self._topic = topic
        self._group_id = group_id
        self._client_id = client_id
        self._directory = directory
        self._prefix = prefix
        self._pattern = re.compile(rf"^{re.escape(prefix)}-p(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)\.parquet$")
        self._new_rows = new_rows
        self._max_rows = max_rows
        self._max_seconds = max_seconds
        self._batch_max_messages = batch_max_messages
        self._on_written = on_written
        self._parts: dict[int, _Part] = {}
        self._since: float | None = None

    def _loop(self) -> None:
        consumer = Consumer(consumer_config(self._settings, group_id=self._group_id, client_id=self._client_id))
        self._directory.mkdir(parents=True, exist_ok=True)
        try:
            consumer.subscribe([self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            self._ready.set()
            while not self._stopping.is_set():
                self._take(consumer.consume(self._batch_max_messages, timeout=0.5))
                if self._flush_due():
                    self._flush(consumer)
            if self._parts:
                self._flush(consumer)
        finally:
            consumer.close()

    def _take(self, messages: Sequence[Message]) -> None:
        for message in messages:
            if not usable(message):
                continue
            partition, offset = message.partition(), message.offset()
            if partition is None or offset is None:
                continue
            part = self._parts.get(partition)
            if part is None:
                part = self._parts[partition] = _Part(offset, self._new_rows())
            try:
                part.rows.add(message.value() or b"")
            except Exception:
                logger.exception("undecodable record at %s[%d]@%d skipped", self._topic, partition, offset)
            part.last_offset = offset
            if self._since is None:
                self._since = time.monotonic()

    def _flush_due(self) -> bool:
        if self._since is None:
            return False
        if sum(len(part.rows) for part in self._parts.values()) >= self._max_rows:
            return True
        return time.monotonic() - self._since >= self._max_seconds

    def _flush(self, consumer: Consumer) -> None:
        offsets = []
        for partition, part in self._parts.items():
            if len(part.rows):
                self._write_part(partition, part)
                self._on_written(len(part.rows))
            offsets.append(TopicPartition(self._topic, partition, part.last_offset + 1))
        if offsets:
            consumer.commit(offsets=offsets, asynchronous=False)
        self._parts = {}
        self._since = None

    def _write_part(self, partition: int, part: _Part) -> None:
        path = self._directory / part_name(self._prefix, partition, part.first_offset, part.last_offset)
        temporary = path.with_name(f".{path.name}.tmp")
        part.rows.frame().to_parquet(temporary, index=False)
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        temporary.replace(path)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=30)}
        for path in self._directory.glob(f"{self._prefix}-p*.parquet"):
            match = self._pattern.match(path.name)
            if match is None:
                continue
            partition = int(match["partition"])
            if partition in committed and int(match["first"]) >= max(committed[partition], 0):
                logger.info("removing uncommitted part %s", path.name)
                path.unlink()

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self._parts = {}
        self._since = None


class _Part:
    def __init__(self, first_offset: int, rows: Rows) -> None:
        self.first_offset = first_offset
        self.last_offset = first_offset
        self.rows = rows
