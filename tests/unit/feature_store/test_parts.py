"""The part sink's stage: parts named by the offsets they hold, written before their offsets
are committed, written again whole after a failure, and those never committed deleted when
their partition is assigned again."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fraudstream_feature_store.parts import PartStage, part_name
from tests.unit.kafka_fakes import FakeMessage

TOPIC = "labels"


class Values:
    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, value: bytes) -> None:
        if value == b"bad":
            raise ValueError("undecodable")
        self.values.append(value.decode())

    def __len__(self) -> int:
        return len(self.values)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"value": self.values})


def sink(directory: Path, written: list[int]) -> PartStage:
    return PartStage(
        name="sink",
        topic=TOPIC,
        directory=directory,
        prefix="labels",
        new_rows=Values,
        max_rows=3,
        max_seconds=60,
        max_messages=100,
        on_written=written.append,
        clock=lambda: 0.0,
    )


def test_parts_are_named_by_their_offsets_and_written_before_the_commit(tmp_path: Path) -> None:
    written: list[int] = []
    stage = sink(tmp_path, written)
    stage.restore([(TOPIC, 0), (TOPIC, 1)], {}, {(TOPIC, 0): -1001, (TOPIC, 1): -1001})
    for offset, value in ((5, b"a"), (6, b"bad"), (7, b"b")):
        stage.add(FakeMessage(value, offset, topic_=TOPIC, partition_=0))  # type: ignore[arg-type]
    stage.add(FakeMessage(b"c", 2, topic_=TOPIC, partition_=1))  # type: ignore[arg-type]
    assert stage.due()  # three rows
    checkpoint = stage.checkpoint(final=False)
    assert checkpoint.offsets == {(TOPIC, 0): 8, (TOPIC, 1): 3}
    assert not checkpoint.outputs
    assert not list(tmp_path.glob("*.parquet"))  # nothing before the store step
    stage.store()
    stage.store()  # a retry writes nothing twice
    assert written == [2, 1]
    part = pd.read_parquet(tmp_path / part_name("labels", 0, 5, 7))
    assert part["value"].tolist() == ["a", "b"]


def test_a_part_never_committed_is_deleted_when_its_partition_comes_back(tmp_path: Path) -> None:
    for partition, first, last in ((0, 0, 9), (0, 10, 19), (1, 10, 19)):
        (tmp_path / part_name("labels", partition, first, last)).write_bytes(b"")
    stage = sink(tmp_path, [])
    stage.restore([(TOPIC, 0)], {}, {(TOPIC, 0): 10})
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == [
        part_name("labels", 0, 0, 9),
        part_name("labels", 1, 10, 19),  # not this replica's partition: not its to judge
    ]
