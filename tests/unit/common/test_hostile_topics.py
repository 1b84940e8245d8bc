"""Hostile records on consumed topics: random bytes, empty values, truncated protobuf, a valid
protobuf of another message type, JSON where protobuf is expected, oversized values. Each
stage that reads the topic sends each one to the dead-letter topic with a reason (or, where the
bytes happen to decode as a valid record, processes it as one), never raises, and loses none of
the valid records around them. Random bytes come from Hypothesis."""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis.strategies as st
import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings

from fraudstream_cli.backfill import label_events, transaction_events
from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.monitoring_pb2 import DriftAlert, RetrainRequest
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, Transaction
from fraudstream_common.settings import DEVELOPMENT_RETRAIN_REQUEST_SECRET
from fraudstream_common.signing import sign_request
from fraudstream_common.timestamps import timestamp_of
from fraudstream_common.topics import Topic
from fraudstream_inference.settings import InferenceSettings
from fraudstream_inference.stream import ScoringStage
from fraudstream_ingest.core import IngestCore
from fraudstream_ingest.settings import IngestSettings
from fraudstream_ingest.stream import IngestStage
from fraudstream_monitor.counting import CountingStage
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from fraudstream_trainer.consumer import RequestStage
from fraudstream_trainer.pipeline import Outcome, TrainRequest
from fraudstream_trainer.settings import TrainerSettings
from tests.unit.features.pipeline import Pipeline
from tests.unit.ingest.test_core import InMemoryDeduplicator, raw
from tests.unit.kafka_fakes import FakeMessage
from tests.unit.monitor.fixtures import InMemoryVersions, columns, predictions, reference_of

VALID_TRANSACTION = Transaction(
    transaction_id="tx-valid",
    customer_id="c1",
    terminal_id="t1",
    amount=12.5,
    currency="EUR",
    event_time=timestamp_of(1_600_000_000),
).SerializeToString()
VALID_LABEL = Label(
    transaction_id="tx-valid",
    terminal_id="t1",
    transaction_time=timestamp_of(1_600_000_000),
    is_fraud=True,
    label_time=timestamp_of(1_600_086_400),
).SerializeToString()

# The same corpus for every protobuf topic: what a broken or hostile producer writes.
HOSTILE: list[bytes] = [
    b"",
    b"\xff\xfe\xfd\xfc",
    VALID_TRANSACTION[:-5],  # truncated
    DriftAlert(alert_id="a", subject="tx_amount", statistic=3.0).SerializeToString(),  # another type
    b'{"transaction_id": "tx-json", "customer_id": "c1", "amount": 10}',  # JSON, not protobuf
    b"\x0a" + b"\x80" * 9 + b"\x01",  # a length that overflows
    b"\x0a\xff\xff\xff\x0f" + b"x" * 64,  # a length far past the end
    b"x" * 1_000_000,  # oversized
]


def test_the_features_stages_dead_letter_every_hostile_record_and_enrich_every_valid_one() -> None:
    world = simulate(SimulationConfig(n_customers=40, n_terminals=80, nb_days=10))
    transactions = list(transaction_events(world.transactions))[:300]
    labels = list(label_events(world.labels))[:80]
    pipeline = Pipeline()
    for n, value in enumerate(HOSTILE):
        pipeline.topics.append(Topic.TRANSACTIONS, n % 4, f"h{n}".encode(), value, [])
        pipeline.topics.append(Topic.LABELS, n % 4, f"h{n}".encode(), value, [])
    pipeline.produce_history(transactions, labels)
    pipeline.run()
    letters = [DeadLetter.FromString(m.value() or b"") for m in pipeline.topics.of(Topic.DEADLETTER)]
    enriched = {e.transaction.transaction_id for e in pipeline.enriched()}
    assert {t.transaction_id for t in transactions} <= enriched
    assert len(letters) + len(enriched - {t.transaction_id for t in transactions}) == 2 * len(HOSTILE)
    assert all(letter.error_code and letter.reason for letter in letters)


def ingest_stage() -> tuple[IngestStage, IngestSettings]:
    ingest = IngestSettings(topic_prefix="p.", batch_max_messages=100)
    return IngestStage(ingest, IngestCore(ingest, InMemoryDeduplicator())), ingest  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_ingest_dead_letters_random_bytes_and_keeps_the_valid_records(values: list[bytes]) -> None:
    stage, _ = ingest_stage()
    stage.add(FakeMessage(raw("first"), 0))  # type: ignore[arg-type]
    for offset, value in enumerate(values, start=1):
        stage.add(FakeMessage(value, offset))  # type: ignore[arg-type]
    stage.add(FakeMessage(raw("last"), len(values) + 1))  # type: ignore[arg-type]
    outputs = stage.checkpoint(final=False).outputs
    valid = [Transaction.FromString(o.value) for o in outputs if o.topic == "p.transactions"]
    letters = [DeadLetter.FromString(o.value) for o in outputs if o.topic == "p.deadletter"]
    assert {"first", "last"} <= {t.transaction_id for t in valid}
    assert len(valid) + len(letters) == len(values) + 2
    assert all(letter.error_code and letter.reason for letter in letters)


