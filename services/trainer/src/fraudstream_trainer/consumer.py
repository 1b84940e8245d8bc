"""The trainer's input: `retrain.requests`, the optional schedule and the first model's
request (fraudstream_trainer.first_model), as a stage of the shared stream runtime
(at-least-once).

One request at a time. Its offset is committed only after the request was answered (trained
and decided, published where promoted) or deliberately skipped (a duplicate, within the
cooldown, for another model); an invalid record goes to the dead-letter topic with that commit.
While answering fails (MLflow, Feast or Kafka failing, not the request), the runtime pauses the
topic and tries the request again with backoff. A crash or a stop mid-run leaves the offset where
it was, and the request is redone (the pipeline's idempotency by request id makes a redone
answered request a duplicate). A run can take minutes, so the consumer's poll interval allows
`request_max_seconds` between polls.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from confluent_kafka import Message
from google.protobuf.message import DecodeError

from fraudstream_common.deadletter import Output, dead_letter
from fraudstream_common.kafka import usable
from fraudstream_common.logging import printed_as_logs
from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest
from fraudstream_common.settings import ProcessingGuarantee
from fraudstream_common.signing import verify_request
from fraudstream_common.stream import Checkpoint, Source, StreamRuntime
from fraudstream_trainer import metrics
from fraudstream_trainer.first_model import FirstModel
from fraudstream_trainer.pipeline import Outcome, RunAbandonedError, Trainer, TrainRequest
from fraudstream_trainer.settings import TrainerSettings

logger = logging.getLogger(__name__)

GROUP_ID = "trainer"
SERVICE = "trainer"


class RequestStage:
    name = "retrain-requests"
    changelog_topic = None

    def __init__(
        self,
        settings: TrainerSettings,
        trainer: Trainer,
        requests_topic: str,
        deadletter_topic: str,
        *,
        first_model: FirstModel | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._trainer = trainer
        self._requests_topic = requests_topic
        self._deadletter_topic = deadletter_topic
        self._schedule = Schedule(settings.schedule_interval_seconds, clock)
        self._first_model = first_model
        self._clock = clock
        self._pending: Message | None = None
        self._failing: tuple[str, float] | None = None  # the request whose answer fails, since when

    @property
    def input_topics(self) -> Sequence[str]:
        return (self._requests_topic,)

    def restore(
        self, assignment: Sequence[Source], changelog: Mapping[bytes, bytes], committed: Mapping[Source, int]
    ) -> None:
        self._pending = None

    def add(self, message: Message) -> None:
        self._pending = message

    def at_end(self, sources: Collection[Source]) -> None:
        """Nothing waits on the end of a partition."""

    def due(self) -> bool:
        return self._pending is not None or self._own_request() is not None

    def held_back(self) -> Collection[Source]:
        return ()

    def read_limit(self) -> int:
        return 1

    def resumed(self) -> None:
        """Nothing waits on time."""

    def checkpoint(self, *, final: bool) -> Checkpoint:
        """Answers the request read (or the schedule's); raises while answering fails."""
        if final:
            return Checkpoint()  # no run starts on the way out; the request stays uncommitted
        message = self._pending
        if message is None:
            request = self._own_request()
            if request is not None:
                if self._answered_or_given_up(request) is not None:
                    logger.error("own request given up", extra={"request_id": request.request_id})
                self._schedule.done(request)
                if self._first_model is not None:
                    self._first_model.done(request)
            return Checkpoint()
        outputs = self._take(message)
        source = (message.topic() or "", message.partition() or 0)
        return Checkpoint(outputs, {source: (message.offset() or 0) + 1})

    def store(self) -> None:
        """The pipeline wrote what it had to while answering."""

    def committed(self) -> None:
        self._pending = None

    def _own_request(self) -> TrainRequest | None:
        """The schedule's request, else the first model's."""
        request = self._schedule.due()
        if request is None and self._first_model is not None:
            request = self._first_model.due()
        return request

    def _take(self, message: Message) -> list[Output]:
        """Answers one record; the dead letter it makes, if it is invalid."""
        if not usable(message):
            return []
        try:
            request = RetrainRequest.FromString(message.value() or b"")
            if not request.request_id:
                raise ValueError("request_id is empty: it is the request's idempotency key")
        except (DecodeError, ValueError) as invalid:
            metrics.REQUESTS.labels("invalid").inc()
            return [
                dead_letter(
                    self._deadletter_topic, SERVICE, message, code="invalid_retrain_request", reason=str(invalid)
                )
            ]
        if not verify_request(request, self._settings.retrain_request_secret.get_secret_value()):
            metrics.REQUESTS.labels("refused").inc()
            logger.warning(
                "retrain request refused: not signed with the retrain request secret",
                extra={"request_id": request.request_id, "requested_by": request.requested_by},
            )
            return [
                dead_letter(
                    self._deadletter_topic,
                    SERVICE,
                    message,
                    code="unsigned_retrain_request",
                    reason="not signed with FRAUDSTREAM_RETRAIN_REQUEST_SECRET: only the monitor may ask for a model",
                )
            ]
        if request.model_name and request.model_name != self._settings.registered_model:
            logger.info("retrain request for another model skipped", extra={"request_id": request.request_id})
            metrics.REQUESTS.labels("other_model").inc()
            return []
        train_request = TrainRequest(
            request.request_id, request.reason or "unspecified", request.requested_by, force=request.force
        )
        error = self._answered_or_given_up(train_request)
        if error is None:
            return []
        return [dead_letter(self._deadletter_topic, SERVICE, message, code="retrain_failed", reason=error)]

    def _answered_or_given_up(self, request: TrainRequest) -> str | None:
        """Answers the request; None once answered. While answering fails it raises (the
        runtime tries again with backoff) until the request has failed for
        `request_give_up_seconds`: then the last error, and the request is given up."""
        try:
            self._answer(request)
        except RunAbandonedError:
            raise
        except Exception as exc:
            now = self._clock()
            if self._failing is None or self._failing[0] != request.request_id:
                self._failing = (request.request_id, now)
            if now - self._failing[1] < self._settings.request_give_up_seconds:
                raise
            self._failing = None
            metrics.REQUESTS.labels("failed").inc()
            logger.error(
                "retrain request given up after failing for %.0f s",
                self._settings.request_give_up_seconds,
                extra={"request_id": request.request_id},
                exc_info=True,
            )
            return f"{type(exc).__name__}: {exc}"[:2000]
        self._failing = None
        return None

    def _answer(self, request: TrainRequest) -> None:
        # MLflow prints links to the run and registration notices: records of the service's log.
        # (`fraudstream train` calls the trainer itself and keeps them on stderr.)
        with printed_as_logs(logging.getLogger("mlflow")):
            result = self._trainer.handle(request)
        if result.outcome in (Outcome.DUPLICATE, Outcome.COOLDOWN):
            metrics.REQUESTS.labels(result.outcome.value).inc()
        else:
            metrics.REQUESTS.labels("trained").inc()
        logger.info(
            "retrain request answered",
            extra={
                "request_id": request.request_id,
                "reason": request.reason,
                "outcome": result.outcome.value,
                "reasons": list(result.reasons),
                "version": result.version,
                "run_id": result.run_id,
            },
        )


class Schedule:
    """A request per `interval` seconds of wall time (0: never). Its id names the interval, so
    that a restart within it does not train again (the pipeline's idempotency by request id)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.time) -> None:
        self._interval = interval
        self._clock = clock
        self._answered: str | None = None

    def due(self) -> TrainRequest | None:
        if self._interval <= 0:
            return None
        slot = math.floor(self._clock() / self._interval)
        request_id = f"schedule-{self._interval:g}s-{slot}"
        if request_id == self._answered:
            return None
        return TrainRequest(request_id, "schedule", "trainer")

    def done(self, request: TrainRequest) -> None:
        self._answered = request.request_id


def requests_stream(
    settings: TrainerSettings,
    trainer_for: Callable[[Callable[[], bool]], Trainer],
    requests_topic: str,
    deadletter_topic: str,
    first_model: FirstModel | None = None,
) -> StreamRuntime:
    """`trainer_for(should_stop)`: the pipeline, told to abandon its run when the stream stops."""
    streams: list[StreamRuntime] = []
    trainer = trainer_for(lambda: streams[0].stop_requested())  # noqa: PLW0108 (the stream comes later)
    stream = StreamRuntime(
        settings,
        RequestStage(settings, trainer, requests_topic, deadletter_topic, first_model=first_model),
        group_id=GROUP_ID,
        transactional_id=f"trainer-{settings.instance_id}",
        guarantee=ProcessingGuarantee.AT_LEAST_ONCE,
        max_messages=1,
        poll_timeout_seconds=0.5,
        store_retry_max_seconds=60.0,
        # Whatever fails while answering is retried with backoff, until the stage gives the
        # request up (request_give_up_seconds); an invalid one goes to the dead-letter topic
        # without failing. A run abandoned on stop ends the retries with the stream, its request
        # uncommitted.
        retried=(Exception,),
        consumer_overrides={"max.poll.interval.ms": settings.request_max_seconds * 1000},
    )
    streams.append(stream)
    return stream
