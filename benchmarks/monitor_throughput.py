"""Monitor: predictions per second one process takes, against a per-prediction River design.

    uv run python benchmarks/monitor_throughput.py --rounds 3 --predictions 200000

Measurements, each repeated `--rounds` times (medians printed and written to results):

- core: serialized `Prediction` records (every feature, as inference logs them) decoded and handed
  to one input partition's `PartitionCounts` in batches of 2,000, as the counting stage hands
  them (label join, drift counting against the version's reference, traffic figures, Prometheus
  counters), and the partials it sends decoded and judged by `MonitorCore`.
  Its peer, in the same round: the same records decoded and fed one at a time to a River ADWIN
  per subject (each feature and the score), the design that updates a detector per prediction
  (and has no reference, no PSI, no quality); on a tenth of the records; the ratio.
- interleaved: the core on the same records as inference's stream carries them while it
  catches up (a replay, a backlog): its input partitions days apart in event time, interleaved
  a few records at a time, so that the hour changes every few predictions; against the core
  on them in order, the ratio. The lateness covers the skew, so nothing is late.
- service (`--service`, needs `fraudstream platform up`): the real monitor process
  (`python -m fraudstream_monitor`) reading `--predictions` records from Kafka, its version's
  reference in the real MLflow server; the rate from its readiness until its counter of
  observed predictions reaches them all (decode, core, commits after each batch).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from river import drift

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_file import write_results  # noqa: E402

from fraudstream_common.schemas.v1.prediction_pb2 import Prediction  # noqa: E402
from fraudstream_monitor.core import MonitorCore  # noqa: E402
from fraudstream_monitor.counting import Partial, PartitionCounts  # noqa: E402
from fraudstream_monitor.settings import MonitorSettings  # noqa: E402
from tests.unit.monitor.fixtures import InMemoryVersions, columns, predictions, reference_of  # noqa: E402

BATCH = 2000
LANES = 4


def serialized(count: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    hours = max(count // 3000, 1)
    made = predictions(rng, range(hours), -(-count // hours))[:count]
    return [p.SerializeToString() for p in made]


def interleaved(records: list[bytes], seed: int) -> list[bytes]:
    """The records as `LANES` upstream partitions, each a contiguous stretch of event time,
    merged 1 to 7 records at a time."""
    rng = np.random.default_rng(seed)
    lanes = [records[i * len(records) // LANES : (i + 1) * len(records) // LANES] for i in range(LANES)]
    merged: list[bytes] = []
    taken = [0] * LANES
    while any(taken[i] < len(lane) for i, lane in enumerate(lanes)):
        for i, lane in enumerate(lanes):
            run = int(rng.integers(1, 8))
            merged += lane[taken[i] : taken[i] + run]
            taken[i] += run
    return merged


def core_rate(records: list[bytes], lateness_seconds: float = 0.0) -> float:
    versions = InMemoryVersions()
    versions.publish("1", reference_of(columns(np.random.default_rng(0), 50_000)))
    settings = MonitorSettings(hour_lateness_seconds=lateness_seconds, hour_max_ahead_seconds=float("inf"))
    core = MonitorCore(settings, versions, 1)
    counts = PartitionCounts(0, settings, versions)
    started = time.perf_counter()
    for first in range(0, len(records), BATCH):
        for partial in counts.predictions([Prediction.FromString(r) for r in records[first : first + BATCH]]):
            core.apply(Partial.decode(partial.encode()))
    return len(records) / (time.perf_counter() - started)


def per_prediction_river_rate(records: list[bytes]) -> float:
    detectors: dict[str, drift.ADWIN] = {}
    started = time.perf_counter()
    for record in records:
        prediction = Prediction.FromString(record)
        for feature in prediction.features:
            detector = detectors.get(feature.name)
            if detector is None:
                detector = detectors[feature.name] = drift.ADWIN(delta=1e-5)  # type: ignore[no-untyped-call]
            detector.update(feature.value)  # type: ignore[no-untyped-call]
        score = detectors.setdefault("score", drift.ADWIN(delta=1e-5))  # type: ignore[no-untyped-call]
        score.update(prediction.score)  # type: ignore[no-untyped-call]
    return len(records) / (time.perf_counter() - started)


def service_rate(records: list[bytes]) -> float:
    import uuid

    from kafka_measure import delete_topics

    from fraudstream_cli.platform.kafka import KafkaBroker
    from fraudstream_cli.platform.settings import PlatformSettings
    from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
    from fraudstream_common.settings import ServiceSettings
    from fraudstream_common.topics import Topic, topic_name
    from fraudstream_registry.publisher import EventPublisher
    from tests.integration.monitor.conftest import register_versions
    from tests.integration.monitor.service import monitor_service
    from tests.platform import PLATFORM, producer

    prefix = f"bench-monitor-{uuid.uuid4().hex[:8]}."
    KafkaBroker(PlatformSettings(topic_prefix=prefix)).ensure_topics()
    experiment = f"bench-monitor-{uuid.uuid4().hex[:8]}"
    model = f"fraud-detector-{experiment}"
    registry = register_versions(model, experiment, np.random.default_rng(0))
    publisher = EventPublisher(
        ServiceSettings(kafka_bootstrap_servers=PLATFORM.kafka_bootstrap),
        topic_name(Topic.MODELS_PUBLISHED, prefix),
        client_id="bench",
    )
    event: ModelPublished = registry.published_event("1", "champion")
    publisher(event)
    publisher.close()
    kafka = producer()
    for value in records:
        while True:
            try:
                kafka.produce(topic_name(Topic.PREDICTIONS, prefix), value, b"k")
                break
            except BufferError:
                kafka.poll(0.05)
    assert kafka.flush(60) == 0
    with tempfile.TemporaryDirectory() as logs:
        monitor = monitor_service(prefix, Path(logs), experiment, model, log_level="WARNING")
        monitor.start(wait_ready=False)
        try:
            monitor.wait_ready(120)
            started = time.perf_counter()
            while monitor.metric("fraudstream_monitor_predictions_total") < len(records):
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            monitor.terminate()
    delete_topics(prefix)
    return len(records) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--predictions", type=int, default=200_000)
    parser.add_argument("--service", action="store_true", help="Also measure the monitor process over Kafka.")
    arguments = parser.parse_args()
    records = serialized(arguments.predictions, seed=1)
    mixed = interleaved(records, seed=2)
    # Every stretch of event time lies within the lateness of every other.
    span = arguments.predictions // 3000 * 3600.0 + 3600.0
    rounds: list[dict[str, float | None]] = []
    for round_number in range(1, arguments.rounds + 1):
        measured: dict[str, float | None] = {
            "core": core_rate(records),
            "core_in_order_with_lateness": core_rate(records, span),
            "core_interleaved": core_rate(mixed, span),
            "per_prediction_river": per_prediction_river_rate(records[: len(records) // 10]),
            "service": service_rate(records) if arguments.service else None,
        }
        rounds.append(measured)
        print(f"round {round_number}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in measured.items() if v), flush=True)
    medians = {key: statistics.median(r[key] or 0.0 for r in rounds) for key in rounds[0] if rounds[0][key]}
    ratios = {
        "core / per_prediction_river": medians["core"] / medians["per_prediction_river"],
        "core_interleaved / core_in_order_with_lateness": medians["core_interleaved"]
        / medians["core_in_order_with_lateness"],
    }
    print(f"median over {len(rounds)} rounds of {arguments.predictions:,} predictions:")
    for key, value in medians.items():
        print(f"  {key}: {value:,.0f} predictions/s")
    for key, value in ratios.items():
        print(f"  ratio {key}: {value:.2f}")
    write_results(
        "monitor_throughput",
        {
            "predictions": arguments.predictions,
            "lanes": LANES,
            "rounds": rounds,
            "medians_per_second": medians,
            "ratios": ratios,
        },
    )


if __name__ == "__main__":
    main()