def test_ingest_dead_letters_the_hostile_corpus() -> None:
    stage, _ = ingest_stage()
    for offset, value in enumerate([*HOSTILE, VALID_LABEL, orjson.dumps({"transaction_id": 7})]):
        stage.add(FakeMessage(value, offset))  # type: ignore[arg-type]
    outputs = stage.checkpoint(final=False).outputs
    assert {o.topic for o in outputs} == {"p.deadletter"}
    assert len(outputs) == len(HOSTILE) + 2


class Trainer:
    def __init__(self) -> None:
        self.asked: list[TrainRequest] = []

    def handle(self, request: TrainRequest) -> Any:
        self.asked.append(request)

        class Result:
            outcome = Outcome.DUPLICATE
            reasons: tuple[str, ...] = ()
            version = None
            run_id = None

        return Result()


def test_the_trainer_dead_letters_every_hostile_request_and_answers_the_signed_one() -> None:
    trainer = Trainer()
    stage = RequestStage(TrainerSettings(), trainer, "retrain.requests", "deadletter")  # type: ignore[arg-type]
    signed = sign_request(
        RetrainRequest(request_id="r-1", model_name="fraud-detector", reason="drift"),
        DEVELOPMENT_RETRAIN_REQUEST_SECRET,
    )
    corpus = [*HOSTILE, VALID_TRANSACTION, signed.SerializeToString()]
    letters = []
    for offset, value in enumerate(corpus):
        stage.add(FakeMessage(value, offset, topic_="retrain.requests"))  # type: ignore[arg-type]
        checkpoint = stage.checkpoint(final=False)
        assert checkpoint.offsets == {("retrain.requests", 0): offset + 1}  # committed, so it never stalls
        letters += [DeadLetter.FromString(o.value) for o in checkpoint.outputs]
        stage.committed()
    assert [r.request_id for r in trainer.asked] == ["r-1"]
    assert len(letters) == len(corpus) - 1
    assert {letter.error_code for letter in letters} <= {"invalid_retrain_request", "unsigned_retrain_request"}


def test_the_monitor_dead_letters_every_hostile_prediction_and_label_and_counts_the_valid_ones() -> None:
    rng = np.random.default_rng(0)
    versions = InMemoryVersions()
    versions.publish("1", reference_of(columns(rng, 2000)))
    stage = CountingStage(
        MonitorSettings(),
        versions,
        predictions_topic="predictions",
        labels_topic="labels",
        partials_topic="monitor.partials",
        deadletter_topic="deadletter",
    )
    stage.restore([("predictions", 0), ("labels", 0)], {}, {})
    valid = predictions(rng, range(2), 20)
    records = [(topic, value) for value in HOSTILE for topic in ("predictions", "labels")]
    records += [("predictions", p.SerializeToString()) for p in valid]
    offsets = {"predictions": 0, "labels": 0}
    for topic, value in records:
        stage.add(FakeMessage(value, offsets[topic], topic_=topic))  # type: ignore[arg-type]
        offsets[topic] += 1
    checkpoint = stage.checkpoint(final=False)
    letters = [DeadLetter.FromString(o.value) for o in checkpoint.outputs if o.topic == "deadletter"]
    assert checkpoint.offsets == {("predictions", 0): offsets["predictions"], ("labels", 0): offsets["labels"]}
    assert len(letters) == 2 * len(HOSTILE)
    assert all(letter.error_code and letter.reason for letter in letters)
    assert any(o.topic == "monitor.partials" for o in checkpoint.outputs)  # the valid ones were counted


def test_inference_dead_letters_every_hostile_enriched_record() -> None:
    class Core:
        ready = True

    loop = asyncio.new_event_loop()
    try:
        stage = ScoringStage(InferenceSettings(), Core(), loop)  # type: ignore[arg-type]
        half = EnrichedTransaction(transaction=Transaction(transaction_id="tx-1")).SerializeToString()
        for offset, value in enumerate([*HOSTILE, half]):
            stage.add(FakeMessage(value, offset, topic_="transactions.enriched"))  # type: ignore[arg-type]
        checkpoint = stage.checkpoint(final=False)
    finally:
        loop.close()
    letters = [DeadLetter.FromString(o.value) for o in checkpoint.outputs]
    assert [letter.error_code for letter in letters] == ["invalid_enriched"] * (len(HOSTILE) + 1)
    assert "missing transaction.customer_id" in letters[-1].reason
    assert checkpoint.offsets == {("transactions.enriched", 0): len(HOSTILE) + 1}
