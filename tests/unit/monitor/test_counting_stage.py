"""The counting stage between its checkpoints: the hours that upstream sources close by turning
idle go out without new input, and a partition the judge holds as idle says it is back before
what it counted, so that a quality window is judged with every partition's labels."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.prediction_pb2 import Prediction
from fraudstream_common.timestamps import timestamp_of
from fraudstream_monitor.core import MonitorCore
from fraudstream_monitor.counting import CountingStage, Partial, Upstream
from tests.unit.kafka_fakes import FakeMessage
from tests.unit.monitor.fixtures import HOUR, START, InMemoryVersions, columns, predictions, reference_of
from tests.unit.monitor.test_core import SETTINGS, Clock

PARTITIONS = 2


def counting_stage(clock: Clock, versions: InMemoryVersions) -> CountingStage:
    stage = CountingStage(
        SETTINGS,
        versions,
        predictions_topic="predictions",
        labels_topic="labels",
        partials_topic="monitor.partials",
        deadletter_topic="deadletter",
        clock=clock,
        upstream=Upstream(customer_partitions=2, terminal_partitions=2),
    )
    stage.restore([(t, p) for t in stage.input_topics for p in range(PARTITIONS)], {}, {})
    return stage


def published() -> InMemoryVersions:
    versions = InMemoryVersions()
    versions.publish("1", reference_of(columns(np.random.default_rng(0), 20_000)))
    return versions


def read(stage: CountingStage, topic: str, records: Sequence[Prediction | Label]) -> None:
    for offset, record in enumerate(records):
        partition = zlib.crc32(record.transaction_id.encode()) % PARTITIONS
        stage.add(FakeMessage(record.SerializeToString(), offset, topic_=topic, partition_=partition))  # type: ignore[arg-type]
    stage.at_end({(t, p) for t in stage.input_topics for p in range(PARTITIONS)})


def sent(stage: CountingStage) -> list[Partial]:
    partials = [Partial.decode(o.value) for o in stage.checkpoint(final=False).outputs]
    stage.committed()
    return partials


def test_hours_that_silent_sources_close_go_out_without_new_input() -> None:
    clock = Clock()
    stage = counting_stage(clock, published())
    traffic = predictions(np.random.default_rng(1), range(0, 4), 300)
    one_source = [p for p in traffic if Upstream(2, 2).of([p]).tolist() == [0]]  # type: ignore[union-attr]
    read(stage, "predictions", one_source)
    assert [p for p in sent(stage) if p.kind == "hour"] == []  # the other sources may bring hour 0 still
    clock.now += 1.0
    assert not stage.due()
    clock.now += SETTINGS.hour_source_idle_seconds
    assert stage.due()
    partials = sent(stage)
    assert sorted({p.start - START for p in partials if p.kind == "hour"}) == [0, HOUR, 2 * HOUR]
    marks = [p.body for p in partials if p.kind == "mark"]
    assert {(m["open"] - START, m["idle"]) for m in marks} == {(3 * HOUR, False)}
    assert not stage.due()


def test_a_quality_window_waits_for_partitions_back_from_idle() -> None:
    clock = Clock()
    versions = published()
    stage = counting_stage(clock, versions)
    core = MonitorCore(SETTINGS, versions, PARTITIONS, clock=clock)
    rng = np.random.default_rng(2)
    read(stage, "predictions", predictions(rng, range(0, 2), 300))
    clock.now += SETTINGS.window_idle_seconds + 1
    partials = sent(stage)
    assert {p.partition for p in partials if p.kind == "mark" and p.body["idle"]} == set(range(PARTITIONS))
    for partial in partials:
        core.apply(partial)

    frauds = [f"tx-1-0-{i}" for i in range(0, 300, 10)]
    labels = [Label(transaction_id=t, is_fraud=True, label_time=timestamp_of(START + HOUR)) for t in frauds]
    # Genuine labels in every partition of `labels`, by which hour 0 has matured.
    labels += [
        Label(transaction_id=f"tx-1-1-{i}", is_fraud=False, label_time=timestamp_of(START + 4 * HOUR))
        for i in range(40)
    ]
    read(stage, "labels", labels)
    partials = sent(stage)
    assert {p.partition for p in partials if p.kind == "window"} == set(range(PARTITIONS))
    for partial in partials:
        core.apply(partial)
    [version] = core.overview()["versions"]
    first = version["quality"][0]
    assert (first["start"], first["frauds"]) == (START, len(frauds))  # judged once, with both partitions
