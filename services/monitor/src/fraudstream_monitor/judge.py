"""The monitor's second stage: the judge. It reads `monitor.partials` (one partition, so one
replica judges at a time; when it goes, the partition and the judging move to another) and
hands each partial to the core, which merges the input partitions and judges them; the alerts
it raises, and the retrain requests that fall due, go out with the partials' offsets
(at-least-once: alert and request ids are derived from their evidence, so a repeat after a
crash carries the same ids, and the trainer acts on a request id once). While alerts wait for
the retrain debounce, the offsets are committed only up to the partial that raised the first of
them: a crash in the debounce raises them live again, and the request is still asked.

Restore: the judge reads the partials topic again from its beginning (its retention covers a
quality window and its maturity) up to the committed offset; what that replay raises was sent
before, so it is not sent again. The requests sent before come from their own topic
(`sent_requests.py`): the judge starts once they are read, and their cooldown holds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from confluent_kafka import Message

from fraudstream_common.deadletter import PROTOBUF_HEADERS, Output, dead_letter
from fraudstream_common.schemas.v1.monitoring_pb2 import DriftAlert, RetrainRequest
from fraudstream_common.settings import ProcessingGuarantee
from fraudstream_common.stream import Checkpoint, Source, StreamRuntime
from fraudstream_monitor import metrics
from fraudstream_monitor.core import MonitorCore
from fraudstream_monitor.counting import SERVICE, Partial
from fraudstream_monitor.settings import MonitorSettings

logger = logging.getLogger(__name__)

GROUP_ID = "monitor-judge"


class JudgeStage:
    name = "monitor-judge"
    changelog_topic = None
    replay_seconds = math.inf

    def __init__(
        self,
        settings: MonitorSettings,
        core: MonitorCore,
        *,
        partials_topic: str,
        alerts_topic: str,
        requests_topic: str,
        deadletter_topic: str,
        requests_read: Callable[[float], bool] = lambda _timeout: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`requests_read(timeout)`: waits until the requests already sent are known to the core
        (`SentRequestsFollower`), so that a new judge keeps their cooldown."""
        self._settings = settings
        self._requests_read = requests_read
        self._core = core
        self._partials_topic = partials_topic
        self._alerts_topic = alerts_topic
        self._requests_topic = requests_topic
        self._deadletter_topic = deadletter_topic
        self._clock = clock
        self._outputs: list[Output] = []
        self._read: dict[Source, int] = {}  # the next offset of each partition read live
        self._committed: dict[Source, int] = {}
        self._committing: dict[Source, int] = {}
        # While the core decides on evidence (the retrain debounce): the offset of the partial that
        # raised its first alert. Nothing from there on is committed until the request is decided,
        # so that after a crash the evidence is raised live again, not only replayed.
        self._deciding_from: dict[Source, int] = {}
        self._opened_at = clock()

    @property
    def input_topics(self) -> Sequence[str]:
        return (self._partials_topic,)

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        self._core.reset(judging=bool(assignment))
        self._outputs, self._read, self._committing, self._deciding_from = [], {}, {}, {}
        self._committed = {source: offset for source, offset in committed.items() if offset >= 0}
        while assignment and not self._requests_read(5.0):
            logger.info("waiting for the retrain requests sent before judging")

    def replay(self, message: Message) -> None:
        self._take(message, live=False)

    def add(self, message: Message) -> None:
        source, offset = (message.topic() or "", message.partition() or 0), message.offset() or 0
        deciding = self._core.deciding
        self._take(message, live=True)
        if not deciding and self._core.deciding:
            self._deciding_from = {source: offset}
        self._read[source] = offset + 1

    def at_end(self, sources: Collection[Source]) -> None:
        return None

    def due(self) -> bool:
        if self._outputs or self._core.request_due():
            return True
        return bool(self._to_commit()) and self._clock() - self._opened_at >= self._settings.commit_interval_seconds

    def held_back(self) -> Collection[Source]:
        return ()

    def read_limit(self) -> int:
        return self._settings.batch_size

    def resumed(self) -> None:
        return None

    def checkpoint(self, *, final: bool) -> Checkpoint:
        request = self._core.due_request()
        if request is not None:
            self._outputs.append(self._request_output(request))
        if not self._core.deciding:
            self._deciding_from = {}
        self._committing = self._to_commit()
        return Checkpoint(list(self._outputs), dict(self._committing))

    def store(self) -> None:
        return None

    def committed(self) -> None:
        self._committed.update(self._committing)
        self._outputs, self._committing = [], {}
        self._opened_at = self._clock()

    def _to_commit(self) -> dict[Source, int]:
        """The offsets a checkpoint commits now: what was read, but not past undecided evidence."""
        offsets = {source: min(read, self._deciding_from.get(source, read)) for source, read in self._read.items()}
        return {source: offset for source, offset in offsets.items() if self._committed.get(source) != offset}

    def _take(self, message: Message, *, live: bool) -> None:
        try:
            partial = Partial.decode(message.value() or b"")
        except (ValueError, KeyError, TypeError) as invalid:
            if live:
                self._outputs.append(
                    dead_letter(self._deadletter_topic, SERVICE, message, code="invalid_partial", reason=str(invalid))
                )
                metrics.DEADLETTERS.labels(message.topic() or "").inc()
            return
        for alert in self._core.apply(partial, live=live):
            self._outputs.append(self._alert_output(alert))

    def _alert_output(self, alert: DriftAlert) -> Output:
        logger.warning(
            "alert",
            extra={
                "alert_id": alert.alert_id,
                "model_version": alert.model_version,
                "subject": alert.subject,
                "detector": alert.detector,
                "statistic": alert.statistic,
                "threshold": alert.threshold,
            },
        )
        return Output(self._alerts_topic, alert.model_name.encode(), alert.SerializeToString(), PROTOBUF_HEADERS)

    def _request_output(self, request: RetrainRequest) -> Output:
        logger.warning(
            "retrain requested",
            extra={"request_id": request.request_id, "reason": request.reason, "evidence": len(request.evidence)},
        )
        return Output(self._requests_topic, request.model_name.encode(), request.SerializeToString(), PROTOBUF_HEADERS)


def judge_stream(settings: MonitorSettings, stage: JudgeStage) -> StreamRuntime:
    return StreamRuntime(
        settings,
        stage,
        group_id=GROUP_ID,
        transactional_id=f"monitor-judge-{settings.instance_id}",
        guarantee=ProcessingGuarantee.AT_LEAST_ONCE,
        max_messages=settings.batch_size,
        poll_timeout_seconds=0.1,
    )
