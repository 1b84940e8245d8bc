"""The trainer's input: `retrain.requests`, and the optional schedule.

One request at a time. Its offset is committed only after the request was answered (trained
and decided, published where promoted) or deliberately skipped (a duplicate, within the
cooldown, for another model); an invalid record goes to the dead-letter topic first. A crash
mid-run leaves the offset where it was, and the request is redone (the pipeline's idempotency
by request id makes a redone answered request a duplicate). A run can take minutes, so the
consumer's poll interval allows `request_max_seconds` between polls.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from google.protobuf.message import DecodeError

from fraudstream_common.deadletter import dead_letter, produce_outputs
from fraudstream_common.kafka import consumer_config, producer_config, usable
from fraudstream_common.lifecycle import BlockingLoop
from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest
from fraudstream_trainer import metrics
from fraudstream_trainer.pipeline import Outcome, RunAbandonedError, RunResult, Trainer, TrainRequest
from fraudstream_trainer.settings import TrainerSettings

logger = logging.getLogger(__name__)

GROUP_ID = "trainer"
SERVICE = "trainer"


class RetrainConsumer(BlockingLoop):
    name = "retrain-requests"

    def __init__(
        self,
        settings: TrainerSettings,
        trainer_for: Callable[[Callable[[], bool]], Trainer],
        requests_topic: str,
        deadletter_topic: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`trainer_for(should_stop)`: the pipeline, told to abandon its run when we stop."""
        super().__init__()
        self._settings = settings
        self._trainer = trainer_for(self._stopping.is_set)
        self._requests_topic = requests_topic
        self._deadletter_topic = deadletter_topic
        self.last_result: RunResult | None = None
        self._schedule = Schedule(settings.schedule_interval_seconds, clock)
        self._retry_seconds = 0.0

    def _loop(self) -> None:
        settings = self._settings
        consumer = Consumer(
            consumer_config(
                settings,
                group_id=GROUP_ID,
                client_id=f"{settings.instance_id}-requests",
                overrides={"max.poll.interval.ms": settings.request_max_seconds * 1000},
            )
        )
        deadletters = Producer(producer_config(settings, client_id=f"{settings.instance_id}-deadletter"))
        try:
            consumer.subscribe([self._requests_topic])
            self._ready.set()
            while not self._stopping.is_set():
                message = consumer.poll(0.5)
                try:
                    if message is not None and self._take(message, deadletters):
                        consumer.commit(message=message, asynchronous=False)
                        self._retry_seconds = 0.0
                    self._run_schedule()
                except RunAbandonedError:
                    raise
                except Exception:
                    # MLflow, Feast or Kafka failing, not the request: read it again after a pause.
                    self._retry_seconds = min(max(2 * self._retry_seconds, 1.0), 60.0)
                    logger.exception("retrain request failed; retrying in %.0fs", self._retry_seconds)
                    if message is not None and message.error() is None:
                        consumer.seek(
                            TopicPartition(message.topic() or "", message.partition() or 0, message.offset() or 0)
                        )
                    self._stopping.wait(self._retry_seconds)
        except RunAbandonedError:
            logger.info("training run abandoned on stop; its request stays uncommitted")
        finally:
            deadletters.flush(30)
            consumer.close()

    def _take(self, message: Message, deadletters: Producer) -> bool:
        """Answers one record; True once it may be committed."""
        if not usable(message):
            return False
        try:
            request = RetrainRequest.FromString(message.value() or b"")
            if not request.request_id:
                raise ValueError("request_id is empty: it is the request's idempotency key")
        except (DecodeError, ValueError) as invalid:
            letter = dead_letter(
                self._deadletter_topic, SERVICE, message, code="invalid_retrain_request", reason=str(invalid)
            )
            produce_outputs(deadletters, [letter])
            if deadletters.flush(30):
                raise RuntimeError("the dead-letter record was not acknowledged") from invalid
            metrics.REQUESTS.labels("invalid").inc()
            return True
        if request.model_name and request.model_name != self._settings.registered_model:
            logger.info("retrain request for another model skipped", extra={"request_id": request.request_id})
            metrics.REQUESTS.labels("other_model").inc()
            return True
        self._answer(
            TrainRequest(request.request_id, request.reason or "unspecified", request.requested_by, force=request.force)
        )
        return True

    def _run_schedule(self) -> None:
        request = self._schedule.due()
        if request is not None:
            self._answer(request)
            self._schedule.done(request)

    def _answer(self, request: TrainRequest) -> None:
        result = self._trainer.handle(request)
        self.last_result = result
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
