"""The monitor's first stage: counts the predictions and labels of the input partitions it is
given, and sends what it counted to `monitor.partials`, where the judge (`judge.py`) merges the
partitions. `predictions` and `labels` are both keyed by transaction id, so a label meets its
prediction in the same partition, and each replica joins its own partitions.

Per input partition, in arrival order:
- hours of event time are open for every version until the partition's watermark is a
  lateness past them (`drift.OpenHours` has the policy for predictions out of order, late or far
  ahead): each version's counts of a closed hour go out (`hour`), and the partition's first
  hour still open (`mark`), which tells the judge the partition will send nothing more for the
  hours before it;
- the label join (`quality.LabelJoin`, per version) sends each window it matures, or changes
  afterwards (`window`);
- how many predictions of each version it saw, and its recent traffic for the console (`seen`);
- a partition with nothing new for `window_idle_seconds` says so (`mark`, idle): the judge
  does not wait for it.

Restore: the state is rebuilt by reading the partitions again from `replay_seconds` back
(`stream.ReplayedStage`); what that replay counts was sent before, so it is not sent again.
Delivery is at-least-once: a partial sent again after a crash carries the same key and the same
counts, and the judge keeps one per key.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from confluent_kafka import Message
from google.protobuf.message import DecodeError

from fraudstream_common.deadletter import Output, dead_letter, missing_fields
from fraudstream_common.kafka import CONTENT_TYPE_HEADER, CONTENT_TYPE_JSON
from fraudstream_common.reference import SCORE
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.prediction_pb2 import Decision, ModelRole, Prediction
from fraudstream_common.settings import ProcessingGuarantee
from fraudstream_common.stream import Checkpoint, Source, StreamRuntime
from fraudstream_common.timestamps import seconds_of
from fraudstream_common.topics import partition_of
from fraudstream_drift.drift import HourCounter, OpenHours
from fraudstream_monitor import metrics
from fraudstream_monitor.quality import HOUR, LabelJoin, WindowCounts
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_monitor.versions import Versions

logger = logging.getLogger(__name__)

GROUP_ID = "monitor"
SERVICE = "monitor"
# Without these a record cannot be counted: it goes to the dead-letter topic.
REQUIRED_PREDICTION = ("transaction_id", "model_version", "transaction_time")
REQUIRED_LABEL = ("transaction_id", "label_time")
ALERTED = (Decision.DECISION_REVIEW, Decision.DECISION_DECLINE)
ROLE_NAMES = {
    ModelRole.MODEL_ROLE_CHAMPION: "champion",
    ModelRole.MODEL_ROLE_CANARY: "canary",
    ModelRole.MODEL_ROLE_SHADOW: "shadow",
}
TRAFFIC_BUCKET_SECONDS = 10
TRAFFIC_BUCKETS = 60
TRAFFIC_LATENCIES = 200  # latencies kept per partition and bucket, for the console's percentiles


@dataclass(frozen=True)
class Partial:
    """What one input partition counted: `hour`, `window`, `mark` or `seen`."""

    kind: str
    partition: int
    body: dict[str, Any]
    version: str = ""
    start: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.version}|{self.partition}|{self.start:.0f}"

    def encode(self) -> bytes:
        document = {"kind": self.kind, "partition": self.partition, "version": self.version, "start": self.start}
        return json.dumps({**document, "body": self.body}, separators=(",", ":")).encode()

    @staticmethod
    def decode(value: bytes) -> Partial:
        """The partial `value` holds; raises ValueError, KeyError or TypeError for anything else."""
        document = json.loads(value)
        kind = document["kind"]
        if kind not in ("hour", "window", "mark", "seen") or not isinstance(document["body"], dict):
            raise ValueError(f"not a monitor partial: {kind!r}")
        try:
            partition = int(document["partition"])
        except OverflowError as exc:  # JSON as Python reads it allows Infinity
            raise ValueError(f"partition {document['partition']!r} is not a partition") from exc
        return Partial(kind, partition, document["body"], str(document["version"]), float(document["start"]))


@dataclass(frozen=True)
class Upstream:
    """Where the predictions of a partition come from, each source nearly in event-time order:
    the terminal stage of the features service releases each partition of
    `features.by-terminal` (by terminal) in time order into `transactions.enriched`, whose
    partitions (by customer) the inference service scores in order and interleaves, a chunk of
    each at a time, into every partition of `predictions`. So a prediction's source is its
    customer's partition of the one and its terminal's of the other."""

    customer_partitions: int = 1
    terminal_partitions: int = 1

    @property
    def sources(self) -> int:
        return self.customer_partitions * self.terminal_partitions

    def of(self, predictions: Sequence[Prediction]) -> np.ndarray | None:
        """Each prediction's source (None: all of one)."""
        if self.sources == 1:
            return None
        return np.asarray(
            [
                partition_of(p.customer_id.encode(), self.customer_partitions) * self.terminal_partitions
                + partition_of(p.terminal_id.encode(), self.terminal_partitions)
                for p in predictions
            ]
        )


