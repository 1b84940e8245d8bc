"""The terminal stage: per-terminal state, partitioned like `features.by-terminal` (by
terminal). It completes each transaction's vector with the terminal features and writes it to
`transactions.enriched`, keyed by customer.

A terminal's features at time t use its transactions at or before t - LABEL_DELAY_DAYS and
the fraud reports known at t. Labels are applied as they arrive (a report changes no vector
of a transaction before its label time, and applying one twice changes nothing). A
transaction is held until its own partition of the repartition topic has carried a watermark
(customers.py) past t from every partition of `labels` and of `transactions`: then everything
its features need has arrived, and each terminal's transactions join its state in time order
(so that what the state drops past its horizon is what the backfill drops), and its vector is
the backfill's. A source marked idle holds nothing back, but for a moment after a customer
replica resumes a replay while every source was idle: the other replicas' parts of the same
writes may be a moment behind (merge.py); that hold is for history, and holds no live
transaction. Waiting is bounded, and the stage says when it cut a wait short:
- a transaction held for `max_wait_seconds` (a producer's clock ahead, a live transaction
  inside a replay, a partition whose owner is gone) is released, flagged early;
- past `max_buffered_events` held, the longest-held is released, flagged early.
A held transaction holds back no other: each is released as soon as its own time is reached.

Exactly once: the offset committed for a partition is that of its first transaction still
held, so a restart may read again transactions released after it. A transaction already in
its terminal's restored state was released and its output committed in the same Kafka
transaction: it is skipped.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Message
from google.protobuf.message import DecodeError

from fraudstream_common.deadletter import PROTOBUF_HEADERS, Output
from fraudstream_common.features.definitions import DAY, FEATURE_NAMES, LABEL_DELAY_DAYS, TERMINAL_HORIZON
from fraudstream_common.features.state import Snapshot, TerminalState
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, StreamWatermarks
from fraudstream_common.stream import Checkpoint, Source
from fraudstream_common.timestamps import seconds_of, timestamp_of
from fraudstream_common.topics import Topic, topic_name
from fraudstream_feature_store.store import FeatureStateStore
from fraudstream_features import metrics
from fraudstream_features.merge import replayed
from fraudstream_features.records import (
    KIND_LABEL,
    KIND_TRANSACTION,
    KIND_WATERMARK,
    Invalid,
    decode_label,
    invalid_output,
    record_kind,
)
from fraudstream_features.settings import FeaturesSettings

# A terminal's deferred transactions are pushed online a day before they could matter to a request.
TERMINAL_PUSH_SLACK = (LABEL_DELAY_DAYS - 1) * DAY


class PushSchedule:
    """Which terminals' states go online with the next push (TerminalStage._take_online says
    when), found without visiting every deferred terminal at every checkpoint: the deferred are
    kept in the order they were deferred and indexed by their earliest and latest unpushed
    transaction times (heaps whose stale entries are skipped as they come up, and dropped when
    they outnumber the deferred)."""

    def __init__(self, *, stale_kept: int = 1024) -> None:
        """`stale_kept`: how many heap entries, past twice the deferred terminals in each heap,
        are kept before the heaps are rebuilt from the deferred."""
        self._stale_kept = stale_kept
        # Terminals whose online state must go with the next push (a fraud report changes risk at once).
        self.due: set[str] = set()
        # Terminals changed only by transactions: (earliest and latest unpushed transaction
        # times, when deferred), in insertion order so the first has waited longest.
        self._deferred: dict[str, tuple[float, float, float]] = {}
        self._by_since: list[tuple[float, str]] = []
        self._by_until: list[tuple[float, str]] = []
        # Terminals whose unpushed transactions no request from the watermark on can see: pushed
        # with their next change, or when the stage stops (what it leaves online is its state).
        self._past_horizon: set[str] = set()

    def clear(self, *, due: Collection[str] = ()) -> None:
        self.due = set(due)
        self._deferred.clear()
        self._by_since.clear()
        self._by_until.clear()
        self._past_horizon.clear()

    def defer(self, terminal_id: str, event_time: float, now: float) -> None:
        """A transaction at `event_time` changed the terminal's state, unpushed."""
        entry = self._deferred.get(terminal_id)
        if entry is None:
            since, until, deferred_at = event_time, event_time, now
            heapq.heappush(self._by_since, (since, terminal_id))
            heapq.heappush(self._by_until, (until, terminal_id))
        else:
            since, until, deferred_at = entry
            if event_time < since:
                since = event_time
                heapq.heappush(self._by_since, (since, terminal_id))
            if event_time > until:
                until = event_time
                heapq.heappush(self._by_until, (until, terminal_id))
        self._deferred[terminal_id] = (since, until, deferred_at)

    def take(self, watermark: float, now: float, max_wait_seconds: float, *, everything: bool) -> set[str]:
        """The terminals to push now, no longer due or deferred."""
        past_horizon_before = watermark - TERMINAL_HORIZON
        while self._by_until and self._by_until[0][0] <= past_horizon_before:
            until, terminal_id = heapq.heappop(self._by_until)
            entry = self._deferred.get(terminal_id)
            if entry is not None and entry[1] == until:
                del self._deferred[terminal_id]
                self._past_horizon.add(terminal_id)
        due_before = watermark - TERMINAL_PUSH_SLACK
        while self._by_since and self._by_since[0][0] <= due_before:
            since, terminal_id = heapq.heappop(self._by_since)
            entry = self._deferred.get(terminal_id)
            if entry is not None and entry[0] == since:
                self.due.add(terminal_id)
        waited_before = now - max_wait_seconds
        for terminal_id, (_since, _until, deferred_at) in self._deferred.items():
            if deferred_at > waited_before:
                break
            self.due.add(terminal_id)
        if everything:
            self.due.update(self._deferred)
            self.due |= self._past_horizon
        taken, self.due = self.due, set()
        for terminal_id in taken:
            self._deferred.pop(terminal_id, None)
            self._past_horizon.discard(terminal_id)
        if len(self._by_since) + len(self._by_until) > 4 * len(self._deferred) + self._stale_kept:
            self._by_since = [(since, t) for t, (since, _until, _at) in self._deferred.items()]
            self._by_until = [(until, t) for t, (_since, until, _at) in self._deferred.items()]
            heapq.heapify(self._by_since)
            heapq.heapify(self._by_until)
        return taken

    def longest_wait(self, now: float) -> float:
        """How long the terminal deferred first has waited (0: none is)."""
        for _since, _until, deferred_at in self._deferred.values():
            return now - deferred_at
        return 0.0


