"""What the offline store's small parts cost its readers, and what the part sink's compaction
gives back. Per round: a folder of parts as the features service writes them at a low rate
(4 partitions, a part a minute each: FRAUDSTREAM_OFFLINE_PART_MAX_SECONDS), then

- Feast's point-in-time join of `--entities` transactions (what the trainer's training sets run),
  in the DuckDB offline store the repository uses and, beside it, Feast's dask store (the one
  it used before),
- reading every part into one frame (what the trainer does with its label parts),

on the small parts and again after `PartStage.compact` merged them (its sources deleted, as
after their grace). Medians over `--rounds`, written to benchmarks/results/offline_parts.json.
Needs the platform's Redis (Feast's online store is configured, not used).

    uv run python benchmarks/offline_parts.py --hours 3 --rate 10 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from feast import FeatureStore, RepoConfig
from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
from results_file import write_results

from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_feature_store.parts import PartStage, part_name
from fraudstream_feature_store.repository import (
    TIMESTAMP,
    TRANSACTION_ID_COLUMNS,
    transaction_features_dir,
    transaction_features_frame,
)
from fraudstream_feature_store.store import apply_repository
from fraudstream_trainer.dataset import FEATURE_REFERENCES

PARTITIONS = 4
PARTS_AN_HOUR = 60
TOPIC = "transactions.enriched"
PREFIX = "enriched"


def write_parts(directory: Path, hours: int, rate: float) -> tuple[int, int, np.ndarray]:
    """Parts of `rate` transactions a second over `hours`, spread over the partitions in time
    order; the count of parts and rows, and the rows' event times (seconds)."""
    rng = np.random.default_rng(0)
    rows = int(hours * 3600 * rate)
    start = pd.Timestamp("2018-04-01", tz="UTC").timestamp()
    microseconds = np.sort(rng.integers(0, hours * 3600 * 1_000_000, rows))
    seconds = start + microseconds / 1e6
    ids = pd.DataFrame({c: [f"{c[0]}{n}" for n in range(rows)] for c in TRANSACTION_ID_COLUMNS})
    values = rng.random((rows, len(FEATURE_NAMES)))
    parts = hours * PARTS_AN_HOUR * PARTITIONS
    bounds = np.linspace(0, rows, parts + 1).astype(int)
    offsets = [0] * PARTITIONS
    for k in range(parts):
        first, last = bounds[k], bounds[k + 1]
        partition = k % PARTITIONS
        chunk = ids.iloc[first:last].reset_index(drop=True)
        frame = transaction_features_frame(chunk, seconds[first:last], values[first:last])
        name = part_name(PREFIX, partition, offsets[partition], offsets[partition] + last - first - 1)
        frame.to_parquet(directory / name, index=False)
        offsets[partition] += last - first
    return parts, rows, seconds


def joined(store: FeatureStore, entities: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    frame = store.get_historical_features(entity_df=entities, features=FEATURE_REFERENCES).to_df()
    seconds = time.perf_counter() - started
    assert frame[FEATURE_NAMES[0]].notna().all(), "the join missed rows"
    return frame.sort_values("transaction_id").reset_index(drop=True)[["transaction_id", *FEATURE_NAMES]], seconds


def dask_peer(store: FeatureStore) -> FeatureStore:
    """The same repository and registry with Feast's dask offline store."""
    config = store.config
    return FeatureStore(
        config=RepoConfig(
            project=config.project,
            provider="local",
            registry=config.registry,
            online_store=config.online_store,
            offline_store=DaskOfflineStoreConfig(),
            entity_key_serialization_version=config.entity_key_serialization_version,
        )
    )


def measure(store: FeatureStore, directory: Path, entities: pd.DataFrame) -> dict[str, float]:
    frame, join_seconds = joined(store, entities)
    dask_frame, dask_join_seconds = joined(dask_peer(store), entities)
    pd.testing.assert_frame_equal(frame, dask_frame, check_dtype=False)
    started = time.perf_counter()
    frame = pd.concat([pd.read_parquet(path) for path in sorted(directory.glob(f"{PREFIX}-*.parquet"))])
    read_seconds = time.perf_counter() - started
    assert frame["transaction_id"].is_unique
    return {"join_seconds": join_seconds, "dask_join_seconds": dask_join_seconds, "read_seconds": read_seconds}


def one_round(hours: int, rate: float, entities: int, redis_url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        store = apply_repository(redis_url, root / "registry.db", root / "offline")
        directory = transaction_features_dir(root / "offline")
        parts, rows, seconds = write_parts(directory, hours, rate)
        rng = np.random.default_rng(1)
        chosen = np.sort(rng.choice(rows, min(entities, rows), replace=False))
        frame = pd.DataFrame(
            {
                "transaction_id": pd.array([f"t{n}" for n in chosen], dtype="string"),
                TIMESTAMP: pd.to_datetime(np.round(seconds[chosen] * 1e6), unit="us", utc=True),
            }
        )
        small = measure(store, directory, frame)
        stage = PartStage(
            name="offline-writer",
            topic=TOPIC,
            directory=directory,
            prefix=PREFIX,
            new_rows=lambda: None,  # type: ignore[arg-type,return-value]
            max_rows=1,
            max_seconds=1,
            max_messages=1,
            on_written=lambda _rows: None,
            compact_rows=1_000_000,
            wall_clock=lambda: time.time() + 86_400,  # the sources' grace has passed
        )
        stage.restore([(TOPIC, p) for p in range(PARTITIONS)], {}, {(TOPIC, p): rows for p in range(PARTITIONS)})
        started = time.perf_counter()
        stage.compact()
        compact_seconds = time.perf_counter() - started
        stage.compact()  # deletes the merged parts' sources
        merged_files = len(list(directory.glob(f"{PREFIX}-*.parquet")))
        merged = measure(store, directory, frame)
        result = {
            "parts": parts,
            "rows": rows,
            "merged_parts": merged_files,
            "compact_seconds": compact_seconds,
            **{f"small_{k}": v for k, v in small.items()},
            **{f"merged_{k}": v for k, v in merged.items()},
        }
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}), flush=True)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=int, default=3, help="hours of parts, a part a minute per partition")
    parser.add_argument("--rate", type=float, default=10.0, help="transactions a second")
    parser.add_argument("--entities", type=int, default=20_000, help="transactions in the point-in-time join")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    redis_url = PlatformSettings().feature_store_redis_url
    rounds = [
        one_round(arguments.hours, arguments.rate, arguments.entities, redis_url) for _ in range(arguments.rounds)
    ]
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    ratios = {
        "join small / merged": medians["small_join_seconds"] / medians["merged_join_seconds"],
        "dask join / duckdb join, small": medians["small_dask_join_seconds"] / medians["small_join_seconds"],
        "dask join / duckdb join, merged": medians["merged_dask_join_seconds"] / medians["merged_join_seconds"],
        "read small / merged": medians["small_read_seconds"] / medians["merged_read_seconds"],
    }
    summary = {k: round(v, 2) for k, v in {**medians, **ratios}.items()}
    print(f"median over {len(rounds)} rounds: {json.dumps(summary)}")
    write_results(
        "offline_parts",
        {
            "measured": time.strftime("%Y-%m-%d", time.gmtime()),
            "rounds": rounds,
            "medians": medians,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    main()
