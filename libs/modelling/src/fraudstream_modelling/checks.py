"""Data checks before training: a failed check stops the run with its reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from fraudstream_common.features.definitions import FEATURE_NAMES


class DataCheckError(Exception):
    def __init__(self, failures: list[str]) -> None:
        super().__init__("training data refused: " + "; ".join(failures))
        self.failures = failures


@dataclass(frozen=True)
class DataBounds:
    min_rows: int = 10_000
    max_rows: int = 50_000_000
    min_frauds: int = 50
    max_fraud_share: float = 0.2
    # Features that are counts or flags, and features that are shares.
    non_negative: tuple[str, ...] = field(default_factory=lambda: tuple(FEATURE_NAMES))
    unit_interval: tuple[str, ...] = field(
        default_factory=lambda: tuple(n for n in FEATURE_NAMES if n.startswith(("terminal_risk_", "tx_during_")))
    )


def check_training_set(frame: pd.DataFrame, bounds: DataBounds, *, labels_known_at: pd.Timestamp) -> dict[str, float]:
    """Checks `frame` (one row per transaction: FEATURE_NAMES, is_fraud, event_time, label_time);
    returns its summary, or raises DataCheckError naming every failed check."""
    failures = []
    rows = len(frame)
    frauds = int(frame["is_fraud"].sum()) if rows else 0
    if not bounds.min_rows <= rows <= bounds.max_rows:
        failures.append(f"{rows} rows, outside [{bounds.min_rows}, {bounds.max_rows}]")
    if frauds < bounds.min_frauds:
        failures.append(f"{frauds} frauds, fewer than {bounds.min_frauds}")
    if rows and frauds / rows > bounds.max_fraud_share:
        failures.append(f"fraud share {frauds / rows:.3f} above {bounds.max_fraud_share}")
    missing = [c for c in (*FEATURE_NAMES, "is_fraud", "event_time", "label_time") if c not in frame.columns]
    if missing:
        failures.append(f"missing columns {missing}")
        raise DataCheckError(failures)
    nulls = [c for c in (*FEATURE_NAMES, "is_fraud") if frame[c].isna().any()]
    if nulls:
        failures.append(f"nulls in {nulls}")
    negative = [c for c in bounds.non_negative if (frame[c] < 0).any()]
    if negative:
        failures.append(f"negative values in {negative}")
    outside = [c for c in bounds.unit_interval if ((frame[c] < 0) | (frame[c] > 1)).any()]
    if outside:
        failures.append(f"values outside [0, 1] in {outside}")
    unknown = int((frame["label_time"] > labels_known_at).sum())
    if unknown:
        failures.append(
            f"{unknown} labels not known until after {labels_known_at.isoformat()} (label delay not respected)"
        )
    early = int((frame["label_time"] <= frame["event_time"]).sum())
    if early:
        failures.append(f"{early} labels known before their transaction happened")
    if failures:
        raise DataCheckError(failures)
    return {"rows": float(rows), "frauds": float(frauds), "fraud_share": frauds / rows}