@dataclass
class _Held:
    offset: int
    event_time: float
    partial: EnrichedTransaction
    arrived: float
    released: bool = False


@dataclass
class _Partition:
    """One input partition: the transactions it holds, and the watermarks it has carried."""

    by_time: list[tuple[float, int, _Held]] = field(default_factory=list)  # heap
    by_arrival: deque[_Held] = field(default_factory=deque)
    next_offset: int | None = None
    watermarks: dict[Source, tuple[float, bool]] = field(default_factory=dict)
    reached_at: dict[Source, float] = field(default_factory=dict)  # when a source's watermark last rose
    # When a source delivered history again after every source was idle (a replica resumed a replay).
    resumed_at: float = float("-inf")

    def threshold(self, sources: Sequence[Source], now: float, hold_seconds: float) -> float:
        """Every held transaction earlier than this has what its features need, and no
        transaction of its terminal with an earlier time is still to come. An idle source holds
        nothing back, but for `hold_seconds` after a resume, at its watermark plus the time since
        it rose: another replica's part of the replay may be a moment behind (merge.py)."""
        reached = float("inf")
        holding = now - self.resumed_at < hold_seconds
        for source in sources:
            known = self.watermarks.get(source)
            if known is None:
                return float("-inf")
            watermark, idle = known
            if not idle:
                reached = min(reached, watermark)
            elif holding and watermark > float("-inf"):
                reached = min(reached, watermark + (now - self.reached_at.get(source, now)))
        return reached

    def first_held(self) -> _Held | None:
        while self.by_arrival and self.by_arrival[0].released:
            self.by_arrival.popleft()
        return self.by_arrival[0] if self.by_arrival else None


