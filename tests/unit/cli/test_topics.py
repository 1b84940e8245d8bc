"""Partition counts: the shared streams take the deployment's count together (co-partitioned
topics stay so); the single-partition topics keep theirs."""

from __future__ import annotations

from fraudstream_common.topics import TOPIC_SPECS, Topic, topic_partitions


def test_shared_streams_take_the_stream_partitions_and_the_rest_keep_theirs() -> None:
    counts = topic_partitions("p.", stream_partitions=12)
    assert len(counts) == len(TOPIC_SPECS)
    for joined in (
        (Topic.TRANSACTIONS, Topic.TRANSACTIONS_ENRICHED, Topic.FEATURES_CUSTOMER_STATE),
        (Topic.LABELS, Topic.PREDICTIONS),
        (Topic.FEATURES_BY_TERMINAL, Topic.FEATURES_TERMINAL_STATE),
    ):
        assert {counts[f"p.{t.value}"] for t in joined} == {12}
    for single in (Topic.MONITOR_PARTIALS, Topic.MODELS_PUBLISHED, Topic.RETRAIN_REQUESTS, Topic.DEADLETTER):
        assert counts[f"p.{single.value}"] == 1
