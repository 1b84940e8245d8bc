"""The judge stage's commits: the input behind alerts that wait for the retrain debounce is not
committed until the request is decided, so that a crash in the debounce still asks for it."""

from __future__ import annotations

import zlib

import numpy as np

from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest
from fraudstream_monitor.core import MonitorCore
from fraudstream_monitor.counting import Partial, PartitionCounts
from fraudstream_monitor.judge import JudgeStage
from tests.unit.kafka_fakes import FakeMessage
from tests.unit.monitor.fixtures import InMemoryVersions, columns, predictions, reference_of
from tests.unit.monitor.test_core import SETTINGS, Clock

PARTIALS = ("monitor.partials", 0)


def drifting_partials() -> list[bytes]:
    """What two counting partitions send for 4 stationary hours, then 4 of amounts 4 times larger."""
    rng = np.random.default_rng(2)
    versions = InMemoryVersions()
    versions.publish("1", reference_of(columns(np.random.default_rng(0), 20_000)))
    counts = [PartitionCounts(p, SETTINGS, versions) for p in range(2)]
    partials: list[Partial] = []
    for prediction in predictions(rng, range(0, 4), 600) + predictions(rng, range(4, 9), 600, amount_scale=4.0):
        partials += counts[zlib.crc32(prediction.transaction_id.encode()) % 2].predictions([prediction])
    partials += [c.mark(idle=True) for c in counts]
    return [p.encode() for p in partials]


def judge(clock: Clock) -> tuple[JudgeStage, MonitorCore]:
    versions = InMemoryVersions()
    versions.publish("1", reference_of(columns(np.random.default_rng(0), 20_000)))
    core = MonitorCore(SETTINGS, versions, 2, clock=clock)
    stage = JudgeStage(
        SETTINGS,
        core,
        partials_topic=PARTIALS[0],
        alerts_topic="monitor.alerts",
        requests_topic="retrain.requests",
        deadletter_topic="deadletter",
        clock=clock,
    )
    return stage, core


def requests_in(stage: JudgeStage) -> list[RetrainRequest]:
    checkpoint = stage.checkpoint(final=False)
    return [RetrainRequest.FromString(o.value) for o in checkpoint.outputs if o.topic == "retrain.requests"]


def test_a_crash_while_alerts_wait_for_the_debounce_still_asks_for_the_retrain() -> None:
    partials = drifting_partials()
    # Without a crash: the request, and then everything read is committed.
    clock = Clock()
    stage, _ = judge(clock)
    stage.restore([PARTIALS], {}, {})
    for offset, value in enumerate(partials):
        stage.add(FakeMessage(value, offset, topic_=PARTIALS[0]))  # type: ignore[arg-type]
    clock.now += 60
    [asked] = requests_in(stage)
    assert stage.checkpoint(final=False).offsets == {PARTIALS: len(partials)}

    # A judge that raises the first alert: the checkpoint commits up to the partial that raised it.
    clock = Clock()
    stage, core = judge(clock)
    stage.restore([PARTIALS], {}, {})
    raised_by = None
    for offset, value in enumerate(partials):
        stage.add(FakeMessage(value, offset, topic_=PARTIALS[0]))  # type: ignore[arg-type]
        if core.deciding:
            raised_by = offset
            break
    assert raised_by is not None
    checkpoint = stage.checkpoint(final=False)
    assert checkpoint.offsets == {PARTIALS: raised_by}
    stage.committed()
    # It crashes in the debounce. The next judge replays what was committed and reads the rest
    # live: the alert is raised again, and the same request is asked.
    clock = Clock()
    stage, _ = judge(clock)
    stage.restore([PARTIALS], {}, {PARTIALS: raised_by})
    for offset, value in enumerate(partials):
        message = FakeMessage(value, offset, topic_=PARTIALS[0])
        if offset < raised_by:
            stage.replay(message)  # type: ignore[arg-type]
        else:
            stage.add(message)  # type: ignore[arg-type]
    clock.now += 60
    assert [r.request_id for r in requests_in(stage)] == [asked.request_id]
