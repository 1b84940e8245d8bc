"""Feast's point-in-time join over the stream's parts gives the same rows, once each, after the
part sink merged them, and while the merged parts' sources are still there (their grace)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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
from tests.platform import PLATFORM

pytestmark = pytest.mark.integration

TOPIC = "transactions.enriched"
PARTS = 6
ROWS = 50


def test_a_merged_folder_joins_as_the_parts_did(tmp_path: Path) -> None:
    store = apply_repository(PLATFORM.feature_store_redis_url, tmp_path / "registry.db", tmp_path / "offline")
    directory = transaction_features_dir(tmp_path / "offline")
    rng = np.random.default_rng(3)
    start = pd.Timestamp("2018-04-01", tz="UTC").timestamp()
    for k in range(PARTS):
        ids = pd.DataFrame({c: [f"{c[0]}{k}-{n}" for n in range(ROWS)] for c in TRANSACTION_ID_COLUMNS})
        seconds = start + k * 3600 + np.arange(ROWS) * 60.0
        frame = transaction_features_frame(ids, seconds, rng.random((ROWS, len(FEATURE_NAMES))))
        frame.to_parquet(directory / part_name("enriched", 0, k * ROWS, (k + 1) * ROWS - 1), index=False)
    entities = pd.DataFrame(
        {
            "transaction_id": pd.array([f"t{k}-{n}" for k in range(PARTS) for n in range(0, ROWS, 7)], dtype="string"),
            TIMESTAMP: pd.to_datetime(
                [start + k * 3600 + n * 60.0 for k in range(PARTS) for n in range(0, ROWS, 7)], unit="s", utc=True
            ),
        }
    )

    def joined() -> pd.DataFrame:
        rows: pd.DataFrame = store.get_historical_features(entity_df=entities, features=FEATURE_REFERENCES).to_df()
        return rows.sort_values("transaction_id").reset_index(drop=True)

    before = joined()
    assert before[list(FEATURE_NAMES)].notna().all().all()
    stage = PartStage(
        name="offline-writer",
        topic=TOPIC,
        directory=directory,
        prefix="enriched",
        new_rows=lambda: None,  # type: ignore[arg-type,return-value]
        max_rows=1,
        max_seconds=1,
        max_messages=1,
        on_written=lambda _rows: None,
        compact_rows=4 * ROWS,
    )
    stage.restore([(TOPIC, 0)], {}, {(TOPIC, 0): PARTS * ROWS})
    stage.compact()
    files = sorted(p.name for p in directory.glob("enriched-*.parquet"))
    assert part_name("enriched", 0, 0, 4 * ROWS - 1) in files
    assert len(files) == PARTS + 2  # the sources stay for their grace

    during = joined()
    assert len(during) == len(entities)  # once each, though two files hold each row
    pd.testing.assert_frame_equal(during, before)
