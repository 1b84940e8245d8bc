"""One event-time order out of many Kafka partitions.

The features service reads every partition of `transactions` and `labels`. Each partition is
in event-time order (ingest keeps a customer's transactions in order; labels are produced as
they become known), but the partitions are not in step with one another. To apply events in
the order the feature semantics assume (fraudstream_common.features.history.in_event_order),
the merger keeps a queue per partition and releases the earliest head only while every
partition either has an event waiting (so nothing earlier can still come from it) or has been
idle at its end for `idle_seconds`. Events are released in partition order, so what has been
processed is a prefix of every partition: its committable offset is exact.

An event earlier than one already released (out of order within its partition, or arriving
after its partition went idle) is released late, flagged, and applied where it falls in time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Source = tuple[str, int]  # (topic, partition)

# Sort rank at equal event times: a label known at t is usable by a transaction at t.
RANK_LABEL = 0
RANK_TRANSACTION = 1
# Undecodable input sorts first: it changes no state and goes straight to the dead-letter topic.
RANK_INVALID = -1


@dataclass(frozen=True)
class Pending(Generic[Item]):
    event_time: float
    rank: int
    offset: int
    item: Item


@dataclass
class _Partition(Generic[Item]):
    queue: deque[Pending[Item]] = field(default_factory=deque)
    next_offset: int | None = None  # after the last released event
    at_end_since: float | None = None


@dataclass(frozen=True)
class Released(Generic[Item]):
    source: Source
    offset: int
    item: Item
    late: bool


class EventTimeMerger(Generic[Item]):
    def __init__(self, idle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._partitions: dict[Source, _Partition[Item]] = {}
        self._buffered = 0
        self.watermark = float("-inf")  # latest event time released

    def assign(self, sources: Iterable[Source]) -> None:
        """Starts over with these partitions (after a rebalance or a recovery)."""
        self._partitions = {source: _Partition() for source in sorted(sources)}
        self._buffered = 0

    def add(self, source: Source, offset: int, event_time: float, rank: int, item: Item) -> None:
        partition = self._partitions[source]
        partition.queue.append(Pending(event_time, rank, offset, item))
        partition.at_end_since = None
        self._buffered += 1

    def reached_end(self, source: Source) -> None:
        """The consumer has read everything the partition holds for now."""
        partition = self._partitions.get(source)
        if partition is not None and partition.at_end_since is None:
            partition.at_end_since = self._clock()

    def release(self) -> Iterator[Released[Item]]:
        """Every event that can be released now, in event-time order."""
        now = self._clock()
        partitions = list(self._partitions.items())
        while True:
            best: tuple[Source, _Partition[Item]] | None = None
            for source, partition in partitions:
                if partition.queue:
                    if best is None or _order(partition.queue[0]) < _order(best[1].queue[0]):
                        best = (source, partition)
                elif partition.at_end_since is None or now - partition.at_end_since < self._idle_seconds:
                    return  # it may still deliver something earlier
            if best is None:
                return
            source, partition = best
            event = partition.queue.popleft()
            self._buffered -= 1
            partition.next_offset = event.offset + 1
            late = event.rank != RANK_INVALID and event.event_time < self.watermark
            if event.rank != RANK_INVALID:
                self.watermark = max(self.watermark, event.event_time)
            yield Released(source, event.offset, event.item, late)

    def committable(self) -> dict[Source, int]:
        """For each partition, the offset up to which everything has been released."""
        offsets: dict[Source, int] = {}
        for source, partition in self._partitions.items():
            if partition.queue:
                offsets[source] = partition.queue[0].offset
            elif partition.next_offset is not None:
                offsets[source] = partition.next_offset
        return offsets

    def ahead(self) -> list[Source]:
        """Partitions with events waiting: pausing them lets the ones holding time back catch up."""
        return [source for source, partition in self._partitions.items() if partition.queue]

    def __len__(self) -> int:
        return self._buffered


def _order(event: Pending[Item]) -> tuple[float, int]:
    if event.rank == RANK_INVALID:
        return (float("-inf"), RANK_INVALID)
    return (event.event_time, event.rank)
