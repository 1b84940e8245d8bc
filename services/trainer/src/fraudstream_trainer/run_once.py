"""One training run now, outside the service: `python -m fraudstream_trainer train`, which
`fraudstream train` runs.

The run is the one the service makes for a forced retrain request: the same pipeline, the same
settings (FRAUDSTREAM_), features from Feast's offline store. Its outcome is printed on stdout as
one JSON object (outcome, version, run_id, reasons, metrics, champion_metrics, published);
everything else (MLflow's links, progress) goes to stderr. The exit status is 0 when the run was
promoted or rejected by the gate, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from fraudstream_common.topics import Topic, topic_name
from fraudstream_registry.publisher import EventPublisher
from fraudstream_trainer.labels import read_labels
from fraudstream_trainer.pipeline import Outcome, Trainer, TrainRequest
from fraudstream_trainer.settings import TrainerSettings

# The outcomes of a run that went as asked: the gate decided.
DECIDED = (Outcome.PROMOTED, Outcome.REJECTED)


def train_once(
    settings: TrainerSettings,
    *,
    history: Path | None = None,
    cutoff: pd.Timestamp | None = None,
    publish: bool = True,
    reason: str = "operator",
) -> tuple[Outcome, dict[str, Any]]:
    """Train, gate and (if it passes) promote a model as of `cutoff` (default: the latest label).

    Labels come from `history`'s labels.parquet (a simulator folder) when given, else from the
    trainer's label store. `publish` sends models.published on promotion (needs Kafka)."""
    if history is not None:
        labels_path = history / "labels.parquet"
        if not labels_path.exists():
            raise FileNotFoundError(f"{labels_path} does not exist (write it with fraudstream simulate --out)")
        labels = pd.read_parquet(labels_path)
    else:
        labels = read_labels(settings.feature_offline_dir)
    publisher = None
    if publish:
        publisher = EventPublisher(
            settings, topic_name(Topic.MODELS_PUBLISHED, settings.topic_prefix), client_id="fraudstream-cli"
        )
    trainer = Trainer(settings, settings.feast(), lambda: labels, publisher)
    request = TrainRequest(f"cli-{uuid.uuid4()}", reason, "fraudstream train", force=True, cutoff=cutoff)
    try:
        result = trainer.handle(request)
    finally:
        if publisher is not None:
            publisher.close()
    return result.outcome, {
        "outcome": result.outcome.value,
        "version": result.version,
        "run_id": result.run_id,
        "reasons": list(result.reasons),
        "metrics": result.metrics,
        "champion_metrics": result.champion_metrics,
        "published": result.published is not None,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraudstream_trainer train", description=__doc__)
    parser.add_argument("--history", type=Path, help="labels from this simulator folder's labels.parquet")
    parser.add_argument("--cutoff", help="train as of this time (ISO 8601, UTC); default: the latest label")
    parser.add_argument("--no-publish", dest="publish", action="store_false", help="do not send models.published")
    parser.add_argument("--reason", default="operator", help="why, for the run's record")
    arguments = parser.parse_args(argv)
    try:
        cutoff = None if arguments.cutoff is None else pd.Timestamp(arguments.cutoff)
    except ValueError as error:
        parser.error(f"--cutoff {arguments.cutoff!r}: {error}")
    # MLflow prints links to the run on stdout: keep stdout for the outcome.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            outcome, summary = train_once(
                TrainerSettings(),
                history=arguments.history,
                cutoff=cutoff,
                publish=arguments.publish,
                reason=arguments.reason,
            )
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0 if outcome in DECIDED else 1
