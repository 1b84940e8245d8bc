"""How far the offline store holds every transaction's features: a backfill file's latest
time, or the stream's parts, held back by the partition that is furthest behind."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fraudstream_feature_store.parts import part_name
from fraudstream_feature_store.repository import TIMESTAMP, transaction_features_dir, transaction_features_until


def write(directory: Path, name: str, *times: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"transaction_id": [f"t{i}" for i in range(len(times))]})
    frame[TIMESTAMP] = pd.to_datetime(list(times), utc=True)
    frame.to_parquet(directory / name, index=False)


def test_nothing_written_is_none(tmp_path: Path) -> None:
    assert transaction_features_until(tmp_path) is None
    write(transaction_features_dir(tmp_path), "empty.parquet")
    assert transaction_features_until(tmp_path) is None


def test_the_partition_furthest_behind_holds_the_stream_back(tmp_path: Path) -> None:
    parts = transaction_features_dir(tmp_path)
    write(parts, part_name("enriched", 0, 0, 9), "2018-04-01", "2018-04-03")
    write(parts, part_name("enriched", 0, 10, 19), "2018-04-03", "2018-04-09")
    write(parts, part_name("enriched", 1, 0, 9), "2018-04-01", "2018-04-06")
    assert transaction_features_until(tmp_path) == pd.Timestamp("2018-04-06", tz="UTC")


def test_a_backfill_counts_up_to_its_end_and_the_stream_beyond_it(tmp_path: Path) -> None:
    parts = transaction_features_dir(tmp_path)
    write(parts, "backfill-0123456789abcdef.parquet", "2018-03-01", "2018-04-20")
    assert transaction_features_until(tmp_path) == pd.Timestamp("2018-04-20", tz="UTC")
    write(parts, part_name("enriched", 0, 0, 9), "2018-04-20", "2018-04-22")
    assert transaction_features_until(tmp_path) == pd.Timestamp("2018-04-22", tz="UTC")
    write(parts, part_name("enriched", 1, 0, 9), "2018-04-19 00:00", "2018-04-19 12:00")
    assert transaction_features_until(tmp_path) == pd.Timestamp("2018-04-20", tz="UTC")  # the backfill's end


def test_a_partition_with_no_part_yet_holds_the_stream_back(tmp_path: Path) -> None:
    parts = transaction_features_dir(tmp_path)
    write(parts, part_name("enriched", 0, 0, 9), "2018-04-01", "2018-04-09")
    write(parts, part_name("enriched", 2, 0, 9), "2018-04-01", "2018-04-08")
    assert transaction_features_until(tmp_path, partitions=3) is None
    write(parts, part_name("enriched", 1, 0, 9), "2018-04-01", "2018-04-07")
    assert transaction_features_until(tmp_path, partitions=3) == pd.Timestamp("2018-04-07", tz="UTC")
