"""The prediction record's cost per answer: protobuf's own encoder (a FeatureValue message per
feature value) against the core's (`_prediction` and `FeatureValues`, the features of a whole
scoring pass at once), for passes of 1, 8 and 64 rows. Both produce records that parse the same
(tests/unit/inference/test_predictions.py).

    uv run python benchmarks/prediction_record.py --rounds 7
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.prediction_pb2 import FeatureValue, Prediction
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.timestamps import timestamp_of
from fraudstream_inference.core import _FEATURE_VALUES, _prediction
from fraudstream_inference.decisions import Taken

TRANSACTION = Transaction(
    transaction_id="tx-1", customer_id="c-1", terminal_id="t-1", amount=12.5, event_time=timestamp_of(time.time())
)
ENTRY = Taken("tx-1", 0.1, 1, "3", 0.5, False)


def by_protobuf(values: np.ndarray, ages: np.ndarray) -> list[bytes]:
    return [
        Prediction(
            transaction_id=TRANSACTION.transaction_id,
            customer_id=TRANSACTION.customer_id,
            terminal_id=TRANSACTION.terminal_id,
            transaction_time=TRANSACTION.event_time,
            model_name="m",
            model_version=ENTRY.model_version,
            model_role=1,  # type: ignore[arg-type]
            score=ENTRY.score,
            decision=ENTRY.decision,  # type: ignore[arg-type]
            threshold=ENTRY.threshold,
            features=[
                FeatureValue(name=name, value=float(value), age_seconds=float(age))
                for name, value, age in zip(FEATURE_NAMES, row_values, row_ages, strict=True)
            ],
            latency_ms=1.0,
            transport=1,  # type: ignore[arg-type]
            predicted_at=timestamp_of(time.time()),
            amount=TRANSACTION.amount,
        ).SerializeToString()
        for row_values, row_ages in zip(values, ages, strict=True)
    ]


def by_core(values: np.ndarray, ages: np.ndarray) -> list[bytes]:
    features = _FEATURE_VALUES.encode(values, ages)
    return [_prediction(TRANSACTION, "m", 1, ENTRY, 1.0, 1) + features[row] for row in range(len(values))]


def microseconds_per_record(encode: Callable[[np.ndarray, np.ndarray], list[bytes]], rows: int, records: int) -> float:
    rng = np.random.default_rng(0)
    values = rng.random((rows, len(FEATURE_NAMES))).astype(np.float32)
    ages = rng.random((rows, len(FEATURE_NAMES))) * 3600
    passes = max(records // rows, 1)
    started = time.perf_counter()
    for _ in range(passes):
        encode(values, ages)
    return (time.perf_counter() - started) / (passes * rows) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--records", type=int, default=4000, help="records per measurement")
    arguments = parser.parse_args()
    print(f"{'rows/pass':>9} {'protobuf us':>12} {'core us':>8} {'ratio':>6}")
    for rows in (1, 8, 64):
        peer, ours = [], []
        for _ in range(arguments.rounds):  # interleaved, so that noise falls on both
            peer.append(microseconds_per_record(by_protobuf, rows, arguments.records))
            ours.append(microseconds_per_record(by_core, rows, arguments.records))
        median_peer, median_ours = statistics.median(peer), statistics.median(ours)
        print(f"{rows:>9} {median_peer:>12.1f} {median_ours:>8.1f} {median_peer / median_ours:>6.1f}")


if __name__ == "__main__":
    main()
