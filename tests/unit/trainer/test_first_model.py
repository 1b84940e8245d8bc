"""The first model: asked for without a human step once the labelled history allows a holdout
after the feature warm-up, never while a model exists, and meanwhile the wait is said in words."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from mlflow.exceptions import MlflowException

from fraudstream_modelling.windows import Windows
from fraudstream_trainer.first_model import FirstModel, Span
from fraudstream_trainer.pipeline import Outcome, Trainer, TrainRequest
from fraudstream_trainer.settings import FEATURE_WARMUP_DAYS, TrainerSettings

START = pd.Timestamp("2018-04-01 00:03", tz="UTC")


class World:
    """What the first model looks at: a clock, the registry's answer, the stored labels."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.version: str | None = None
        self.registry_error: str | None = None
        self.span: Span | None = None
        self.span_reads = 0
        self.features_until: Callable[[], pd.Timestamp | None] | None = None  # None: not checked

    def aliased_version(self) -> str | None:
        if self.registry_error is not None:
            raise MlflowException(self.registry_error)
        return self.version

    def label_span(self) -> Span | None:
        self.span_reads += 1
        return self.span

    def first_model(self, **settings: object) -> FirstModel:
        return FirstModel(
            TrainerSettings(**{"first_model_check_seconds": 30.0, **settings}),  # type: ignore[arg-type]
            self.aliased_version,
            self.label_span,
            self.features_until,
            clock=lambda: self.now,
        )


def days_after_start(days: float) -> pd.Timestamp:
    return START + pd.Timedelta(days=days)


def test_the_warm_up_is_the_longest_feature_look_back() -> None:
    assert FEATURE_WARMUP_DAYS == 37  # a terminal's 30-day windows, 7 days behind its transactions


def test_with_no_labels_it_waits_for_labels() -> None:
    world = World()
    first = world.first_model()
    assert first.due() is None
    assert "labels" in (first.waiting_for() or "")


def test_it_asks_on_the_first_day_whose_holdout_begins_after_the_warm_up() -> None:
    world = World()
    first = world.first_model()
    # The history starts on 2018-04-01 at 00:03, so 04-02 is its first whole day: the features
    # are mature from 05-09, and a holdout of 7 days and a label delay of 7 need labels of 05-23.
    world.span = (START, pd.Timestamp("2018-05-22 23:59", tz="UTC"))
    assert first.due() is None
    assert "2018-05-23" in (first.waiting_for() or "")

    world.now += 30
    world.span = (START, pd.Timestamp("2018-05-23 00:10", tz="UTC"))
    request = first.due()
    assert request is not None
    assert request.request_id == "first-model-2018-05-23"
    assert request.force
    assert first.waiting_for() is None
    windows = Windows.ending_at(world.span[1], train_days=7, delay_days=7, holdout_days=7)
    assert windows.holdout_start == pd.Timestamp("2018-05-09", tz="UTC")
    assert windows.holdout_start >= START.ceil("D") + pd.Timedelta(days=FEATURE_WARMUP_DAYS)


def test_the_wait_says_about_when_from_the_pace_of_labels() -> None:
    world = World()
    first = world.first_model()
    world.span = (START, days_after_start(20))
    first.due()
    assert "in about" not in (first.waiting_for() or "")
    world.now += 60  # a simulated day a minute
    world.span = (START, days_after_start(21))
    first.due()
    assert "in about 31 min" in (first.waiting_for() or "")  # 05-23 is 31 days after 04-22 00:03, less 3 min


def test_it_looks_at_the_history_at_most_every_check_interval() -> None:
    world = World()
    first = world.first_model()
    world.span = (START, days_after_start(10))
    first.due()
    world.now += 29
    first.due()
    assert world.span_reads == 1
    world.now += 1
    first.due()
    assert world.span_reads == 2


def test_a_first_run_answered_without_a_model_is_tried_again_a_day_of_history_later() -> None:
    world = World()
    first = world.first_model()
    world.span = (START, days_after_start(60))
    request = first.due()
    assert request is not None
    first.done(request)  # refused, say, by a data check: still no model
    world.now += 30
    assert first.due() is None  # the same data would be refused again
    assert f"more labels or features than the refused first run {request.request_id}" in str(first.waiting_for())
    world.span = (START, days_after_start(61))
    world.now += 30
    later = first.due()
    assert later is not None
    assert later.request_id != request.request_id