@dataclass
class _Traffic:
    predictions: int = 0
    degraded: int = 0
    latencies_ms: list[float] = field(default_factory=list)


class PartitionCounts:
    """Everything the monitor counts of one input partition; `predictions` and `labels` return
    the partials to send."""

    def __init__(
        self,
        partition: int,
        settings: MonitorSettings,
        catalogue: Versions,
        upstream: Upstream | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.partition = partition
        self._settings = settings
        self._catalogue = catalogue
        self._upstream = upstream or Upstream()
        self._hours = OpenHours(
            settings.hour_lateness_seconds,
            settings.hour_max_ahead_seconds,
            settings.hour_confirm_rows,
            sources=self._upstream.sources,
            source_idle_seconds=settings.hour_source_idle_seconds,
            clock=clock,
        )
        self._joins: dict[str, LabelJoin] = {}
        self._settled: set[str] = set()  # versions whose reference was looked up for good
        self._watched_since: dict[str, float] = {}
        self.seen: Counter[str] = Counter()
        self.labels_seen = 0
        # The latest labels, for a version whose first prediction comes after them (labels and
        # predictions are read side by side: after a restart, a partition's labels may come first).
        self._recent_labels: deque[Label] = deque(maxlen=settings.quality_sample_size)
        self._traffic: dict[int, _Traffic] = {}

    def predictions(self, batch: Sequence[Prediction]) -> list[Partial]:
        """A batch of the partition's predictions, in arrival order."""
        if not batch:
            return []
        partials: list[Partial] = []
        times = np.asarray([seconds_of(p.transaction_time) for p in batch])
        watched = [t >= self._watched_from(p.model_version) for p, t in zip(batch, times.tolist(), strict=True)]
        judged_times = times[np.asarray(watched, dtype=bool)]
        for prediction, event_time, judged in zip(batch, times.tolist(), watched, strict=True):
            if not judged:
                continue
            for window in self._join(prediction.model_version).prediction(
                prediction.transaction_id, event_time, prediction.score, prediction.decision in ALERTED
            ):
                partials.append(self._window(prediction.model_version, window))
        if len(judged_times):
            reached = float(judged_times.max())
            for version, join in self._joins.items():
                partials += [self._window(version, w) for w in join.predictions_reached(reached)]
        opened = self._hours.start
        # A version's own history is not traffic: it neither counts nor moves the hours.
        judged_batch = [p for p, judged in zip(batch, watched, strict=True) if judged]

        def count_rows(start: float, rows: np.ndarray) -> None:
            by_version: dict[str, list[Prediction]] = {}
            for prediction in (judged_batch[i] for i in rows.tolist()):
                by_version.setdefault(prediction.model_version, []).append(prediction)
            for version, predictions in by_version.items():
                counter = self._counter(version)
                if counter is not None:
                    _count(counter, start, predictions)

        sources = self._upstream.of(judged_batch)
        for version, hour in self._hours.count(judged_times, count_rows, sources):
            partials.append(Partial("hour", self.partition, hour.to_json(), version, hour.start))
        metrics.UNCOUNTED_PREDICTIONS.labels(str(self.partition), "late").set(self._hours.late)
        metrics.UNCOUNTED_PREDICTIONS.labels(str(self.partition), "ahead").set(self._hours.ahead)
        if self._hours.start != opened:
            partials.append(self.mark(idle=False))
        self.seen.update(p.model_version for p in batch)
        roles = Counter((p.model_version, ROLE_NAMES.get(p.model_role, "unknown")) for p in batch)
        for (version, role), count in roles.items():
            metrics.PREDICTIONS.labels(version, role).inc(count)
        self._count_traffic(batch)
        return partials

    def labels(self, batch: Sequence[Label]) -> list[Partial]:
        partials: list[Partial] = []
        for label in batch:
            self._recent_labels.append(label)
            label_time = seconds_of(label.label_time)
            for version, join in self._joins.items():
                partials += [
                    self._window(version, w) for w in join.label(label.transaction_id, label.is_fraud, label_time)
                ]
        self.labels_seen += len(batch)
        metrics.LABELS.inc(len(batch))
        return partials

    def caught_up(self, at_end: bool) -> None:
        """Whether the partition's predictions are read to their end: only then may an upstream
        source that brought nothing lately be idle (OpenHours)."""
        self._hours.caught_up = at_end

    @property
    def hours_closable(self) -> bool:
        """Whether upstream sources turned idle since the last predictions close an hour now."""
        return self._hours.closable

    def close_idle(self, *, idle: bool) -> list[Partial]:
        """The hours that upstream sources turned idle have closed since the last predictions;
        `idle`: whether the partition stays idle for the judge."""
        opened = self._hours.start
        partials = [Partial("hour", self.partition, h.to_json(), v, h.start) for v, h in self._hours.close_idle()]
        if self._hours.start != opened:
            partials.append(self.mark(idle=idle))
        return partials

    def mark(self, *, idle: bool) -> Partial:
        """Where the partition stands: its open hour (it sends nothing more for earlier ones)."""
        hours = self._hours
        return Partial(
            "mark", self.partition, {"open": hours.start, "idle": idle, "late": hours.late, "ahead": hours.ahead}
        )

    def seen_partial(self, now: float) -> Partial:
        oldest = int(now // TRAFFIC_BUCKET_SECONDS) - TRAFFIC_BUCKETS
        for bucket_id in [b for b in self._traffic if b <= oldest]:
            del self._traffic[bucket_id]
        traffic = {str(b): [t.predictions, t.degraded, t.latencies_ms] for b, t in self._traffic.items()}
        return Partial(
            "seen", self.partition, {"versions": dict(self.seen), "labels": self.labels_seen, "traffic": traffic}
        )

    def _join(self, version: str) -> LabelJoin:
        join = self._joins.get(version)
        if join is None:
            settings = self._settings
            join = self._joins[version] = LabelJoin(
                window_seconds=settings.quality_window_hours * HOUR,
                maturity_seconds=settings.label_maturity_hours * HOUR,
                late_seconds=settings.late_label_hours * HOUR,
                sample_size=settings.quality_sample_size,
            )
            for label in self._recent_labels:  # no window of the version exists to mature yet
                join.label(label.transaction_id, label.is_fraud, seconds_of(label.label_time))
        return join

    def _watched_from(self, version: str) -> float:
        """The event time from which the version's predictions are judged (drift and quality):
        the end of its reference's period. Before it, the transactions are the version's own
        history (a first model scoring the backlog that waited for it, the weeks in which the
        feature windows were filling), not traffic that could have drifted from it."""
        since = self._watched_since.get(version)
        if since is None:
            reference = self._catalogue.reference(version)
            since = float("-inf") if reference is None or reference.period_end is None else reference.period_end
            if self._catalogue.get(version) is not None:  # the record is read: the answer holds
                self._watched_since[version] = since
        return since

    def _counter(self, version: str) -> HourCounter | None:
        """The version's counter, once its reference is known (until the version's record is
        read, it is asked for again each batch)."""
        counter = self._hours.counters.get(version)
        if counter is None and version not in self._settled:
            reference = self._catalogue.reference(version)
            if self._catalogue.get(version) is not None:
                self._settled.add(version)
            if reference is not None:
                counter = self._hours.counters[version] = HourCounter(
                    reference, self._settings.drift_policy().counted_regions
                )
        return counter

    def _window(self, version: str, window: WindowCounts) -> Partial:
        held = self._joins[version].held
        for name, count in zip(("windows", "predictions", "waiting_labels"), held, strict=True):
            metrics.QUALITY_HELD.labels(version, str(self.partition), name).set(count)
        return Partial("window", self.partition, window.to_json(), version, window.start)

    def _count_traffic(self, batch: Sequence[Prediction]) -> None:
        for prediction in batch:
            bucket_id = int(seconds_of(prediction.predicted_at) // TRAFFIC_BUCKET_SECONDS)
            bucket = self._traffic.get(bucket_id)
            if bucket is None:
                bucket = self._traffic[bucket_id] = _Traffic()
            bucket.predictions += 1
            bucket.degraded += prediction.degraded
            if len(bucket.latencies_ms) < TRAFFIC_LATENCIES:
                bucket.latencies_ms.append(prediction.latency_ms)


def _count(counter: HourCounter, start: float, predictions: list[Prediction]) -> None:
    """Counts one version's predictions of one hour: those with every feature of the first."""
    names = [f.name for f in predictions[0].features]
    complete = [p for p in predictions if len(p.features) == len(names)]
    values = np.asarray([[f.value for f in p.features] for p in complete])
    columns = {name: values[:, i] for i, name in enumerate(names)} if len(values) else {}
    columns[SCORE] = np.asarray([p.score for p in complete])
    counter.count(start, columns, ([p.customer_id for p in complete], [p.terminal_id for p in complete]))


class CountingStage:
    """The stream runtime's stage: decodes, hands each partition's records to its counts in
    arrival order, and commits the partials with the input offsets."""

    name = "monitor-counting"
    changelog_topic = None

    def __init__(
        self,
        settings: MonitorSettings,
        catalogue: Versions,
        *,
        predictions_topic: str,
        labels_topic: str,
        partials_topic: str,
        deadletter_topic: str,
        catalogue_ready: Callable[[float], bool] = lambda _timeout: True,
        clock: Callable[[], float] = time.time,
        upstream: Upstream | None = None,
    ) -> None:
        """`catalogue_ready(timeout)`: waits until the catalogue read the published versions."""
        self._settings = settings
        self._catalogue = catalogue
        self._catalogue_ready = catalogue_ready
        self._predictions_topic = predictions_topic
        self._labels_topic = labels_topic
        self._partials_topic = partials_topic
        self._deadletter_topic = deadletter_topic
        self._clock = clock
        self._upstream = upstream or Upstream()
        self.replay_seconds = settings.replay_seconds
        self._partitions: dict[int, PartitionCounts] = {}
        self._last_record_at: dict[int, float] = {}
        self._idle: set[int] = set()
        self._at_end: set[int] = set()
        self._queued: list[tuple[int, Prediction | Label]] = []
        self._replayed: list[tuple[int, Prediction | Label]] = []
        self._outputs: list[Output] = []
        self._offsets: dict[Source, int] = {}
        self._changed: set[int] = set()
        self._opened_at = clock()

    @property
    def input_topics(self) -> Sequence[str]:
        return (self._predictions_topic, self._labels_topic)

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        # Predictions counted before their version's reference is known would not be counted
        # for drift (and differently by each replica).
        while not self._catalogue_ready(5.0):
            logger.info("waiting for the published versions before counting")
        partitions = sorted({p for _, p in assignment})
        self._partitions = {
            p: PartitionCounts(p, self._settings, self._catalogue, self._upstream, self._clock) for p in partitions
        }
        now = self._clock()
        self._last_record_at = dict.fromkeys(partitions, now)
        self._idle, self._at_end, self._changed = set(), set(), set(partitions)
        self._queued, self._replayed, self._outputs, self._offsets = [], [], [], {}
        self._opened_at = now

    def replay(self, message: Message) -> None:
        self._queue(message, self._replayed, live=False)
        if len(self._replayed) >= self._settings.batch_size:
            self._apply(self._replayed, live=False)

    def add(self, message: Message) -> None:
        partition = message.partition() or 0
        self._apply(self._replayed, live=False)
        self._queue(message, self._queued, live=True)
        self._last_record_at[partition] = self._clock()
        self._at_end.discard(partition)
        self._offsets[(message.topic() or "", partition)] = (message.offset() or 0) + 1

    def at_end(self, sources: Collection[Source]) -> None:
        self._at_end = {partition for _topic, partition in sources}
        for partition, counts in self._partitions.items():
            counts.caught_up((self._predictions_topic, partition) in sources)

    def due(self) -> bool:
        if self._idle_now() or any(counts.hours_closable for counts in self._partitions.values()):
            return True
        return bool(self._queued or self._offsets) and (
            len(self._queued) >= self._settings.batch_size
            or self._clock() - self._opened_at >= self._settings.commit_interval_seconds
        )

    def held_back(self) -> Collection[Source]:
        return ()

    def read_limit(self) -> int:
        return self._settings.batch_size

    def resumed(self) -> None:
        return None

    def checkpoint(self, *, final: bool) -> Checkpoint:
        self._apply(self._replayed, live=False)
        self._apply(self._queued, live=True)
        now = self._clock()
        for partition, counts in self._partitions.items():
            for partial in counts.close_idle(idle=partition in self._idle):
                self._send(partial)
        for partition in self._idle_now():
            self._idle.add(partition)
            self._send(self._partitions[partition].mark(idle=True))
        for partition in sorted(self._changed):
            self._send(self._partitions[partition].seen_partial(now))
        self._changed = set()
        return Checkpoint(list(self._outputs), dict(self._offsets))

    def store(self) -> None:
        return None

    def committed(self) -> None:
        self._outputs, self._offsets = [], {}
        self._opened_at = self._clock()

    def _idle_now(self) -> list[int]:
        """Partitions at their end with nothing new for the idle time, not yet said to be idle."""
        horizon = self._clock() - self._settings.window_idle_seconds
        return [p for p in sorted(self._at_end - self._idle) if self._last_record_at.get(p, horizon) <= horizon]

    def _queue(self, message: Message, queue: list[tuple[int, Prediction | Label]], *, live: bool) -> None:
        topic, partition = message.topic() or "", message.partition() or 0
        kind = "predictions" if topic == self._predictions_topic else "labels"
        try:
            record: Prediction | Label = (
                Prediction.FromString(message.value() or b"")
                if kind == "predictions"
                else Label.FromString(message.value() or b"")
            )
            missing = missing_fields(record, REQUIRED_PREDICTION if kind == "predictions" else REQUIRED_LABEL)
            if missing:
                raise ValueError(f"missing {', '.join(missing)}")
        except (DecodeError, ValueError) as invalid:
            if not live:
                return  # sent to the dead-letter topic when first read
            self._outputs.append(
                dead_letter(self._deadletter_topic, SERVICE, message, code=f"invalid_{kind}", reason=str(invalid))
            )
            metrics.DEADLETTERS.labels(topic).inc()
            return
        queue.append((partition, record))

    def _apply(self, queue: list[tuple[int, Prediction | Label]], *, live: bool) -> None:
        """Hands the queued records to their partitions' counts, in arrival order (a run of
        predictions at a time), and empties the queue; the partials go out when `live`."""
        queued = list(queue)
        queue.clear()
        by_partition: dict[int, list[Prediction | Label]] = {}
        for partition, record in queued:
            if partition in self._partitions:
                by_partition.setdefault(partition, []).append(record)
        if live:
            # Before what they counted: the judge waits for them again (a window some other
            # partition matured is not judged without theirs).
            for partition in sorted(self._idle & by_partition.keys()):
                self._idle.discard(partition)
                self._send(self._partitions[partition].mark(idle=False))
        for partition, records in by_partition.items():
            counts = self._partitions[partition]
            partials: list[Partial] = []
            run: list[Prediction] = []
            for record in records:
                if isinstance(record, Prediction):
                    run.append(record)
                    continue
                partials += counts.predictions(run)
                run = []
                partials += counts.labels([record])
            partials += counts.predictions(run)
            if live:
                for partial in partials:
                    self._send(partial)
                self._changed.add(partition)

    def _send(self, partial: Partial) -> None:
        self._outputs.append(
            Output(
                self._partials_topic,
                partial.key.encode(),
                partial.encode(),
                [(CONTENT_TYPE_HEADER, CONTENT_TYPE_JSON.encode())],
            )
        )


def counting_stream(settings: MonitorSettings, stage: CountingStage) -> StreamRuntime:
    return StreamRuntime(
        settings,
        stage,
        group_id=GROUP_ID,
        transactional_id=f"monitor-counting-{settings.instance_id}",
        guarantee=ProcessingGuarantee.AT_LEAST_ONCE,
        max_messages=settings.batch_size,
        poll_timeout_seconds=0.1,
    )
