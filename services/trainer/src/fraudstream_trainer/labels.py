"""The trainer's label store: every record of the `labels` topic, as parquet parts in a folder
beside Feast's offline store (labels arrive days after their transactions, and training needs
weeks of them, longer than the topic keeps), read back as one frame for training sets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.stream import StreamRuntime
from fraudstream_common.timestamps import seconds_of
from fraudstream_feature_store.parts import part_sink
from fraudstream_trainer import metrics
from fraudstream_trainer.settings import TrainerSettings

GROUP_ID = "trainer-labels"
PART_PREFIX = "labels"
COLUMNS = ("transaction_id", "customer_id", "terminal_id", "transaction_time", "is_fraud", "label_time", "source")


def labels_dir(offline_dir: Path) -> Path:
    return offline_dir / "labels"


def label_sink(settings: TrainerSettings, labels_topic: str) -> StreamRuntime:
    return part_sink(
        settings,
        name="label-sink",
        topic=labels_topic,
        group_id=GROUP_ID,
        client_id=f"{settings.instance_id}-labels",
        directory=labels_dir(settings.feature_offline_dir),
        prefix=PART_PREFIX,
        new_rows=LabelRows,
        max_rows=settings.label_part_max_rows,
        max_seconds=settings.label_part_max_seconds,
        compact_rows=settings.label_compact_rows,
        on_written=metrics.LABELS_STORED.inc,
    )


class LabelRows:
    def __init__(self) -> None:
        self._rows: list[tuple[str, str, str, float, bool, float, str]] = []

    def add(self, value: bytes) -> None:
        label = Label.FromString(value)
        if not label.transaction_id:
            raise ValueError("a label without a transaction id")
        self._rows.append(
            (
                label.transaction_id,
                label.customer_id,
                label.terminal_id,
                seconds_of(label.transaction_time),
                label.is_fraud,
                seconds_of(label.label_time),
                label.source,
            )
        )

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self._rows, columns=list(COLUMNS))
        for column in ("transaction_time", "label_time"):
            frame[column] = pd.to_datetime(frame[column] * 1e6, unit="us", utc=True).astype("datetime64[us, UTC]")
        return frame


def read_labels(offline_dir: Path) -> pd.DataFrame:
    """Every stored label, once (a transaction may have several reports; training sets take
    the latest known at their cutoff). Parts merged overlap the parts they hold for a while."""
    parts = sorted(labels_dir(offline_dir).glob(f"{PART_PREFIX}-p*.parquet"))
    if not parts:
        return LabelRows().frame()
    return pd.concat([pd.read_parquet(part) for part in parts], ignore_index=True).drop_duplicates(ignore_index=True)


def label_span(offline_dir: Path) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The history the stored labels cover: the earliest labelled transaction's time and the
    latest label's time; None before any label is stored."""
    parts = sorted(labels_dir(offline_dir).glob(f"{PART_PREFIX}-p*.parquet"))
    if not parts:
        return None
    frames = [pd.read_parquet(part, columns=["transaction_time", "label_time"]) for part in parts]
    span = pd.concat(frames, ignore_index=True)
    if span.empty:
        return None
    return pd.Timestamp(span["transaction_time"].min()), pd.Timestamp(span["label_time"].max())
