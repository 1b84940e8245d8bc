"""Predictions and versions for the monitor's unit tests and its benchmark (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.reference import SCORE, Reference, version_reference
from fraudstream_common.schemas.v1.prediction_pb2 import Decision, FeatureValue, ModelRole, Prediction, Transport
from fraudstream_common.timestamps import timestamp_of
from fraudstream_monitor.versions import Version

START = 1522627200.0  # 2018-04-02, a Monday
HOUR = 3600.0


def columns(rng: np.random.Generator, n: int, amount_scale: float = 1.0) -> dict[str, np.ndarray]:
    made = {name: rng.gamma(2.0, 10.0, n) for name in FEATURE_NAMES}
    made["tx_amount"] = rng.gamma(2.0, 30.0, n) * amount_scale
    made["tx_during_weekend"] = np.zeros(n)
    made["tx_during_night"] = (rng.random(n) < 0.25).astype(float)
    made[SCORE] = rng.beta(1.0, 30.0, n)
    return made


def reference_of(made: dict[str, np.ndarray]) -> Reference:
    """The reference the trainer would store for inputs drawn by `columns`."""
    return version_reference({name: made[name] for name in FEATURE_NAMES}, made[SCORE])


@dataclass
class InMemoryVersions:
    """Published versions with their references, as `VersionCatalogue` holds them."""

    versions: dict[str, Version] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)

    def publish(self, version: str, reference: Reference | None, average_precision: float = 0.8) -> None:
        self.versions[version] = Version(
            version, "champion", "run", START, {"average_precision": average_precision}, 0.1, 0.5
        )
        if reference is not None:
            self.references[version] = reference

    def get(self, version: str) -> Version | None:
        return self.versions.get(version)

    def reference(self, version: str) -> Reference | None:
        return self.references.get(version)


def predictions(
    rng: np.random.Generator,
    hours: range,
    per_hour: int,
    *,
    version: str = "1",
    amount_scale: float = 1.0,
    model_name: str = "m",
    predicted_at: float = START,
) -> list[Prediction]:
    """`per_hour` predictions in each of `hours` (counted from START), their inputs drawn as
    `columns` draws them."""
    made = []
    for hour in hours:
        values = columns(rng, per_hour, amount_scale)
        times = START + hour * HOUR + np.sort(rng.uniform(0, HOUR, per_hour))
        for i in range(per_hour):
            score = float(values[SCORE][i])
            made.append(
                Prediction(
                    transaction_id=f"tx-{version}-{hour}-{i}",
                    customer_id=f"c{i % 50}",
                    terminal_id=f"t{i % 70}",
                    transaction_time=timestamp_of(float(times[i])),
                    model_name=model_name,
                    model_version=version,
                    model_role=ModelRole.MODEL_ROLE_CHAMPION,
                    score=score,
                    decision=Decision.DECISION_REVIEW if score > 0.1 else Decision.DECISION_APPROVE,
                    features=[FeatureValue(name=n, value=float(values[n][i])) for n in FEATURE_NAMES],
                    threshold=0.1,
                    latency_ms=float(rng.gamma(2.0, 0.6)),
                    transport=Transport.TRANSPORT_HTTP,
                    predicted_at=timestamp_of(predicted_at),
                    amount=float(values["tx_amount"][i]),
                )
            )
    return made
