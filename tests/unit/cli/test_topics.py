"""Partition counts: the shared streams take the deployment's count together (co-partitioned
topics stay so); the single-partition topics keep theirs."""

from __future__ import annotations

from fraudstream_common.topics import TOPIC_SPECS, Topic, partition_layout_errors, topic_partitions


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


def test_a_changelog_is_held_to_the_partition_count_of_the_topic_whose_state_it_keeps() -> None:
    counts = topic_partitions("p.", stream_partitions=4)
    assert partition_layout_errors(counts, "p.") == []
    counts["p.transactions"] = 8  # grown alone, as `kafka-topics --alter` allows
    counts["p.labels"] = 6  # no state of its own: it may differ
    errors = [str(error) for error in partition_layout_errors(counts, "p.")]
    assert len(errors) == 1
    assert errors[0].startswith("p.features.customer-state has 4 partitions and p.transactions 8")
    counts["p.features.customer-state"] = 8
    counts["p.features.by-terminal"] = 2
    assert [str(e).split(":")[0] for e in partition_layout_errors(counts, "p.")] == [
        "p.features.terminal-state has 4 partitions and p.features.by-terminal 2"
    ]
