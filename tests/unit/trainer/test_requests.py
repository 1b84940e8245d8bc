"""The trainer's request stage: a request whose answer keeps failing is tried again until
`request_give_up_seconds` have passed, then goes to the dead-letter topic with its last error
and is committed, so that the requests behind it are answered."""

from __future__ import annotations

from typing import Any

import pytest

from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest
from fraudstream_common.settings import DEVELOPMENT_RETRAIN_REQUEST_SECRET
from fraudstream_common.signing import sign_request
from fraudstream_trainer.consumer import RequestStage
from fraudstream_trainer.pipeline import Outcome, RunAbandonedError, TrainRequest
from fraudstream_trainer.settings import TrainerSettings
from tests.unit.kafka_fakes import FakeMessage


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class FailingTrainer:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.asked: list[str] = []

    def handle(self, request: TrainRequest) -> Any:
        self.asked.append(request.request_id)
        if self.error is not None:
            raise self.error

        class Result:
            outcome = Outcome.DUPLICATE
            reasons: tuple[str, ...] = ()
            version = None
            run_id = None

        return Result()


def message(request_id: str, offset: int) -> FakeMessage:
    request = sign_request(
        RetrainRequest(request_id=request_id, model_name="fraud-detector", reason="drift"),
        DEVELOPMENT_RETRAIN_REQUEST_SECRET,
    )
    return FakeMessage(request.SerializeToString(), offset, topic_="retrain.requests")


def test_a_request_that_keeps_failing_is_given_up_with_its_error_and_the_next_is_answered() -> None:
    clock = Clock()
    trainer = FailingTrainer(ValueError("the run found no fraud in its window"))
    settings = TrainerSettings(request_give_up_seconds=900)
    stage = RequestStage(settings, trainer, "retrain.requests", "deadletter", clock=clock)  # type: ignore[arg-type]
    stage.add(message("r-1", 0))  # type: ignore[arg-type]
    for advance in (0, 300, 299):  # within the 900 s: the runtime tries again with backoff
        clock.now += advance
        with pytest.raises(ValueError, match="no fraud"):
            stage.checkpoint(final=False)
    clock.now += 301
    checkpoint = stage.checkpoint(final=False)
    (letter,) = [DeadLetter.FromString(o.value) for o in checkpoint.outputs]
    assert (letter.error_code, letter.reason) == ("retrain_failed", "ValueError: the run found no fraud in its window")
    assert checkpoint.offsets == {("retrain.requests", 0): 1}
    stage.committed()

    trainer.error = None
    stage.add(message("r-2", 1))  # type: ignore[arg-type]
    assert stage.checkpoint(final=False).offsets == {("retrain.requests", 0): 2}
    assert trainer.asked == ["r-1"] * 4 + ["r-2"]


def test_a_run_abandoned_on_stop_is_never_given_up() -> None:
    clock = Clock()
    trainer = FailingTrainer(RunAbandonedError("stopping"))
    settings = TrainerSettings(request_give_up_seconds=1)
    stage = RequestStage(settings, trainer, "retrain.requests", "deadletter", clock=clock)  # type: ignore[arg-type]
    stage.add(message("r-1", 0))  # type: ignore[arg-type]
    clock.now += 10
    with pytest.raises(RunAbandonedError):
        stage.checkpoint(final=False)
