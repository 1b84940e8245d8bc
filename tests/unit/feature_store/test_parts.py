"""The part sink's stage: parts named by the offsets they hold, written before their offsets
are committed, written again whole after a failure, and those never committed deleted when
their partition is assigned again."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

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


def sink(directory: Path, written: list[int], max_rows: int = 3, **compaction: Any) -> PartStage:
    return PartStage(
        name="sink",
        topic=TOPIC,
        directory=directory,
        prefix="labels",
        new_rows=Values,
        max_rows=max_rows,
        max_seconds=60,
        max_messages=100,
        on_written=written.append,
        **{"clock": lambda: 0.0, **compaction},
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


class Clocks:
    def __init__(self) -> None:
        self.monotonic = 0.0
        self.wall = time.time()  # the parts' modification times are the file system's


def compacting_sink(directory: Path, clocks: Clocks) -> PartStage:
    return sink(
        directory,
        [],
        max_rows=2,
        compact_rows=5,
        compact_interval_seconds=600,
        compact_grace_seconds=3600,
        clock=lambda: clocks.monotonic,
        wall_clock=lambda: clocks.wall,
    )


def commit(stage: PartStage, values: list[tuple[int, bytes]]) -> None:
    for offset, value in values:
        stage.add(FakeMessage(value, offset, topic_=TOPIC, partition_=0))  # type: ignore[arg-type]
    stage.checkpoint(final=False)
    stage.store()
    stage.committed()


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.parquet"))


def test_committed_parts_are_merged_and_their_sources_deleted_after_the_grace(tmp_path: Path) -> None:
    clocks = Clocks()
    stage = compacting_sink(tmp_path, clocks)
    stage.restore([(TOPIC, 0)], {}, {(TOPIC, 0): -1001})
    commit(stage, [(0, b"a"), (1, b"b")])  # the first checkpoint compacts (nothing yet)
    clocks.monotonic += 600
    commit(stage, [(3, b"c"), (4, b"d")])  # offset 2: a transaction marker
    commit(stage, [(5, b"e"), (6, b"f")])
    commit(stage, [(7, b"g")])
    parts = names(tmp_path)
    clocks.monotonic += 600
    stage.add(FakeMessage(b"h", 8, topic_=TOPIC, partition_=0))  # type: ignore[arg-type]
    stage.checkpoint(final=False)  # compacts what is committed: up to offset 7
    # Up to 5 rows a part: [0-1] and [3-4] merged; [5-6] would make 6 with them, so it starts the next.
    merged, next_merged = part_name("labels", 0, 0, 4), part_name("labels", 0, 5, 7)
    assert names(tmp_path) == sorted([*parts, merged, next_merged])
    assert pd.read_parquet(tmp_path / merged)["value"].tolist() == ["a", "b", "c", "d"]
    assert pd.read_parquet(tmp_path / next_merged)["value"].tolist() == ["e", "f", "g"]
    stage.store()
    stage.committed()

    clocks.monotonic += 600
    clocks.wall += 3590
    stage.checkpoint(final=False)  # [5-7] and [8] make 4 rows: merged again
    assert part_name("labels", 0, 0, 1) in names(tmp_path)  # a reader may have listed it
    clocks.monotonic += 600
    clocks.wall += 60
    stage.checkpoint(final=False)
    assert names(tmp_path) == [merged, part_name("labels", 0, 5, 8)]
    every = pd.concat([pd.read_parquet(tmp_path / name) for name in names(tmp_path)])
    assert sorted(every["value"]) == list("abcdefgh")  # each row once


def test_nothing_is_merged_before_its_offsets_are_committed(tmp_path: Path) -> None:
    clocks = Clocks()
    stage = compacting_sink(tmp_path, clocks)
    stage.restore([(TOPIC, 0)], {}, {(TOPIC, 0): -1001})
    commit(stage, [(0, b"a"), (1, b"b")])
    for offset, value in ((2, b"c"), (3, b"d")):
        stage.add(FakeMessage(value, offset, topic_=TOPIC, partition_=0))  # type: ignore[arg-type]
    stage.checkpoint(final=False)
    stage.store()  # written, and the commit fails
    stage.committed()  # the runtime drops the checkpoint ...
    stage.restore([], {}, {})  # ... and the assignment until the next
    stage.restore([(TOPIC, 0)], {}, {(TOPIC, 0): 2})
    clocks.monotonic += 600
    stage.checkpoint(final=False)
    assert names(tmp_path) == [part_name("labels", 0, 0, 1)]  # [2-3] deleted, never merged


def test_compacting_off_merges_nothing(tmp_path: Path) -> None:
    stage = sink(tmp_path, [])
    stage.restore([(TOPIC, 0)], {}, {(TOPIC, 0): -1001})
    for first in (0, 2, 4):
        commit(stage, [(first, b"x"), (first + 1, b"y")])
    stage.checkpoint(final=False)
    assert len(names(tmp_path)) == 3


def test_a_part_that_cannot_be_read_stops_the_compaction_not_the_stream(tmp_path: Path) -> None:
    clocks = Clocks()
    stage = compacting_sink(tmp_path, clocks)
    stage.restore([(TOPIC, 0)], {}, {(TOPIC, 0): -1001})
    commit(stage, [(0, b"a"), (1, b"b")])
    commit(stage, [(2, b"c"), (3, b"d")])
    (tmp_path / part_name("labels", 0, 0, 1)).write_bytes(b"not parquet")
    clocks.monotonic += 600
    stage.add(FakeMessage(b"e", 4, topic_=TOPIC, partition_=0))  # type: ignore[arg-type]
    assert stage.checkpoint(final=False).offsets == {(TOPIC, 0): 5}
    stage.store()
    assert part_name("labels", 0, 4, 4) in names(tmp_path)