class TerminalStage:
    name = "terminals"

    def __init__(
        self,
        settings: FeaturesSettings,
        store: FeatureStateStore,
        topic_partitions: Mapping[str, int],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        prefix = settings.topic_prefix
        self._settings = settings
        self._store = store
        self._clock = clock
        self._order_waits = metrics.EVENT_TIME_WAIT_SECONDS.labels(self.name)
        self.labels_topic = topic_name(Topic.LABELS, prefix)
        transactions_topic = topic_name(Topic.TRANSACTIONS, prefix)
        self._sources = [
            (topic, partition)
            for topic in (self.labels_topic, transactions_topic)
            for partition in range(topic_partitions[topic])
        ]
        self.input_topics = (topic_name(Topic.FEATURES_BY_TERMINAL, prefix),)
        self.changelog_topic: str | None = topic_name(Topic.FEATURES_TERMINAL_STATE, prefix)
        self.enriched_topic = topic_name(Topic.TRANSACTIONS_ENRICHED, prefix)
        self.deadletter_topic = topic_name(Topic.DEADLETTER, prefix)
        self.terminals: dict[str, TerminalState] = {}
        self._partitions: dict[int, _Partition] = {}
        self._sequence = itertools.count()
        self._held = 0
        self._held_max = 0
        self.watermark = float("-inf")  # latest event time released in order
        self._outputs: list[Output] = []
        self._changed: dict[str, int] = {}  # terminal -> its partition
        self._pending = False  # something read or released since the last checkpoint
        self._committed_at = clock()
        self._pushes = PushSchedule()
        self._online: dict[str, Snapshot] = {}

    # Stage

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        self.terminals = {key.decode(): TerminalState.from_json(value.decode()) for key, value in changelog.items()}
        self._partitions = {partition: _Partition() for _topic, partition in assignment}
        self._held = 0
        self.committed()
        self._online.clear()
        # The online store may lack changes that were logged but deferred before a crash.
        self._pushes.clear(due=self.terminals)

    def add(self, message: Message) -> None:
        partition_id, offset = message.partition(), message.offset()
        if partition_id is None or offset is None or partition_id not in self._partitions:
            return
        partition = self._partitions[partition_id]
        partition.next_offset = offset + 1
        self._pending = True
        kind = record_kind(message)
        if kind == KIND_WATERMARK:
            self._add_watermark(partition, message)
        elif kind == KIND_LABEL:
            self._add_label(partition_id, message)
        elif kind == KIND_TRANSACTION:
            self._add_transaction(partition, offset, message)
        else:
            self._dead_letter(
                Invalid(message, "unknown_kind", f"no {KIND_TRANSACTION}, {KIND_LABEL} or watermark kind")
            )

    def at_end(self, sources: Collection[Source]) -> None:
        """Nothing to do: the watermarks say when a source is idle."""

    def held_back(self) -> Collection[Source]:
        return ()  # watermarks come through every partition: holding one back could hold all

    def read_limit(self) -> int:
        return self._settings.batch_max_messages

    def resumed(self) -> None:
        for partition in self._partitions.values():
            for held in partition.by_arrival:
                held.arrived = self._clock()

    def due(self) -> bool:
        self._release()
        if self._pending:
            now = self._clock()
            if (
                len(self._changed) >= self._settings.push_max_rows
                or now - self._committed_at >= self._settings.push_interval_seconds
            ):
                return True
        return self._longest_deferral() >= self._settings.terminal_push_max_seconds

    def checkpoint(self, *, final: bool) -> Checkpoint:
        outputs = self._outputs
        snapshots = {terminal_id: self.terminals[terminal_id].snapshot() for terminal_id in self._changed}
        outputs.extend(
            Output(
                self.changelog_topic or "", terminal_id.encode(), snapshots[terminal_id].json.encode(), [], partition
            )
            for terminal_id, partition in self._changed.items()
        )
        self._online.update(self._take_online(snapshots, everything=final))
        offsets: dict[Source, int] = {}
        for partition_id, partition in self._partitions.items():
            held = partition.first_held()
            offset = held.offset if held is not None else partition.next_offset
            if offset is not None:
                offsets[(self.input_topics[0], partition_id)] = offset
        return Checkpoint(outputs, offsets)

    def store(self) -> None:
        if not self._online:
            return
        started = time.perf_counter()
        self._store.push({}, self._online)
        metrics.PUSH_SECONDS.observe(time.perf_counter() - started)
        metrics.ROWS_PUSHED.labels("terminal_state").inc(len(self._online))
        self._online.clear()

    def committed(self) -> None:
        self._outputs = []
        self._changed.clear()
        self._pending = False
        self._committed_at = self._clock()

    # Input

    def _add_watermark(self, partition: _Partition, message: Message) -> None:
        try:
            marks = StreamWatermarks.FromString(message.value() or b"")
        except DecodeError as exc:
            self._dead_letter(Invalid(message, "invalid_protobuf", f"not a protobuf message: {exc}"))
            return
        now = self._clock()
        all_idle = bool(partition.watermarks) and all(idle for _, idle in partition.watermarks.values())
        for mark in marks.watermarks:
            source = (mark.topic, mark.partition)
            known = partition.watermarks.get(source)
            if mark.idle:
                # An idle source's mark carries its replica's watermark, which the replica's other
                # partitions moved: not where this source stands, should it move to another replica.
                reached = known[0] if known is not None else float("-inf")
            else:
                reached = seconds_of(mark.event_time)
                if all_idle and known is not None and known[1] and replayed(reached, time.time()):
                    partition.resumed_at = now
                if known is not None:
                    reached = max(reached, known[0])  # a replay after a crash may repeat an older one
                if known is None or reached > known[0]:
                    partition.reached_at[source] = now
            partition.watermarks[source] = (reached, mark.idle)

    def _add_label(self, partition_id: int, message: Message) -> None:
        label = decode_label(message)
        if isinstance(label, Invalid):
            self._dead_letter(label)
            return
        terminal = self.terminals.setdefault(label.terminal_id, TerminalState())
        known = terminal.frauds.get(label.transaction_id)
        if terminal.label(label.transaction_id, label.is_fraud, label.label_time, label.transaction_time):
            self._changed[label.terminal_id] = partition_id
            self._pushes.due.add(label.terminal_id)
            # Transactions enriched before it that it counts in (until an earlier-known report did).
            missed = terminal.counting(label.label_time, label.transaction_time, known[0] if known else math.inf)
            if missed:
                metrics.VECTORS_MISSING_LABEL.inc(missed)

    def _add_transaction(self, partition: _Partition, offset: int, message: Message) -> None:
        try:
            partial = EnrichedTransaction.FromString(message.value() or b"")
        except DecodeError as exc:
            self._dead_letter(Invalid(message, "invalid_protobuf", f"not a protobuf message: {exc}"))
            return
        held = _Held(offset, seconds_of(partial.transaction.event_time), partial, self._clock())
        heapq.heappush(partition.by_time, (held.event_time, next(self._sequence), held))
        partition.by_arrival.append(held)
        self._held += 1
        if self._held > self._held_max:
            self._held_max = self._held
            metrics.BUFFERED_MAX.labels(self.name).set(self._held_max)

    def _dead_letter(self, invalid: Invalid) -> None:
        self._outputs.append(invalid_output(self.deadletter_topic, invalid))
        metrics.EVENTS.labels("invalid").inc()

    # Release

    def _release(self) -> None:
        now = self._clock()
        wall = time.time()
        for partition_id, partition in self._partitions.items():
            threshold = partition.threshold(self._sources, now, self._settings.partition_idle_hold_seconds)
            # The hold after a resumed replay is for history: a live transaction tells its own time
            # (as in the merger), so a replay's switch to live traffic holds none.
            live_threshold = partition.threshold(self._sources, now, 0.0)
            while partition.by_time and (first_time := partition.by_time[0][0]) < (
                threshold if replayed(first_time, wall) else live_threshold
            ):
                held = heapq.heappop(partition.by_time)[2]
                if not held.released:
                    self._apply(partition_id, held, now, early=False)
            while (
                first := partition.first_held()
            ) is not None and now - first.arrived >= self._settings.max_wait_seconds:
                self._apply(partition_id, first, now, early=True)
        while self._held > self._settings.max_buffered_events:
            longest = min(
                (
                    (first.arrived, partition_id, first)
                    for partition_id, p in self._partitions.items()
                    if (first := p.first_held())
                ),
                key=lambda entry: entry[0],
            )
            self._apply(longest[1], longest[2], now, early=True)
        metrics.BUFFERED.labels(self.name).set(self._held)
        if self.watermark > 0:
            metrics.WATERMARK.set(self.watermark)

    def _apply(self, partition_id: int, held: _Held, now: float, *, early: bool) -> None:
        held.released = True
        self._held -= 1
        self._pending = True  # also where no input came after it: its wait ran out
        tx = held.partial.transaction
        terminal = self.terminals.setdefault(tx.terminal_id, TerminalState())
        if terminal.has(tx.transaction_id, held.event_time):
            return  # released before a restart, with its output
        self._order_waits.observe(now - held.arrived)
        if early:
            metrics.EARLY_EVENTS.labels(self.name).inc()
        else:
            self.watermark = max(self.watermark, held.event_time)
        state_time = terminal.as_of
        # A later transaction of the terminal came first: it missed this one, and this one's
        # windows may have lost their oldest days, dropped past the horizon since.
        late = bool(terminal.times) and terminal.times[-1] > held.event_time
        if late and not held.partial.late:
            metrics.LATE_EVENTS.inc()
        vector = dict(zip(held.partial.feature_names, held.partial.feature_values, strict=True))
        vector.update(terminal.features(held.event_time))
        terminal.add(held.event_time, tx.transaction_id)
        self._changed[tx.terminal_id] = partition_id
        self._pushes.defer(tx.terminal_id, held.event_time, self._clock())
        enriched = EnrichedTransaction(
            transaction=tx,
            feature_names=FEATURE_NAMES,
            feature_values=[vector[name] for name in FEATURE_NAMES],
            enriched_time=timestamp_of(time.time()),
            late=late or held.partial.late,
            early=early or held.partial.early,
            customer_state_time=held.partial.customer_state_time,
            terminal_state_time=timestamp_of(state_time),
            input_time=held.partial.input_time,
        )
        self._outputs.append(
            Output(self.enriched_topic, tx.customer_id.encode(), enriched.SerializeToString(), PROTOBUF_HEADERS)
        )

    # The online store

    def _take_online(self, snapshots: Mapping[str, Snapshot], *, everything: bool) -> dict[str, Snapshot]:
        """The terminals whose online state would otherwise be wrong for a request.

        A terminal's features at time t use only transactions in (t - TERMINAL_HORIZON,
        t - LABEL_DELAY_DAYS] (and fraud reports known at t). So a terminal whose only unpushed
        changes are transactions later than watermark - TERMINAL_PUSH_SLACK serves every request
        at or after the watermark exactly as its newer state would; it is pushed when its
        earliest unpushed transaction comes within the slack, with any fraud report, when it has
        waited `terminal_push_max_seconds` (for low traffic), or with `everything` (when the
        stage stops). This halves the rows pushed. One whose unpushed transactions are all
        TERMINAL_HORIZON or more behind the watermark changes no such request's features: it
        waits for its next change or for the stage to stop (a replay's switch to live traffic
        would otherwise push every terminal the replay touched at once, and hold the live
        transactions behind that push)."""
        online = {}
        taken = self._pushes.take(
            self.watermark, self._clock(), self._settings.terminal_push_max_seconds, everything=everything
        )
        for terminal_id in taken:
            snapshot = snapshots.get(terminal_id)
            online[terminal_id] = snapshot if snapshot is not None else self.terminals[terminal_id].snapshot()
        return online

    def _longest_deferral(self) -> float:
        return self._pushes.longest_wait(self._clock())