def test_a_first_run_refused_while_features_were_landing_is_tried_again_once_more_are_written() -> None:
    world = World()
    written = [days_after_start(54)]
    world.features_until = lambda: written[0]
    first = world.first_model()
    world.span = (START, days_after_start(60))
    request = first.due()
    assert request is not None
    first.done(request)
    world.now += 30
    assert first.due() is None
    written[0] += pd.Timedelta(hours=2)
    world.now += 30
    again = first.due()
    assert again is not None
    assert again.request_id != request.request_id


def test_an_offline_store_that_holds_no_features_yet_is_waited_for() -> None:
    world = World()
    world.features_until = lambda: None
    first = world.first_model()
    world.span = (START, days_after_start(60))
    assert first.due() is None
    assert "written none yet" in str(first.waiting_for())


def test_once_a_model_exists_it_never_asks_nor_reads_the_history_again() -> None:
    world = World()
    first = world.first_model()
    world.span = (START, days_after_start(60))
    world.version = "3"
    assert first.due() is None
    assert first.waiting_for() is None
    world.version = None  # even if the alias is removed later: that is an operator's business
    world.now += 3600
    assert first.due() is None
    assert world.span_reads == 0


def test_while_the_registry_cannot_say_it_waits_and_does_not_train() -> None:
    world = World()
    first = world.first_model()
    world.span = (START, days_after_start(60))
    world.registry_error = "connection refused"
    assert first.due() is None
    assert "registry" in (first.waiting_for() or "")


def test_turned_off_it_never_asks() -> None:
    world = World()
    first = world.first_model(first_model=False)
    world.span = (START, days_after_start(60))
    assert first.due() is None
    assert world.span_reads == 0


def test_the_wait_is_recorded_when_it_changes_and_cleared_once_a_model_exists() -> None:
    world = World()
    notes: list[str | None] = []
    first = FirstModel(
        TrainerSettings(first_model_check_seconds=30.0),
        world.aliased_version,
        world.label_span,
        on_wait=notes.append,
        clock=lambda: world.now,
    )
    first.due()
    world.now += 30
    first.due()  # the same wait: not recorded again
    world.span = (START, days_after_start(10))
    world.now += 30
    first.due()
    world.version = "1"
    world.now += 30
    first.due()
    assert [note is None for note in notes] == [False, False, True]
    assert "labels" in (notes[0] or "")
    assert "2018-05-23" in (notes[1] or "")


def test_it_waits_for_the_features_of_the_holdout_when_labels_come_first() -> None:
    """Labels reach the trainer straight from their topic; transactions go through ingest and
    the features stage, so in a replayed history the offline store can be days behind."""
    world = World()
    written = [pd.Timestamp("2018-05-10", tz="UTC")]
    first = FirstModel(
        TrainerSettings(first_model_check_seconds=30.0),
        world.aliased_version,
        world.label_span,
        lambda: written[0],
        clock=lambda: world.now,
    )
    world.span = (START, pd.Timestamp("2018-05-24 03:00", tz="UTC"))
    assert first.due() is None
    assert "offline store up to 2018-05-17" in (first.waiting_for() or "")  # the holdout ends a delay before
    written[0] = pd.Timestamp("2018-05-17 00:01", tz="UTC")
    world.now += 30
    assert first.due() is not None


def test_a_run_whose_holdout_the_offline_store_does_not_hold_yet_is_refused_before_any_join() -> None:
    labels = pd.DataFrame(
        {
            "transaction_id": ["a"],
            "customer_id": ["c"],
            "terminal_id": ["t"],
            "transaction_time": [pd.Timestamp("2018-05-20", tz="UTC")],
            "is_fraud": [False],
            "label_time": [pd.Timestamp("2018-05-27", tz="UTC")],
            "source": ["test"],
        }
    )
    trainer = Trainer(
        TrainerSettings(mlflow_tracking_uri="http://127.0.0.1:9"),
        None,  # type: ignore[arg-type]
        lambda: labels,
        None,
        features_until=lambda: pd.Timestamp("2018-05-12", tz="UTC"),
    )
    result = trainer.run(TrainRequest("r", "test"))
    assert result.outcome is Outcome.DATA_CHECK_FAILED
    assert "offline store holds features up to 2018-05-12" in result.reasons[0]
