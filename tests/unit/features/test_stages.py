"""The customer and terminal stages together, in memory: the vectors equal the replay's
whatever the interleaving of partitions, a held transaction holds back no other, waiting is
bounded and flagged, watermarks ignore an event far ahead, bad input is dead-lettered, and a
restart from the changelog neither loses nor repeats a transaction."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from fraudstream_cli.backfill import label_events, transaction_events
from fraudstream_common.features.definitions import DAY, FEATURE_NAMES, TERMINAL_HORIZON
from fraudstream_common.features.history import LabelEvent, TransactionEvent, replay
from fraudstream_common.features.state import TerminalState
from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.schemas.v1.transaction_pb2 import (
    EnrichedTransaction,
    StreamWatermarks,
)
from fraudstream_common.timestamps import seconds_of
from fraudstream_common.topics import Topic
from fraudstream_features.records import KIND_WATERMARK, kind_headers
from fraudstream_features.settings import FeaturesSettings
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from tests.unit.features.pipeline import Pipeline, partition_of

START = 1_600_000_000.0


@pytest.fixture(scope="module")
def history() -> tuple[list[TransactionEvent], list[LabelEvent]]:
    world = simulate(SimulationConfig(n_customers=60, n_terminals=80, nb_days=20))
    return transaction_events(world.transactions), label_events(world.labels)


def forward_everything(pipeline: Pipeline, *, with_watermarks: bool) -> None:
    """The customer stage reads every input partition to its end and forwards all of it; the
    terminal stage reads it (without the watermarks: it then holds all it can)."""
    for message in pipeline.topics.of(Topic.TRANSACTIONS) + pipeline.topics.of(Topic.LABELS):
        pipeline.customers.add(message)  # type: ignore[arg-type]
    pipeline.customers.at_end(
        [(topic, partition) for topic in pipeline.customers.input_topics for partition in range(4)]
    )
    pipeline.clock.now += 1.0
    pipeline.customers.due()
    for output in pipeline.customers.checkpoint(final=False).outputs:
        if with_watermarks or output.headers != kind_headers(KIND_WATERMARK):
            pipeline.topics.produce(output)
    for message in pipeline.topics.of(Topic.FEATURES_BY_TERMINAL):
        pipeline.terminals.add(message)  # type: ignore[arg-type]


def vectors(pipeline: Pipeline) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for enriched in pipeline.enriched():
        assert enriched.transaction.transaction_id not in out, "enriched twice"
        assert list(enriched.feature_names) == list(FEATURE_NAMES)
        out[enriched.transaction.transaction_id] = list(enriched.feature_values)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_interleaving_of_partitions_gives_the_replays_vectors(
    history: tuple[list[TransactionEvent], list[LabelEvent]], seed: int
) -> None:
    transactions, labels = history
    pipeline = Pipeline(seed=seed)
    pipeline.produce_history(transactions, labels)
    pipeline.run(chunk=37)
    expected = {tx.transaction_id: [vector[n] for n in FEATURE_NAMES] for tx, vector in replay(transactions, labels)}
    assert vectors(pipeline) == expected
    assert not any(e.early or e.late for e in pipeline.enriched())
    assert pipeline.terminals.terminals.keys() == {tx.terminal_id for tx in transactions}


def test_a_transaction_far_ahead_holds_back_no_other(history: tuple[list[TransactionEvent], list[LabelEvent]]) -> None:
    transactions, labels = history
    pipeline = Pipeline(seed=4)
    middle = transactions[len(transactions) // 2].event_time
    live = TransactionEvent("live-1", "live-c", "live-t", START * 2, 10.0)
    pipeline.produce_history(
        [tx for tx in transactions if tx.event_time < middle], [lb for lb in labels if lb.label_time < middle]
    )
    pipeline.produce_transaction(live)  # in the middle of its customer's partition
    pipeline.produce_history(
        [tx for tx in transactions if tx.event_time >= middle], [lb for lb in labels if lb.label_time >= middle]
    )
    pipeline.run(chunk=5)
    enriched = {e.transaction.transaction_id: e for e in pipeline.enriched()}
    assert len(enriched) == len(transactions) + 1
    expected = {tx.transaction_id: [vector[n] for n in FEATURE_NAMES] for tx, vector in replay(transactions, labels)}
    replayed = {t: e for t, e in enriched.items() if t != "live-1"}
    assert {t: list(e.feature_values) for t, e in replayed.items()} == expected
    assert not any(e.early or e.late for e in replayed.values())
    assert enriched["live-1"].early  # ahead of what followed it in its partition


def test_a_transaction_waits_at_most_max_wait_then_goes_early() -> None:
    pipeline = Pipeline(settings=FeaturesSettings(max_wait_seconds=2.0))
    pipeline.produce_transaction(TransactionEvent("t1", "c1", "m1", START, 1.0))
    forward_everything(pipeline, with_watermarks=False)
    pipeline.terminals.due()
    assert not pipeline.terminals.checkpoint(final=False).outputs
    pipeline.clock.now += 2.5
    pipeline.terminals.due()
    [released] = [
        o for o in pipeline.terminals.checkpoint(final=False).outputs if o.topic == Topic.TRANSACTIONS_ENRICHED
    ]
    assert EnrichedTransaction.FromString(released.value).early


def test_a_transaction_whose_wait_ran_out_is_committed_without_more_input() -> None:
    """Traffic stops with a transaction held: when its wait runs out it goes, and the stage
    commits it then, not when the next input or the next terminal push comes."""
    pipeline = Pipeline(settings=FeaturesSettings(max_wait_seconds=2.0))
    pipeline.produce_transaction(TransactionEvent("t1", "c1", "m1", START, 1.0))
    forward_everything(pipeline, with_watermarks=False)
    pipeline.clock.now += pipeline.settings.push_interval_seconds
    assert pipeline.terminals.due()  # what was read is committed, the transaction still held
    assert not [o for o in pipeline.terminals.checkpoint(final=False).outputs if o.topic == Topic.TRANSACTIONS_ENRICHED]
    pipeline.terminals.committed()
    pipeline.clock.now += 2.5
    pipeline.terminals.due()
    pipeline.clock.now += pipeline.settings.push_interval_seconds
    assert pipeline.terminals.due()
    [released] = [
        o for o in pipeline.terminals.checkpoint(final=False).outputs if o.topic == Topic.TRANSACTIONS_ENRICHED
    ]
    assert EnrichedTransaction.FromString(released.value).early


def test_the_held_transactions_are_bounded() -> None:
    pipeline = Pipeline(settings=FeaturesSettings(max_buffered_events=5, max_wait_seconds=1e9))
    for n in range(20):
        pipeline.produce_transaction(TransactionEvent(f"t{n}", f"c{n}", "m", START + n, 1.0))
    forward_everything(pipeline, with_watermarks=False)
    pipeline.terminals.due()
    checkpoint = pipeline.terminals.checkpoint(final=False)
    released = [
        EnrichedTransaction.FromString(o.value) for o in checkpoint.outputs if o.topic == Topic.TRANSACTIONS_ENRICHED
    ]
    assert len(released) == 15  # of 20 held, at most 5 stay
    assert all(e.early for e in released)
    assert set(checkpoint.offsets.values()) == {15}  # the first still held, in its one partition


def test_watermarks_reach_every_partition_and_say_when_a_source_is_idle() -> None:
    pipeline = Pipeline()
    pipeline.produce_transaction(TransactionEvent("t1", "c1", "m1", START, 1.0))
    for message in pipeline.topics.of(Topic.TRANSACTIONS):
        pipeline.customers.add(message)  # type: ignore[arg-type]
    pipeline.customers.at_end([(Topic.TRANSACTIONS, p) for p in range(4)])
    pipeline.clock.now = 1.0
    pipeline.customers.due()
    marks = [
        (o.partition, mark)
        for o in pipeline.customers.checkpoint(final=False).outputs
        if o.headers == kind_headers(KIND_WATERMARK)
        for mark in StreamWatermarks.FromString(o.value).watermarks
    ]
    assert len(marks) == 8 * 4  # each of 8 input partitions, to each of 4 partitions
    holding = {(m.topic, m.partition) for m in [m for _, m in marks] if m.topic == Topic.TRANSACTIONS and not m.idle}
    assert len(holding) == 1  # the partition of t1, which waits for the labels to say where they stand
    assert not any(m.idle for _, m in marks if m.topic == Topic.LABELS)
    assert {seconds_of(m.event_time) for _, m in marks} == {0.0}  # nothing applied in order yet


def test_transactions_stamped_to_the_second_go_without_waiting_for_the_next_second() -> None:
    """Live traffic stamped to the whole second, as card networks stamp it: once the customer
    stage has put transactions of a second in order, every label of that second is in (labels
    sort first), so the terminal stage enriches them without waiting for the next second."""
    pipeline = Pipeline()
    by_partition: dict[int, str] = {}
    for n in range(100):
        by_partition.setdefault(partition_of(f"c{n}".encode()), f"c{n}")
    first, second = by_partition[0], by_partition[1]
    for n in range(6):
        customer = first if n % 2 == 0 else second
        pipeline.produce_transaction(TransactionEvent(f"t{n}", customer, f"m{n}", START + n // 2, 1.0))
    for message in pipeline.topics.of(Topic.TRANSACTIONS):
        pipeline.customers.add(message)  # type: ignore[arg-type]
    # Partitions 0 and 1 are still being read; the others have been quiet for a while.
    pipeline.customers.at_end(
        [(Topic.TRANSACTIONS, 2), (Topic.TRANSACTIONS, 3)] + [(Topic.LABELS, p) for p in range(4)]
    )
    pipeline.clock.now = 1.0
    pipeline.customers.due()
    for output in pipeline.customers.checkpoint(final=False).outputs:
        pipeline.topics.produce(output)
    for message in pipeline.topics.of(Topic.FEATURES_BY_TERMINAL):
        pipeline.terminals.add(message)  # type: ignore[arg-type]
    pipeline.terminals.due()
    released = {
        EnrichedTransaction.FromString(o.value).transaction.transaction_id
        for o in pipeline.terminals.checkpoint(final=False).outputs
        if o.topic == Topic.TRANSACTIONS_ENRICHED
    }
    # In order: t0 and t1 (START), t2 (START + 1); then partition 0 holds one event, which may be
    # ahead of what follows it, so t3 to t5 wait. t2's second is complete: no label of it is to come.
    assert released == {"t0", "t1", "t2"}


def test_bad_input_goes_to_the_dead_letter_topic_and_nothing_else_stops(
    history: tuple[list[TransactionEvent], list[LabelEvent]],
) -> None:
    transactions, labels = history
    pipeline = Pipeline()
    pipeline.topics.append(Topic.TRANSACTIONS, 0, b"x", b"\xff\xff\xff", [])
    pipeline.topics.append(Topic.LABELS, 1, b"y", b"", [])
    pipeline.produce_history(transactions[:200], labels[:50])
    pipeline.run()
    letters = [DeadLetter.FromString(m.value() or b"") for m in pipeline.topics.of(Topic.DEADLETTER)]
    assert sorted(letter.error_code for letter in letters) == ["invalid_protobuf", "missing_field"]
    assert len(pipeline.enriched()) == 200


def test_a_restart_from_the_changelog_repeats_no_transaction(
    history: tuple[list[TransactionEvent], list[LabelEvent]],
) -> None:
    """The terminal stage committed offsets up to its first held transaction; those released
    after it are read again after a restart, and skipped."""
    transactions, labels = history
    pipeline = Pipeline(seed=5)
    pipeline.produce_history(transactions, labels)
    pipeline.run(chunk=40)
    first = vectors(pipeline)
    changelog = {m.key(): m.value() for m in pipeline.topics.of(Topic.FEATURES_TERMINAL_STATE) if m.key() is not None}
    restarted = pipeline.terminals
    restarted.restore([(Topic.FEATURES_BY_TERMINAL, p) for p in range(4)], changelog, {})  # type: ignore[arg-type]
    for message in pipeline.topics.of(Topic.FEATURES_BY_TERMINAL):
        restarted.add(message)  # type: ignore[arg-type]
    restarted.due()
    assert not [o for o in restarted.checkpoint(final=True).outputs if o.topic == Topic.TRANSACTIONS_ENRICHED]
    assert len(first) == len(transactions)
    assert seconds_of(pipeline.enriched()[0].transaction.event_time) >= transactions[0].event_time - DAY


def test_an_idle_source_does_not_move_where_the_terminal_stage_thinks_it_stands() -> None:
    """A replica marks a source idle with its own watermark, which other partitions moved on.
    When the source's partition moves to another replica, that one's marks say where the
    source really stands; the idle mark must not have raised it."""
    pipeline = Pipeline()
    sources = [(str(topic), p) for topic in (Topic.LABELS, Topic.TRANSACTIONS) for p in range(4)]
    moved = (str(Topic.TRANSACTIONS), 0)

    def marks(at: float, *, idle: bool = False, moved_at: float | None = None) -> None:
        pipeline.forward_marks(
            {
                source: (moved_at if moved_at is not None and source == moved else at, idle and source == moved)
                for source in sources
            }
        )

    marks(START + 100)
    marks(START + 500, idle=True)  # the old owner's watermark, past where the source is
    marks(START + 500, moved_at=START + 150)  # the new owner: the source at 150
    pipeline.forward_transaction("t1", "m1", START + 200)
    for message in pipeline.topics.of(Topic.FEATURES_BY_TERMINAL):
        pipeline.terminals.add(message)  # type: ignore[arg-type]
    pipeline.terminals.due()
    assert not [o for o in pipeline.terminals.checkpoint(final=False).outputs if o.topic == Topic.TRANSACTIONS_ENRICHED]


def test_after_a_replica_resumes_a_replay_the_others_idle_sources_hold_for_a_moment() -> None:
    """Two customer replicas, both idle between a producer's writes; one delivers again first.
    The other's records from the same writes may be a moment behind: its sources hold the
    terminal stage at where they stood plus the time since, for FRAUDSTREAM_PARTITION_IDLE_HOLD_SECONDS."""
    pipeline = Pipeline()
    sources = [(str(topic), p) for topic in (Topic.LABELS, Topic.TRANSACTIONS) for p in range(4)]
    first_replica = {source for source in sources if source[1] < 2}

    def marks(at: float, *, idle: set[tuple[str, int]]) -> None:
        pipeline.forward_marks({source: (at, source in idle) for source in sources})

    read = 0

    def released_after(seconds: float) -> list[str]:
        nonlocal read
        written = pipeline.topics.of(Topic.FEATURES_BY_TERMINAL)
        for message in written[read:]:
            pipeline.terminals.add(message)  # type: ignore[arg-type]
        read = len(written)
        pipeline.clock.now += seconds
        pipeline.terminals.due()
        checkpoint = pipeline.terminals.checkpoint(final=False)
        pipeline.terminals.committed()
        return [
            EnrichedTransaction.FromString(o.value).transaction.transaction_id
            for o in checkpoint.outputs
            if o.topic == Topic.TRANSACTIONS_ENRICHED
        ]

    marks(START + 100, idle=set())
    marks(START + 100, idle=set(sources))  # both replicas read everything there was
    assert released_after(0.5) == []
    marks(START + 5_000, idle=set(sources) - first_replica)  # the first replica resumes
    pipeline.forward_transaction("t1", "m1", START + 4_000)
    assert released_after(0.5) == []  # the second replica's sources stand at 100.5 s past START
    assert released_after(0.6) == ["t1"]  # past the hold, idle sources hold nothing back


def test_a_replays_switch_to_live_traffic_holds_no_live_transaction() -> None:
    """Every source idle at the end of a replay; then live traffic. The customer stage's first
    marks still say where the replay ended (history, as after a resumed replay), but the hold
    that follows is for history: a live transaction goes once the sources that deliver pass it."""
    pipeline = Pipeline()
    sources = [(str(topic), p) for topic in (Topic.LABELS, Topic.TRANSACTIONS) for p in range(4)]
    delivering = {source for source in sources if source[0] == Topic.TRANSACTIONS}
    now = time.time()
    pipeline.forward_marks(dict.fromkeys(sources, (START + 100, False)))
    pipeline.forward_marks(dict.fromkeys(sources, (START + 100, True)))
    pipeline.forward_marks({source: (START + 100, source not in delivering) for source in sources})
    pipeline.forward_transaction("t1", "m1", now)
    pipeline.forward_marks({source: (now + 0.001, source not in delivering) for source in sources})
    for message in pipeline.topics.of(Topic.FEATURES_BY_TERMINAL):
        pipeline.terminals.add(message)  # type: ignore[arg-type]
    pipeline.clock.now += 0.1
    pipeline.terminals.due()
    assert [
        EnrichedTransaction.FromString(o.value).transaction.transaction_id
        for o in pipeline.terminals.checkpoint(final=False).outputs
        if o.topic == Topic.TRANSACTIONS_ENRICHED
    ] == ["t1"]


def test_a_replays_switch_to_live_traffic_pushes_no_terminal_only_history_changed() -> None:
    """At the end of a replay, the terminals its transactions changed wait to be pushed online
    (nothing reads them before those transactions are 6 days old). Live traffic then moves the
    watermark years past them: they change no live request's features, so they are not pushed,
    neither with the first live checkpoint (which would hold live transactions behind a push of
    every terminal the replay touched) nor after `terminal_push_max_seconds`; only when the
    stage stops."""
    pipeline = Pipeline()
    sources = [(str(topic), p) for topic in (Topic.LABELS, Topic.TRANSACTIONS) for p in range(4)]

    def checkpoint(transaction: tuple[str, str, float], marks_at: float) -> None:
        pipeline.forward_transaction(*transaction)
        pipeline.forward_marks(dict.fromkeys(sources, (marks_at, False)))
        for message in pipeline.topics.of(Topic.FEATURES_BY_TERMINAL)[-2:]:
            pipeline.terminals.add(message)  # type: ignore[arg-type]
        pipeline.clock.now += 0.1
        assert pipeline.terminals.due()
        pipeline.terminals.checkpoint(final=False)
        pipeline.terminals.store()
        pipeline.terminals.committed()

    checkpoint(("h1", "m1", START + 10), START + 100)
    assert pipeline.store.terminals == {}  # deferred: nothing reads it for 6 days of event time
    now = time.time()
    checkpoint(("t1", "m2", now), now + 0.001)
    assert pipeline.store.terminals == {}
    pipeline.clock.now += pipeline.settings.terminal_push_max_seconds + 1
    assert pipeline.terminals.due()
    pipeline.terminals.checkpoint(final=False)
    pipeline.terminals.store()
    assert set(pipeline.store.terminals) == {"m2"}  # the live one has waited long enough
    # What m1's online state lacks changes none of its features from the watermark on.
    assert pipeline.terminals.terminals["m1"].features(now) == TerminalState().features(now)
    pipeline.terminals.checkpoint(final=True)
    pipeline.terminals.store()
    assert set(pipeline.store.terminals) == {"m1", "m2"}  # what a stopped stage leaves is its state


def test_a_partition_read_after_the_others_passed_its_times_is_late_only_where_its_terminal_was(
    history: tuple[list[TransactionEvent], list[LabelEvent]],
) -> None:
    """A partition of `transactions` idle while the others went on (its producer or the broker
    slow): what it then brings is behind the customer stage's merged order. Each customer's
    history is in its one partition, so that alone flags nothing; a transaction whose terminal
    had seen a later one is late (there its windows may have lost days past the horizon)."""
    transactions, labels = history
    lagging = partition_of(transactions[0].customer_id.encode())
    middle = transactions[len(transactions) // 2].event_time
    behind = [tx for tx in transactions if tx.event_time >= middle and partition_of(tx.customer_id.encode()) == lagging]
    pipeline = Pipeline(seed=5)
    went_on = [tx for tx in transactions if tx not in behind]
    pipeline.produce_history(went_on, labels)
    pipeline.run(chunk=37)
    counted = (
        REGISTRY.get_sample_value("fraudstream_features_behind_order_events_total", {"topic": str(Topic.TRANSACTIONS)})
        or 0.0
    )
    for tx in behind:
        pipeline.produce_transaction(tx)
    pipeline.run(chunk=37)
    pipeline.clock.now += 1.0  # the partition's last event, alone, waits until it is idle
    pipeline.run(chunk=37)

    enriched = {e.transaction.transaction_id: e for e in pipeline.enriched()}
    assert enriched.keys() == {tx.transaction_id for tx in transactions}
    expected = {tx.transaction_id: [vector[n] for n in FEATURE_NAMES] for tx, vector in replay(transactions, labels)}
    for tx in behind:
        assert list(enriched[tx.transaction_id].feature_values) == expected[tx.transaction_id]
        assert not enriched[tx.transaction_id].early
        terminal_ahead = any(o.terminal_id == tx.terminal_id and o.event_time > tx.event_time for o in went_on)
        assert enriched[tx.transaction_id].late == terminal_ahead
    assert any(not enriched[tx.transaction_id].late for tx in behind)
    assert any(enriched[tx.transaction_id].late for tx in behind)
    assert REGISTRY.get_sample_value(
        "fraudstream_features_behind_order_events_total", {"topic": str(Topic.TRANSACTIONS)}
    ) == counted + len(behind)


def test_a_label_read_after_the_transactions_it_counts_in_is_counted_in_each_of_their_vectors(
    history: tuple[list[TransactionEvent], list[LabelEvent]],
) -> None:
    """A partition of `labels` idle while the others went on: its labels come after the
    transactions that should have counted them. Their vectors are not flagged (nothing about
    them was late when they were enriched), so the terminal stage counts each one as it learns."""
    transactions, labels = history
    lagging = partition_of(labels[0].transaction_id.encode())
    middle = transactions[len(transactions) // 2].event_time
    behind = [lb for lb in labels if lb.label_time >= middle and partition_of(lb.transaction_id.encode()) == lagging]
    pipeline = Pipeline(seed=3)
    pipeline.produce_history(transactions, [lb for lb in labels if lb not in behind])
    pipeline.run(chunk=37)
    counted = REGISTRY.get_sample_value("fraudstream_features_vectors_missing_label_total") or 0.0
    enriched_before = set(vectors(pipeline))
    for label in behind:
        pipeline.produce_label(label)
    pipeline.run(chunk=37)
    pipeline.clock.now += 1.0  # the partition's last event, alone, waits until it is idle
    pipeline.run(chunk=37)

    missing = {
        (tx.transaction_id, label.transaction_id)
        for label in behind
        if label.is_fraud
        for tx in transactions
        if tx.transaction_id in enriched_before
        and tx.terminal_id == label.terminal_id
        and max(label.label_time, label.transaction_time) <= tx.event_time < label.transaction_time + TERMINAL_HORIZON
    }
    expected = {tx.transaction_id: [vector[n] for n in FEATURE_NAMES] for tx, vector in replay(transactions, labels)}
    differing = {tx_id for tx_id, vector in vectors(pipeline).items() if vector != expected[tx_id]}
    assert differing
    assert differing <= {tx_id for tx_id, _ in missing}
    assert REGISTRY.get_sample_value("fraudstream_features_vectors_missing_label_total") == counted + len(missing)


def test_a_replay_the_stages_keep_up_with_gives_the_replays_vectors(
    history: tuple[list[TransactionEvent], list[LabelEvent]],
) -> None:
    """The producer writes the history in bursts and the stages read each to its end before
    the next: every partition is quiet between bursts, and the one read first when the next
    comes must not carry the order past the others (the labels run days ahead)."""
    transactions, labels = history
    timed = sorted(
        [(tx.event_time, 1, i) for i, tx in enumerate(transactions)]
        + [(label.label_time, 0, i) for i, label in enumerate(labels)]
    )
    pipeline = Pipeline(seed=11)
    behind_before = (
        REGISTRY.get_sample_value("fraudstream_features_behind_order_events_total", {"topic": str(Topic.LABELS)}) or 0.0
    )
    burst = 40
    for start in range(0, len(timed), burst):
        part = timed[start : start + burst]
        pipeline.produce_history(
            [transactions[i] for _, kind, i in part if kind == 1], [labels[i] for _, kind, i in part if kind == 0]
        )
        pipeline.run(chunk=7)
        pipeline.clock.now += 0.5  # the producer's pause: longer than FRAUDSTREAM_PARTITION_IDLE_SECONDS
    pipeline.run(chunk=7)  # the end of the replay: nothing left to read anywhere

    expected = {tx.transaction_id: [vector[n] for n in FEATURE_NAMES] for tx, vector in replay(transactions, labels)}
    assert vectors(pipeline) == expected
    assert not any(e.early or e.late for e in pipeline.enriched())
    behind_after = (
        REGISTRY.get_sample_value("fraudstream_features_behind_order_events_total", {"topic": str(Topic.LABELS)}) or 0.0
    )
    assert behind_after == behind_before


def test_a_checkpoint_closes_a_push_interval_after_the_last_not_after_the_next_read() -> None:
    """Input that came while the last checkpoint committed, or while a read waited, has waited
    already: the next checkpoint is due once a push interval has passed since the last commit."""
    pipeline = Pipeline()
    everything = [(topic, p) for topic in pipeline.customers.input_topics for p in range(4)]
    pipeline.customers.at_end(everything)
    pipeline.customers.committed()
    pipeline.terminals.committed()
    pipeline.clock.now += 1.0  # every partition idle; a read waited that long
    for tx_id in ("t1", "t2"):  # one customer, one partition: t1 is not its partition's last
        pipeline.produce_transaction(TransactionEvent(tx_id, "c1", "m1", START, 1.0))
    for message in pipeline.topics.of(Topic.TRANSACTIONS):
        pipeline.customers.add(message)  # type: ignore[arg-type]
    assert pipeline.customers.due()
    forwarded = [o for o in pipeline.customers.checkpoint(final=False).outputs if o.topic == Topic.FEATURES_BY_TERMINAL]
    assert forwarded
    for output in forwarded:
        pipeline.topics.produce(output)
    for message in pipeline.topics.of(Topic.FEATURES_BY_TERMINAL):
        pipeline.terminals.add(message)  # type: ignore[arg-type]
    assert pipeline.terminals.due()

    pipeline.customers.committed()
    pipeline.terminals.committed()
    assert not pipeline.customers.due()
    assert not pipeline.terminals.due()
