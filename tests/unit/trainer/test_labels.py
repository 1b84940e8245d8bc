"""The label store's rows: what a `labels` record becomes, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from google.protobuf.message import DecodeError

from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.timestamps import timestamp_of
from fraudstream_trainer.labels import COLUMNS, LabelRows, read_labels


def test_a_label_record_becomes_a_row_with_utc_times() -> None:
    rows = LabelRows()
    label = Label(
        transaction_id="t1",
        customer_id="c1",
        terminal_id="m1",
        transaction_time=timestamp_of(1_530_000_000.5),
        is_fraud=True,
        label_time=timestamp_of(1_530_086_400),
        source="chargeback",
    )
    rows.add(label.SerializeToString())
    frame = rows.frame()
    assert list(frame.columns) == list(COLUMNS)
    row = frame.iloc[0]
    assert (row["transaction_id"], row["customer_id"], row["terminal_id"], row["source"]) == (
        "t1",
        "c1",
        "m1",
        "chargeback",
    )
    assert bool(row["is_fraud"])
    assert row["transaction_time"] == pd.Timestamp(1_530_000_000.5, unit="s", tz="UTC")
    assert row["label_time"] == pd.Timestamp(1_530_086_400, unit="s", tz="UTC")


def test_records_that_are_not_labels_are_refused() -> None:
    rows = LabelRows()
    with pytest.raises(ValueError, match="without a transaction id"):
        rows.add(Label(is_fraud=True).SerializeToString())
    with pytest.raises(DecodeError):
        rows.add(b"\xff\xff\xff")
    assert len(rows) == 0


def test_an_empty_store_reads_as_an_empty_frame_with_the_columns(tmp_path: Path) -> None:
    frame = read_labels(tmp_path)
    assert frame.empty
    assert list(frame.columns) == list(COLUMNS)
