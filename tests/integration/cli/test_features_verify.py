"""`fraudstream features verify` on the real broker: it finds a vector that differs from the
backfill, tells a flagged one from an unflagged one, and counts a transaction not enriched yet
and one enriched twice.
(The features service's own output is verified in tests/integration/features/test_event_time.py.)"""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Producer
from typer.testing import CliRunner

from fraudstream_cli.backfill import backfill
from fraudstream_cli.main import app
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction, Transaction
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.topics import Topic
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from fraudstream_simulator.sinks import Pacing, replay_to_kafka
from tests.platform import PLATFORM, Topics, producer

pytestmark = pytest.mark.integration


def test_verify_finds_the_vector_the_stream_got_wrong(topics: Topics) -> None:
    world = simulate(SimulationConfig(n_customers=50, n_terminals=100, nb_days=15))
    expected = backfill(world.transactions, world.labels).set_index("transaction_id")
    settings = ServiceSettings(kafka_bootstrap_servers=PLATFORM.kafka_bootstrap, topic_prefix=topics.prefix)
    replay_to_kafka(world, settings, pacing=Pacing.fast(), transactions_topic=Topic.TRANSACTIONS)

    kafka = producer()
    ids = list(expected.index)
    wrong, wrong_but_early, missing = ids[100], ids[200], ids[300]
    for transaction_id in ids:
        if transaction_id == missing:
            continue
        vector = expected.loc[transaction_id, list(FEATURE_NAMES)].to_dict()
        if transaction_id == wrong:
            vector["customer_nb_tx_7d"] += 1
        if transaction_id == wrong_but_early:
            vector["terminal_risk_30d"] += 0.5
        produce_enriched(kafka, topics, transaction_id, vector, early=transaction_id == wrong_but_early)
    produce_enriched(kafka, topics, ids[400], expected.loc[ids[400], list(FEATURE_NAMES)].to_dict(), early=False)
    assert kafka.flush(60) == 0

    environment = {
        "FRAUDSTREAM_KAFKA_BOOTSTRAP_SERVERS": PLATFORM.kafka_bootstrap,
        "FRAUDSTREAM_TOPIC_PREFIX": topics.prefix,
    }
    result = CliRunner().invoke(app, ["features", "verify", "--json"], env=environment)
    assert result.exit_code == 1, result.output
    verified = json.loads(result.output)
    assert verified["compared"] == len(ids) - 1
    assert verified["not_enriched"] == 1
    assert verified["enriched_twice"] == 1
    assert verified["vectors"] == {"neither": len(ids) - 2, "early": 1}
    assert verified["differing"] == {"neither": 1, "early": 1}
    assert verified["features"] == {"customer_nb_tx_7d": 1}
    assert verified["examples"] == [wrong]
    assert verified["holds"] is False


def produce_enriched(
    kafka: Producer, topics: Topics, transaction_id: str, vector: dict[str, float], *, early: bool
) -> None:
    enriched = EnrichedTransaction(
        transaction=Transaction(transaction_id=transaction_id),
        feature_names=FEATURE_NAMES,
        feature_values=[vector[name] for name in FEATURE_NAMES],
        early=early,
    )
    kafka.produce(topics(Topic.TRANSACTIONS_ENRICHED), enriched.SerializeToString(), transaction_id.encode())
