"""One event-time order out of many Kafka partitions, with bounded waiting.

The customer stage reads its partitions of `transactions` and `labels`. Each partition is
mostly in event-time order, but the partitions are not in step with one another. To apply
events in the order the feature semantics assume (fraudstream_common.features.history), the
merger keeps a queue per partition and releases the earliest head while every partition is
settled: it holds two events or more (so its head is not ahead of what follows it), or it
has been idle at its end for `idle_seconds` (a topic may have its own, `topic_idle_seconds`:
the labels' partitions, whose events come one at a time straight from their producers, are
idle once read to their end), or, with a live head, it is read to its end while every other
partition is idle (nothing of theirs is on its way). A head read `idle_seconds` ago or more also goes
while the partitions that are not settled are read to their end: what they deliver next is
written after that grace, as an idle partition's is. Light traffic over many partitions would
otherwise wait for a moment in which none of them has just delivered.

An idle partition holds no time back, but for a moment after a replay resumes: when every
partition was idle and one delivers history again (a producer resumed, or the consumer came
back from a long checkpoint to a queue of new records), the idle partitions hold the order for
`hold_seconds`, each to its latest event plus the wall time since that was read: the
producer's writes to them may be a moment behind, and the partition read first would
otherwise carry the order days past them. Live events (within REPLAYED_AFTER_SECONDS of the
wall clock) hold nothing: they tell their own time, and a quiet live partition stands near
the clock. A partition that has been idle since it was assigned holds nothing back. When every
partition is idle, nothing is left to read anywhere: the order is complete for now, and what
is queued goes in order (the end of a replay).

Waiting is bounded; the policy (also in fraudstream_common.features.definitions):
- An event ahead of the events queued behind it in its own partition (a live transaction in a
  replay, a producer whose clock runs ahead) cannot be put in order by waiting: it is released
  at once, flagged early, and moves neither the watermark nor where its partition stands.
- A partition whose head has waited for the others for `max_wait_seconds` (they hold older
  events: a replay, a backfill, a lagging partition, a replay paused) releases what it has
  queued, flagged early, and waits again with what comes next. So no event waits longer than
  that for another partition.
- An event behind the watermark (the latest event released in order; labels first at equal
  times) is released late.
Events are released in partition order, so what has been processed is a prefix of every
partition: its committable offset is exact.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

Item = TypeVar("Item")
Source = tuple[str, int]  # (topic, partition)

# Sort rank at equal event times: a label known at t is usable by a transaction at t.
RANK_LABEL = 0
RANK_TRANSACTION = 1
# Undecodable input sorts first: it changes no state and goes straight to the dead-letter topic.
RANK_INVALID = -1
# An event this far behind the wall clock is history being replayed; a live one tells its own time.
REPLAYED_AFTER_SECONDS = 300.0


def replayed(event_time: float, wall_now: float) -> bool:
    """Whether an event is history being replayed rather than live."""
    return event_time < wall_now - REPLAYED_AFTER_SECONDS


class Timing(Enum):
    """How a released event stands to the watermark."""

    IN_ORDER = "in_order"  # released in event-time order: its vector is the backfill's
    EARLY = "early"  # released before the other partitions reached its time
    LATE = "late"  # released after the watermark had passed its time


@dataclass(frozen=True)
class Pending(Generic[Item]):
    event_time: float
    rank: int
    offset: int
    item: Item
    added_at: float  # by the merger's clock


@dataclass
class _Partition(Generic[Item]):
    queue: deque[Pending[Item]] = field(default_factory=deque)
    # The queue's valid events whose time is below every later one: minima[0] is the queue's earliest.
    minima: deque[Pending[Item]] = field(default_factory=deque)
    idle_seconds: float = 0.0  # at its end this long, it is idle
    next_offset: int | None = None  # after the last released event
    # The latest event time released, but for events ahead of their partition, and when it was read.
    latest: float | None = None
    latest_read_at: float = 0.0
    at_end_since: float | None = None
    waiting_since: float | None = None  # when its head started waiting for other partitions

    def push(self, event: Pending[Item]) -> None:
        self.queue.append(event)
        if event.rank != RANK_INVALID:
            while self.minima and self.minima[-1].event_time > event.event_time:
                self.minima.pop()
            self.minima.append(event)

    def pop(self) -> Pending[Item]:
        event = self.queue.popleft()
        if self.minima and self.minima[0] is event:
            self.minima.popleft()
        self.next_offset = event.offset + 1
        if not self.queue:
            self.waiting_since = None
        return event

    def head_is_ahead(self) -> bool:
        """Whether an event queued behind the head is earlier than it."""
        head = self.queue[0]
        return head.rank != RANK_INVALID and head.event_time > self.minima[0].event_time


@dataclass(frozen=True)
class Released(Generic[Item]):
    source: Source
    offset: int
    item: Item
    timing: Timing
    waited: float  # seconds between its add and its release

    @property
    def late(self) -> bool:
        return self.timing is Timing.LATE

    @property
    def early(self) -> bool:
        return self.timing is Timing.EARLY


class EventTimeMerger(Generic[Item]):
    def __init__(
        self,
        idle_seconds: float,
        max_wait_seconds: float = float("inf"),
        clock: Callable[[], float] = time.monotonic,
        hold_seconds: float = float("inf"),
        wall_clock: Callable[[], float] = time.time,
        topic_idle_seconds: Mapping[str, float] | None = None,
    ) -> None:
        """`topic_idle_seconds`: the idle time of these topics' partitions, where it is not
        `idle_seconds`."""
        self._idle_seconds = idle_seconds
        self._topic_idle_seconds = dict(topic_idle_seconds or {})
        self._max_wait_seconds = max_wait_seconds
        self._hold_seconds = hold_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._partitions: dict[Source, _Partition[Item]] = {}
        self._buffered = 0
        self._resumed_at = float("-inf")  # when a partition delivered after every one was idle
        self.watermark = float("-inf")  # latest event time released in order
        self._watermark_rank = RANK_LABEL  # the rank of the event released there

    def assign(self, sources: Iterable[Source]) -> None:
        """Starts over with these partitions (after a rebalance or a recovery)."""
        self._partitions = {
            source: _Partition(idle_seconds=self._topic_idle_seconds.get(source[0], self._idle_seconds))
            for source in sorted(sources)
        }
        self._buffered = 0
        # Where the partitions it had stood says nothing of those it is given: an event of theirs
        # earlier than it is not late, and a watermark sent for them must not claim it.
        self.watermark = float("-inf")
        self._watermark_rank = RANK_LABEL

    def add(self, source: Source, offset: int, event_time: float, rank: int, item: Item) -> None:
        partition = self._partitions[source]
        now = self._clock()
        if (
            self._idle(partition, now)
            and rank != RANK_INVALID
            and replayed(event_time, self._wall_clock())
            and self._everything_idle(now)
        ):
            self._resumed_at = now
        partition.push(Pending(event_time, rank, offset, item, now))
        partition.at_end_since = None
        self._buffered += 1

    def restart_waits(self) -> None:
        """The reader was held back (the online store was down): no partition is to blame for
        the time that passed, so waiting counts from now."""
        for partition in self._partitions.values():
            partition.waiting_since = None

    def at_end(self, sources: Collection[Source]) -> None:
        """The partitions the consumer has read to their end, as it stands now: the others are
        not at theirs (records past it are fetched or on the broker, or it is paused)."""
        now = self._clock()
        for source, partition in self._partitions.items():
            if source not in sources:
                partition.at_end_since = None
            elif partition.at_end_since is None:
                partition.at_end_since = now

    def release(self) -> Iterator[Released[Item]]:
        """Every event that can be released now: in event-time order where waiting is bounded,
        early where it is not (see the module's policy)."""
        now = self._clock()
        partitions = list(self._partitions.items())
        busy = {source for source, partition in partitions if not self._idle(partition, now)}
        everything_idle = not busy
        while True:
            best: tuple[Source, _Partition[Item]] | None = None
            complete = True  # no partition may still deliver something earlier
            quiet = True  # and those that may are read to their end: nothing of theirs is on its way
            bound = (float("inf"), RANK_LABEL)  # what the quiet partitions may still deliver
            for source, partition in partitions:
                while partition.queue and (partition.queue[0].rank == RANK_INVALID or partition.head_is_ahead()):
                    yield self._pop(source, partition, now, in_order=False, ahead=True)
                if not self._settled(partition, now, others_idle=busy <= {source}):
                    complete = False
                    quiet = quiet and partition.at_end_since is not None
                if not partition.queue:
                    quiet_until = None if everything_idle else self._quiet_until(partition, now)
                    if quiet_until is not None:
                        bound = min(bound, (quiet_until, RANK_LABEL))
                    continue
                if best is None or _turn(partition) < _turn(best[1]):
                    best = (source, partition)
            if (
                best is not None
                and (complete or (quiet and now - best[1].queue[0].added_at >= self._idle_seconds))
                and _order(best[1].queue[0]) <= bound
            ):
                yield self._pop(*best, now, in_order=True)
                continue
            drained = False
            for source, partition in partitions:
                if not partition.queue or not self._settled(partition, now, others_idle=busy <= {source}):
                    partition.waiting_since = None  # it is what the others wait for
                    continue
                if partition.waiting_since is None:
                    partition.waiting_since = now
                elif now - partition.waiting_since >= self._max_wait_seconds:
                    while partition.queue:
                        yield self._pop(source, partition, now, in_order=False)
                    drained = True
            if not drained:
                return

    def _settled(self, partition: _Partition[Item], now: float, *, others_idle: bool) -> bool:
        """Whether the partition can deliver nothing earlier than its head: it holds two events
        (a head ahead of what follows it has been released early), or it has been idle at its
        end for its idle time. A lone head may be ahead of what the partition delivers next; a
        live one need not wait out that time where it is read to its end and every other
        partition is idle: nothing of theirs is on its way to go before it, and a live event
        tells its own time. In a replay the wait stays (replicas share its partitions, and a
        partition's next event may be earlier)."""
        if len(partition.queue) >= 2 or self._idle(partition, now):
            return True
        return (
            others_idle
            and partition.at_end_since is not None
            and bool(partition.queue)
            and not replayed(partition.queue[0].event_time, self._wall_clock())
        )

    def _idle(self, partition: _Partition[Item], now: float) -> bool:
        return partition.at_end_since is not None and now - partition.at_end_since >= partition.idle_seconds

    def _everything_idle(self, now: float) -> bool:
        """Nothing is left to read anywhere: the order is complete for now."""
        return all(self._idle(partition, now) for partition in self._partitions.values())

    def _quiet_until(self, partition: _Partition[Item], now: float) -> float | None:
        """For an idle partition with nothing queued, in the `hold_seconds` after the stream
        resumed, the earliest event time it may still deliver: its latest plus the time since
        that was read (its producer's events fall no further behind the clock). None where it
        holds nothing back: past that, or it has released nothing since it was assigned (nothing
        says where it stands), or it is not idle."""
        if now - self._resumed_at >= self._hold_seconds:
            return None
        if partition.queue or partition.latest is None or not self._idle(partition, now):
            return None
        return partition.latest + (now - partition.latest_read_at)

    def _pop(
        self, source: Source, partition: _Partition[Item], now: float, *, in_order: bool, ahead: bool = False
    ) -> Released[Item]:
        event = partition.pop()
        self._buffered -= 1
        waited = now - event.added_at
        if event.rank == RANK_INVALID:
            return Released(source, event.offset, event.item, Timing.IN_ORDER, waited)
        if not ahead and (partition.latest is None or event.event_time >= partition.latest):
            partition.latest, partition.latest_read_at = event.event_time, event.added_at
        if (event.event_time, event.rank) < (self.watermark, self._watermark_rank):
            timing = Timing.LATE
        elif in_order:
            timing = Timing.IN_ORDER
            self.watermark, self._watermark_rank = event.event_time, event.rank
            partition.waiting_since = None
        else:
            timing = Timing.EARLY
        return Released(source, event.offset, event.item, timing, waited)

    def committable(self) -> dict[Source, int]:
        """For each partition, the offset up to which everything has been released."""
        offsets: dict[Source, int] = {}
        for source, partition in self._partitions.items():
            if partition.queue:
                offsets[source] = partition.queue[0].offset
            elif partition.next_offset is not None:
                offsets[source] = partition.next_offset
        return offsets

    def source_watermarks(self) -> dict[Source, float | None]:
        """For each partition, an event time before which a transaction has all it needs from
        it: the labels known by its time and the transactions before it (what arrives later
        and earlier is behind the order); None where it holds no time back: every partition is
        idle, or it is idle and has released nothing since it was assigned."""
        now = self._clock()
        if self._everything_idle(now):
            return dict.fromkeys(self._partitions)
        complete_before = self._complete_before()
        marks: dict[Source, float | None] = {}
        for source, partition in self._partitions.items():
            quiet_until = self._quiet_until(partition, now)
            if quiet_until is not None:
                marks[source] = max(complete_before, quiet_until)
            elif not partition.queue and self._idle(partition, now):
                marks[source] = None
            else:
                marks[source] = complete_before
        return marks

    def _complete_before(self) -> float:
        """The watermark, or just past it where the order's last event is a transaction: every
        label of its time is in then (labels sort first), so transactions stamped to the same
        second as the latest in order need not wait for an event of the next second."""
        if self._watermark_rank == RANK_TRANSACTION:
            return math.nextafter(self.watermark, math.inf)
        return self.watermark

    def queued(self) -> dict[Source, int]:
        """How many events wait in each partition's queue."""
        return {source: len(partition.queue) for source, partition in self._partitions.items()}

    def __len__(self) -> int:
        return self._buffered


def _turn(partition: _Partition[Item]) -> tuple[float, int, int]:
    """Which partition's head goes next: the earliest in event-time order; at equal times
    (traffic stamped to the second) the longer queue's, so that no partition runs down to its
    lone head, which stops the order, while the others still hold that second's events."""
    event_time, rank = _order(partition.queue[0])
    return (event_time, rank, -len(partition.queue))


def _order(event: Pending[Item]) -> tuple[float, int]:
    if event.rank == RANK_INVALID:
        return (float("-inf"), RANK_INVALID)
    return (event.event_time, event.rank)
