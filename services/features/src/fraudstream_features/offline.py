"""Every enriched transaction into Feast's offline store, for training sets: parquet parts of
the `transaction_features` source (fraudstream_feature_store.repository), written by
the part sink (fraudstream_feature_store.parts: named by offsets, exact across crashes)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.transaction_pb2 import EnrichedTransaction
from fraudstream_common.stream import StreamRuntime
from fraudstream_common.timestamps import seconds_of
from fraudstream_feature_store.parts import part_sink
from fraudstream_feature_store.repository import (
    TRANSACTION_ID_COLUMNS,
    transaction_features_dir,
    transaction_features_frame,
)
from fraudstream_features import metrics
from fraudstream_features.settings import FeaturesSettings

GROUP_ID = "features-offline"
PART_PREFIX = "enriched"
_FEATURE_NAMES = list(FEATURE_NAMES)  # a repeated field compares equal to a list, not a tuple


def offline_writer(settings: FeaturesSettings, enriched_topic: str) -> StreamRuntime:
    return part_sink(
        settings,
        name="offline-writer",
        topic=enriched_topic,
        group_id=GROUP_ID,
        client_id=f"{settings.instance_id}-offline",
        directory=transaction_features_dir(settings.feature_offline_dir),
        prefix=PART_PREFIX,
        new_rows=EnrichedRows,
        max_rows=settings.offline_part_max_rows,
        max_seconds=settings.offline_part_max_seconds,
        compact_rows=settings.offline_compact_rows,
        batch_max_messages=settings.batch_max_messages,
        on_written=metrics.OFFLINE_ROWS.inc,
    )


class EnrichedRows:
    """The rows of one part, kept as flat columns while they arrive, so that writing the part
    does not stall the stream thread (they share the interpreter)."""

    def __init__(self) -> None:
        self.ids: list[tuple[str, str, str]] = []
        self.event_seconds: list[float] = []
        self.values: list[float] = []

    def add(self, value: bytes) -> None:
        enriched = EnrichedTransaction.FromString(value)
        tx = enriched.transaction
        if enriched.feature_names == _FEATURE_NAMES:
            self.values.extend(enriched.feature_values)
        else:  # written by another version: place by name
            by_name = dict(zip(enriched.feature_names, enriched.feature_values, strict=True))
            self.values.extend(by_name.get(name, float("nan")) for name in FEATURE_NAMES)
        self.ids.append((tx.transaction_id, tx.customer_id, tx.terminal_id))
        self.event_seconds.append(seconds_of(tx.event_time))

    def __len__(self) -> int:
        return len(self.ids)

    def frame(self) -> pd.DataFrame:
        return transaction_features_frame(
            pd.DataFrame(self.ids, columns=list(TRANSACTION_ID_COLUMNS)),
            self.event_seconds,
            np.asarray(self.values, dtype="float64").reshape(len(self), len(FEATURE_NAMES)),
        )
