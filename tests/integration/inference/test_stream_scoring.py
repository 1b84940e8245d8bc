"""Stream scoring: every record of `transactions.enriched` scored with the vector the features
service computed for it, its prediction on `predictions`; a record seen again keeps its first
decision; an undecodable one goes to `deadletter` with its reason. Batches of 16 or more go to
the version's tensor graph (from the registry, beside its TreeEnsemble graph), on the CPU here
as it would go to a GPU: the scores are the native model's either way."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fraudstream_cli.backfill import backfill
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.schemas.v1.prediction_pb2 import ModelRole, Prediction, Transport
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, Transaction
from fraudstream_common.timestamps import timestamp_of
from fraudstream_common.topics import Topic
from tests.integration.inference.serving import Served, serve
from tests.platform import PrivateRedis, Topics, drain, producer

pytestmark = pytest.mark.integration


@pytest.fixture
def served(topics: Topics, tmp_path: Path, private_redis: PrivateRedis) -> Iterator[Served]:
    served = serve(topics, tmp_path, private_redis, FRAUDSTREAM_TENSOR_GRAPH_MIN_ROWS="16")
    yield served
    assert served.service.terminate() == 0


def test_enriched_records_are_scored_once_each_and_bad_ones_dead_lettered(served: Served, topics: Topics) -> None:
    features = backfill(served.world.transactions, served.world.labels).tail(300)
    kafka = producer()
    records = []
    for row in features.to_dict("records"):
        record = EnrichedTransaction(
            transaction=Transaction(
                transaction_id=f"s-{row['transaction_id']}",
                customer_id=str(row["customer_id"]),
                terminal_id=str(row["terminal_id"]),
                amount=float(row["tx_amount"]),
                event_time=timestamp_of(row["event_time"].timestamp()),
            ),
            feature_names=list(FEATURE_NAMES),
            feature_values=[float(row[name]) for name in FEATURE_NAMES],
            enriched_time=timestamp_of(time.time()),
        )
        records.append(record)
        kafka.produce(
            topics(Topic.TRANSACTIONS_ENRICHED), record.SerializeToString(), record.transaction.customer_id.encode()
        )
    kafka.produce(topics(Topic.TRANSACTIONS_ENRICHED), b"\xff\xfenot a record", b"x")
    assert kafka.flush(10) == 0
    drain(topics(Topic.PREDICTIONS), expected=300, quiet=1)
    # The first ten again, later, as a replay after a crash would bring them.
    for record in records[:10]:
        kafka.produce(
            topics(Topic.TRANSACTIONS_ENRICHED), record.SerializeToString(), record.transaction.customer_id.encode()
        )
    assert kafka.flush(10) == 0

    predictions = [Prediction.FromString(r.value) for r in drain(topics(Topic.PREDICTIONS), expected=310, quiet=2)]
    assert len(predictions) == 310
    by_id: dict[str, list[Prediction]] = {}
    for prediction in predictions:
        by_id.setdefault(prediction.transaction_id, []).append(prediction)
    assert set(by_id) == {r.transaction.transaction_id for r in records}
    first = {tid: ps[0] for tid, ps in by_id.items()}
    for tid, ps in by_id.items():
        assert {(p.score, p.decision, p.model_version) for p in ps} == {(first[tid].score, first[tid].decision, "1")}
    assert {p.transport for p in predictions} == {Transport.TRANSPORT_STREAM}
    assert {p.model_role for p in predictions} == {ModelRole.MODEL_ROLE_CHAMPION}

    rows = np.asarray([list(r.feature_values) for r in records])
    native = served.native_scores(rows)
    np.testing.assert_allclose([first[r.transaction.transaction_id].score for r in records], native, atol=1e-5)

    runs = served.service.metric_samples("fraudstream_inference_scoring_runs_total")
    assert runs.get('{graph="tensor",provider="CPUExecutionProvider"}', 0) > 0, runs

    (letter_record,) = drain(topics(Topic.DEADLETTER), expected=1, quiet=1)
    letter = DeadLetter.FromString(letter_record.value)
    assert (letter.service, letter.error_code) == ("inference", "invalid_enriched")
    assert letter.original_value == b"\xff\xfenot a record"
