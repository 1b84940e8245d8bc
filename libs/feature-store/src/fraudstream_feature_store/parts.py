"""A Kafka topic into a folder of parquet parts, each named by the offsets it holds.

Used for the offline stores: every enriched transaction (the features service) and every label
(the trainer). The sink runs on the stream runtime in its own consumer group and writes one
part per input partition and checkpoint. At-least-once, made exact by the names: a part is
written (to a temporary name, then renamed) before its offsets are committed; a part written
but never committed (a crash in between) starts at or after the committed offset, and is
deleted when the partition is assigned again, then written anew. A record that does not decode
is logged and skipped: the topic's producer already validated it, and a dead letter here would
be a second copy of its mistake.

Parts are written at least every max_seconds per partition, so a folder holds thousands a day
at any rate, and Feast and the trainer read every file. The sink therefore merges a partition's
committed parts into parts of up to compact_rows rows, named by the offsets they span. The
parts merged stay until compact_grace_seconds after, so that a reader that listed them can still
read them; meanwhile a reader sees their rows twice, which the readers drop (one vector and the
latest label per transaction id). A part within another's offsets is the leftover of such a
merge, or of a crash after one, and is deleted once its grace has passed.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Message

from fraudstream_common.settings import ProcessingGuarantee, ServiceSettings
from fraudstream_common.stream import Checkpoint, Source, StreamRuntime

logger = logging.getLogger(__name__)

# Rows of a merged part's row groups: the small parts' own, a few rows each at low rates, would
# leave one file as slow to read as the many.
_ROW_GROUP_ROWS = 100_000


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
        compact_rows: int = 0,
        compact_interval_seconds: float = 600.0,
        compact_grace_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
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
        self._compact_rows = compact_rows
        self._compact_interval = compact_interval_seconds
        self._compact_grace = compact_grace_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._parts: dict[int, _Part] = {}
        self._writing: dict[int, _Part] = {}
        self._since: float | None = None
        # Per assigned partition, the offset committed: parts before it are never rewritten.
        self._committed: dict[int, int] = {}
        self._committing: dict[int, int] = {}
        self._compacted_at: float | None = None

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        """Deletes the parts of these partitions written but never committed: they start at or
        after the committed offset, and are written anew."""
        self.committed()
        self._directory.mkdir(parents=True, exist_ok=True)
        topic = self.input_topics[0]
        self._committed = {p: max(offset, 0) for (t, p), offset in committed.items() if t == topic}
        self._committing = {}
        for stored in self._stored():
            offset = self._committed.get(stored.partition)
            if offset is not None and stored.first >= offset:
                logger.info("removing uncommitted part %s", stored.path.name)
                stored.path.unlink()

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
        # Here, not in committed(), which also drops a checkpoint that was never committed.
        if not final and self._compact_rows and self._compaction_due():
            try:
                self.compact()
            except Exception:  # the parts stay as they are, and the stream goes on
                logger.exception("compacting %s failed", self._directory)
        self._writing = dict(self._parts)
        offsets = {(self.input_topics[0], partition): part.last_offset + 1 for partition, part in self._parts.items()}
        self._committing = {partition: offset for (_topic, partition), offset in offsets.items()}
        return Checkpoint([], offsets)

    def store(self) -> None:
        """Writes the checkpoint's parts; one written again after a failure is replaced whole."""
        for partition, part in list(self._writing.items()):
            if len(part.rows):
                self._write_part(partition, part)
                self._on_written(len(part.rows))
            del self._writing[partition]

    def committed(self) -> None:
        self._committed.update(self._committing)
        self._committing = {}
        self._parts = {}
        self._writing = {}
        self._since = None

    def _compaction_due(self) -> bool:
        now = self._clock()
        if self._compacted_at is not None and now - self._compacted_at < self._compact_interval:
            return False
        self._compacted_at = now
        return True

    def compact(self) -> None:
        """In each assigned partition: deletes the parts within another part's offsets whose
        grace has passed, then merges runs of committed parts into parts of up to compact_rows."""
        stored = [p for p in self._stored() if p.partition in self._committed]
        for partition, committed in self._committed.items():
            parts = sorted((p for p in stored if p.partition == partition), key=lambda p: (p.first, -p.last))
            spans: list[_Stored] = []
            for part in parts:
                if spans and part.last <= spans[-1].last:  # within the part before it
                    if self._wall_clock() - spans[-1].path.stat().st_mtime >= self._compact_grace:
                        logger.info("removing %s, merged into %s", part.path.name, spans[-1].path.name)
                        part.path.unlink()
                    continue
                spans.append(part)
            self._merge_runs([p for p in spans if p.last < committed])

    def _merge_runs(self, parts: list[_Stored]) -> None:
        run: list[_Stored] = []
        rows = 0
        for part in [*parts, None]:
            part_rows = 0 if part is None else pq.ParquetFile(part.path).metadata.num_rows
            if part is None or (run and rows + part_rows > self._compact_rows):
                if len(run) > 1:
                    self._merge(run)
                run, rows = [], 0
            if part is not None:
                run.append(part)
                rows += part_rows

    def _merge(self, run: list[_Stored]) -> None:
        path = self._directory / part_name(self._prefix, run[0].partition, run[0].first, run[-1].last)
        temporary = path.with_name(f".{path.name}.tmp")
        schema = pq.read_schema(run[0].path)
        with pq.ParquetWriter(temporary, schema) as writer:
            group: list[pa.Table] = []
            group_rows = 0
            for part in run:
                table = pq.read_table(part.path)
                if not table.schema.equals(schema):
                    logger.warning("not merging %s: its schema differs from %s's", part.path.name, run[0].path.name)
                    writer.close()
                    temporary.unlink(missing_ok=True)
                    return
                group.append(table)
                group_rows += len(table)
                if group_rows >= _ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(group))
                    group, group_rows = [], 0
            if group:
                writer.write_table(pa.concat_tables(group))
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        temporary.replace(path)
        logger.info("merged %d parts into %s", len(run), path.name)

    def _stored(self) -> list[_Stored]:
        stored = []
        for path in self._directory.glob(f"{self._prefix}-p*.parquet"):
            match = self._pattern.match(path.name)
            if match is not None:
                stored.append(_Stored(path, int(match["partition"]), int(match["first"]), int(match["last"])))
        return stored

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
    compact_rows: int,
    batch_max_messages: int = 5000,
    on_written: Callable[[int], None] = lambda _rows: None,
) -> StreamRuntime:
    """`topic` into parts under `directory`, on the stream runtime, at-least-once (the parts
    are written before the offsets are committed), merged into parts of up to `compact_rows`
    (0: never)."""
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
        compact_rows=compact_rows,
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


@dataclass(frozen=True)
class _Stored:
    path: Path
    partition: int
    first: int
    last: int


class _Part:
    def __init__(self, first_offset: int, rows: Rows) -> None:
        self.first_offset = first_offset
        self.last_offset = first_offset
        self.rows = rows
