"""Parts of the offline store written by another version of the feature definitions: found by
their columns, so that a training set's join can say which they are and what to do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_feature_store.repository import (
    TRANSACTION_ID_COLUMNS,
    PartsOfOtherDefinitionsError,
    parts_of_other_columns,
    transaction_features_dir,
    transaction_features_frame,
)


def frame(rows: int = 2) -> pd.DataFrame:
    ids = pd.DataFrame({c: [f"{c}{i}" for i in range(rows)] for c in TRANSACTION_ID_COLUMNS})
    return transaction_features_frame(ids, np.arange(rows, dtype="float64"), np.zeros((rows, len(FEATURE_NAMES))))


def test_parts_of_these_definitions_are_not_reported(tmp_path: Path) -> None:
    parts = transaction_features_dir(tmp_path)
    parts.mkdir(parents=True)
    frame().to_parquet(parts / "backfill-0123456789abcdef.parquet", index=False)
    assert parts_of_other_columns(tmp_path) == {}


def test_a_part_missing_a_feature_or_holding_another_is_reported(tmp_path: Path) -> None:
    parts = transaction_features_dir(tmp_path)
    parts.mkdir(parents=True)
    frame().to_parquet(parts / "current.parquet", index=False)
    frame().drop(columns=[FEATURE_NAMES[-1]]).to_parquet(parts / "older.parquet", index=False)
    frame().assign(retired_feature=1.0).to_parquet(parts / "other.parquet", index=False)

    differences = parts_of_other_columns(tmp_path)

    assert differences == {
        parts / "older.parquet": ([FEATURE_NAMES[-1]], []),
        parts / "other.parquet": ([], ["retired_feature"]),
    }
    message = str(PartsOfOtherDefinitionsError(parts.parent, differences))
    assert "2 part(s)" in message
    assert "older.parquet" in message
    assert FEATURE_NAMES[-1] in message
    assert "fraudstream features backfill" in message
