"""The Feast repository: entities, push sources and feature views.

Feast stores the *state* features are computed from, not finished feature values: a vector
depends on the transaction's own time (windows are relative to it), so only the state can be
combined with a new transaction at request time. One row per entity holds the state as JSON
(`state`) and when it was last rolled (`as_of`); the row's timestamp is the state's version
time, which increases with every event (see fraudstream_common.features.state.Versioned).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float64, String

from fraudstream_common.features.definitions import DAY, FEATURE_NAMES, TERMINAL_HORIZON

PROJECT = "fraudstream"
CUSTOMER_VIEW = "customer_state"
TERMINAL_VIEW = "terminal_state"
CUSTOMER_PUSH_SOURCE = "customer_state_push"
TERMINAL_PUSH_SOURCE = "terminal_state_push"
# Finished feature vectors, one row per transaction, for training sets (point-in-time joins on
# the transaction's time). Written as parquet parts by the backfill and by the features service.
TRANSACTION_VIEW = "transaction_features"
TRANSACTION_ID_COLUMNS = ("transaction_id", "customer_id", "terminal_id")
TIMESTAMP = "event_timestamp"
# A state older than the longest window plus a day has nothing left in any window.
STATE_TTL = timedelta(seconds=TERMINAL_HORIZON + DAY)

OFFLINE_COLUMNS = {"state": "string", "as_of": "float64"}


def offline_log(offline_dir: Path, view: str) -> Path:
    return offline_dir / f"{view}.parquet"


def transaction_features_dir(offline_dir: Path) -> Path:
    return offline_dir / TRANSACTION_VIEW


def transaction_features_until(offline_dir: Path, partitions: int | None = None) -> pd.Timestamp | None:
    """The event time up to which the offline store holds every transaction's features: the
    latest time of a backfill file, or, where the stream's parts reach further, the least over
    the input partitions of the latest time of each one's last part (a partition behind holds
    the others' coverage back). With `partitions` (the enriched topic's count), the stream
    covers nothing until every partition has a part: one not written yet is furthest behind.
    None while the store holds nothing."""
    directory = transaction_features_dir(offline_dir)
    backfilled: pd.Timestamp | None = None
    latest_part: dict[str, tuple[int, Path]] = {}
    for path in directory.glob("*.parquet"):
        part = _STREAM_PART.match(path.name)
        if part is None:
            latest = _latest_time(path)
            if latest is not None and (backfilled is None or latest > backfilled):
                backfilled = latest
        elif int(part["last"]) > latest_part.get(part["partition"], (-1, path))[0]:
            latest_part[part["partition"]] = (int(part["last"]), path)
    streamed = [_latest_time(path) for _last, path in latest_part.values()]
    unwritten = partitions is not None and len(latest_part) < partitions
    stream_until = None if not streamed or None in streamed or unwritten else min(t for t in streamed if t is not None)
    candidates = [t for t in (backfilled, stream_until) if t is not None]
    return max(candidates) if candidates else None


class PartsOfOtherDefinitionsError(RuntimeError):
    """Parts of the offline store whose columns are not the feature definitions' own: written by
    another version of them, they cannot be joined with the others."""

    def __init__(self, directory: Path, differences: Mapping[Path, tuple[list[str], list[str]]]) -> None:
        first, (missing, extra) = next(iter(differences.items()))
        how = [f"lacking {', '.join(missing)}"] * bool(missing) + [f"with {', '.join(extra)} besides"] * bool(extra)
        super().__init__(
            f"{len(differences)} part(s) of Feast's offline store in {directory} hold other columns than the "
            f"feature definitions (first: {first.name}, {' and '.join(how)}): "
            "written by another version of the definitions, they cannot be joined with the rest. Move them out of "
            "that folder, and write their period's vectors again with these definitions "
            "(`fraudstream features backfill --history DIR` for a recorded history)."
        )
        self.differences = dict(differences)


def parts_of_other_columns(offline_dir: Path) -> dict[Path, tuple[list[str], list[str]]]:
    """For each part of `transaction_features` whose columns differ from those of
    `transaction_features_frame`, the columns it lacks and those it has besides (read from the
    parts' footers only)."""
    expected = [*TRANSACTION_ID_COLUMNS, TIMESTAMP, *FEATURE_NAMES]
    differences = {}
    for path in sorted(transaction_features_dir(offline_dir).glob("*.parquet")):
        names = pq.read_schema(path).names
        missing, extra = [c for c in expected if c not in names], [c for c in names if c not in expected]
        if missing or extra:
            differences[path] = (missing, extra)
    return differences


def parts_of_other_definitions(store: FeatureStore) -> PartsOfOtherDefinitionsError | None:
    """The parts of `store`'s transaction_features source that hold other columns, as the error
    to raise; None where there are none."""
    source = store.get_feature_view(TRANSACTION_VIEW).batch_source
    if not isinstance(source, FileSource):
        return None
    offline_dir = Path(source.path).parent.parent  # the source's path: OFFLINE_DIR/VIEW/*.parquet
    differences = parts_of_other_columns(offline_dir)
    return PartsOfOtherDefinitionsError(offline_dir, differences) if differences else None


# fraudstream_feature_store.parts names a part PREFIX-pPARTITION-FIRST-LAST.parquet.
_STREAM_PART = re.compile(r"^.+-p(?P<partition>\d+)-(?P<first>\d+)-(?P<last>\d+)\.parquet$")


def _latest_time(path: Path) -> pd.Timestamp | None:
    times = pq.read_table(path, columns=[TIMESTAMP]).column(TIMESTAMP)
    if len(times) == 0:
        return None
    latest = pc.max(times).as_py()
    return None if latest is None else pd.Timestamp(latest)


def transaction_features_frame(
    ids: pd.DataFrame, event_seconds: Sequence[float] | np.ndarray, vectors: np.ndarray
) -> pd.DataFrame:
    """The offline rows of `transaction_features`: ids (TRANSACTION_ID_COLUMNS), the event
    time, and one column per feature (FEATURE_NAMES order), in the schema the parts share."""
    frame = pd.DataFrame(
        {column: pd.array(ids[column].to_numpy(), dtype="string") for column in TRANSACTION_ID_COLUMNS}
    )
    frame[TIMESTAMP] = pd.to_datetime(np.asarray(event_seconds, dtype="float64") * 1e6, unit="us", utc=True).astype(
        "datetime64[us, UTC]"
    )
    for i, name in enumerate(FEATURE_NAMES):
        frame[name] = vectors[:, i].astype("float64")
    return frame


def definitions(offline_dir: Path) -> list[Any]:
    """Every Feast object of the repository; the offline logs live in `offline_dir`."""
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    terminal = Entity(name="terminal", join_keys=["terminal_id"], value_type=ValueType.STRING)
    objects: list[Any] = [customer, terminal]
    for view, push_name, entity, key in (
        (CUSTOMER_VIEW, CUSTOMER_PUSH_SOURCE, customer, "customer_id"),
        (TERMINAL_VIEW, TERMINAL_PUSH_SOURCE, terminal, "terminal_id"),
    ):
        log = FileSource(name=f"{view}_log", path=str(offline_log(offline_dir, view)), timestamp_field=TIMESTAMP)
        push = PushSource(name=push_name, batch_source=log)
        objects += [
            push,
            FeatureView(
                name=view,
                entities=[entity],
                ttl=STATE_TTL,
                schema=[
                    Field(name=key, dtype=String),
                    Field(name="state", dtype=String),
                    Field(name="as_of", dtype=Float64),
                ],
                source=push,
                online=True,
            ),
        ]
    transaction = Entity(name="transaction", join_keys=["transaction_id"], value_type=ValueType.STRING)
    # Every part in the folder: Feast's DuckDB store reads a path that ends in .parquet (a glob).
    parts = FileSource(
        name=f"{TRANSACTION_VIEW}_parts",
        path=str(transaction_features_dir(offline_dir) / "*.parquet"),
        timestamp_field=TIMESTAMP,
    )
    objects += [
        transaction,
        FeatureView(
            name=TRANSACTION_VIEW,
            entities=[transaction],
            ttl=timedelta(0),  # no limit: a transaction's vector never expires
            schema=[
                *(Field(name=column, dtype=String) for column in TRANSACTION_ID_COLUMNS),
                *(Field(name=name, dtype=Float64) for name in FEATURE_NAMES),
            ],
            source=parts,
            online=False,
        ),
    ]
    return objects


def ensure_offline_logs(offline_dir: Path) -> None:
    """Feast's file offline store appends to these files; they must exist, with their schema."""
    offline_dir.mkdir(parents=True, exist_ok=True)
    for view, key in ((CUSTOMER_VIEW, "customer_id"), (TERMINAL_VIEW, "terminal_id")):
        path = offline_log(offline_dir, view)
        if not path.exists():
            empty = pd.DataFrame(
                {
                    key: pd.Series(dtype="string"),
                    **{c: pd.Series(dtype=t) for c, t in OFFLINE_COLUMNS.items()},
                    TIMESTAMP: pd.Series(dtype="datetime64[us, UTC]"),
                }
            )
            empty.to_parquet(path, index=False)
    parts = transaction_features_dir(offline_dir)
    parts.mkdir(exist_ok=True)
    if not any(parts.glob("*.parquet")):
        # A dataset needs one file to have a schema; this one has no rows.
        empty_ids = pd.DataFrame({column: [] for column in TRANSACTION_ID_COLUMNS})
        transaction_features_frame(empty_ids, [], np.empty((0, len(FEATURE_NAMES)))).to_parquet(
            parts / "empty.parquet", index=False
        )
