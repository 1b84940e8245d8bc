"""A Kafka topic into a folder of parquet parts, each named by the offsets it holds.

Used for the offline stores: every enriched transaction (the features service) and every label
(the trainer). The sink runs on the stream runtime in its own consumer group and writes one
part per input partition and checkpoint. At-least-once, made exact by the names: a part is
written (to a temporary name, then renamed) before its offsets are committed; a part written
but never committed (a crash in between) starts at or after the committed offset, and is
deleted when the partition is assigned again, then written anew. A record that does not decode
is logged and skipped: the topic's producer already validated it, and a dead letter here would
be a second copy of its mistake.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd
from confluent_kafka import Message

from fraudstream_common.settings import ProcessingGuarantee, ServiceSettings
from fraudstream_common.stream import Checkpoint, Source, StreamRuntime

logger = logging.getLogger(__name__)


class Rows(Protocol):
    """The rows of one part, collected while records arrive."""

    def add(self, value: bytes) -> None:
        """Adds one record's row; raises ValueError (or a protobuf DecodeError) when it does not decode."""

    def __len__(self) -> int: ...

    def frame(self) -> pd.DataFrame: ...


def part_name(prefix: str, partition: int, first: int, last: int) -> str:
    return f"{prefix}-p{partition:04d}-{first:015d}-{last:015d}.parquet"


class PartStage:
    """A stage of the stream runtime with no output: its side effect is the parts."""

    changelog_topic: str | None = None

    def __init__(
        self,
        *,
        name: str,
        topic: str,
        directory: Path,
        prefix: str,
        new_rows: Callable[[], Rows],
        max_rows: int,
        max_seconds: float,
        max_messages: int,
        on_written: Callable[[int], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.input_topics = (topic,)
        self._directory = directory
        self._prefix = prefix
        self._pattern = re.compile(rf"^{re.escape(prefix)}-p(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)\.parquet$")
        self._new_rows = new_rows
        self._max_rows = max_rows
        self._max_seconds = max_seconds
        self._max_messages = max_messages
        self._on_written = on_written
        self._clock = clock
        self._parts: dict[int, _Part] = {}
        self._writing: dict[int, _Part] = {}
        self._since: float | None = None

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        """Deletes the parts of these partitions written but never committed: they start at or
        after the committed offset, and are written anew."""
        self.committed()
        self._directory.mkdir(parents=True, exist_ok=True)
        topic = self.input_topics[0]
        for path in self._directory.glob(f"{self._prefix}-p*.parquet"):
            match = self._pattern.match(path.name)
            if match is None:
                continue
            offset = committed.get((topic, int(match["partition"])))
            if offset is not None and int(match["first"]) >= max(offset, 0):
                logger.info("removing uncommitted part %s", path.name)
                path.unlink()

    def add(self, message: Message) -> None:
        partition, offset = message.partition(), message.offset()
        if partition is None or offset is None:
            return
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Part(offset, self._new_rows())
        try:
            part.rows.add(message.value() or b"")
        except Exception:
            logger.exception("undecodable record at %s[%d]@%d skipped", self.input_topics[0], partition, offset)
        part.last_offset = offset
        if self._since is None:
            self._since = self._clock()

    def at_end(self, sources: Collection[Source]) -> None:
        """Nothing waits on the end of a partition."""

    def due(self) -> bool:
        if self._since is None:
            return False
        if sum(len(part.rows) for part in self._parts.values()) >= self._max_rows:
            return True
        return self._clock() - self._since >= self._max_seconds

    def held_back(self) -> Collection[Source]:
        return ()

    def read_limit(self) -> int:
        return self._max_messages

    def resumed(self) -> None:
        """Nothing waits on time."""

    def checkpoint(self, *, final: bool) -> Checkpoint:
        self._writing = dict(self._parts)
        offsets = {(self.input_topics[0], partition): part.last_offset + 1 for partition, part in self._parts.items()}
        return Checkpoint([], offsets)

    def store(self) -> None:
        """Writes the checkpoint's parts; one written again after a failure is replaced whole."""
        for partition, part in list(self._writing.items()):
            if len(part.rows):
                self._write_part(partition, part)
                self._on_written(len(part.rows))
            del self._writing[partition]

    def committed(self) -> None:
        self._parts = {}
        self._writing = {}
        self._since = None

    def _write_part(self, partition: int, part: _Part) -> None:
        path = self._directory / part_name(self._prefix, partition, part.first_offset, part.last_offset)
        temporary = path.with_name(f".{path.name}.tmp")
        part.rows.frame().to_parquet(temporary, index=False)
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        temporary.replace(path)


def part_sink(
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
) -> StreamRuntime:
    """`topic` into parts under `directory`, on the stream runtime, at-least-once (the parts
    are written before the offsets are committed)."""
    stage = PartStage(
        name=name,
        topic=topic,
        directory=directory,
        prefix=prefix,
        new_rows=new_rows,
        max_rows=max_rows,
        max_seconds=max_seconds,
        max_messages=batch_max_messages,
        on_written=on_written,
    )
    return StreamRuntime(
        settings,
        stage,
        group_id=group_id,
        transactional_id=client_id,
        guarantee=ProcessingGuarantee.AT_LEAST_ONCE,
        max_messages=batch_max_messages,
        poll_timeout_seconds=0.1,
    )


class _Part:
    def __init__(self, first_offset: int, rows: Rows) -> None:
        self.first_offset = first_offset
        self.last_offset = first_offset
        self.rows = rows
