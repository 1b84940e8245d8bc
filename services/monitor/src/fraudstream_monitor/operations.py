"""What an operator can do from the console, besides what the core does (pause, force):
move the champion alias (promote a version, roll back to the one the champion replaced) and
publish it on `models.published`, from which every inference replica swaps it in. The registry
is the truth about aliases; the console reads it from here too."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mlflow.exceptions import MlflowException

from fraudstream_registry.publisher import EventPublisher
from fraudstream_registry.registry import CHAMPION, FIRST_MODEL_WAIT_TAG, OUTCOME_TAG, REQUEST_TAG, Registry

logger = logging.getLogger(__name__)


class OperationError(Exception):
    """The operation cannot be done (an unknown version, nothing to roll back to)."""


@dataclass(frozen=True)
class AliasMove:
    alias: str
    version: str
    previous: str | None


class Operations:
    def __init__(self, registry: Registry, publisher: EventPublisher) -> None:
        self._registry = registry
        self._publisher = publisher

    def promote(self, version: str, by: str) -> AliasMove:
        """Makes `version` the champion and publishes it. Blocking (MLflow, Kafka)."""
        client = self._registry.client
        name = self._registry.model_name
        try:
            target = client.get_model_version(name, version)
        except MlflowException as unknown:
            raise OperationError(f"version {version} of {name} does not exist") from unknown
        if "sha256" not in target.tags:
            raise OperationError(f"version {version} has no checksum: it was never a candidate")
        previous = self.aliases().get(CHAMPION)
        self._registry.set_alias(CHAMPION, version)
        if previous and previous != version:
            self._registry.set_version_tag(version, "replaces", previous)
        self._publisher(self._registry.published_event(version, CHAMPION))
        logger.warning(
            "champion moved by an operator", extra={"model_version": version, "previous": previous, "by": by}
        )
        return AliasMove(CHAMPION, version, previous)

    def roll_back(self, by: str) -> AliasMove:
        """Makes the version the champion replaced the champion again."""
        champion = self.aliases().get(CHAMPION)
        if champion is None:
            raise OperationError("there is no champion to roll back")
        replaced = self._registry.client.get_model_version(self._registry.model_name, champion).tags.get("replaces")
        if not replaced:
            raise OperationError(f"champion version {champion} replaced no earlier version")
        move = self.promote(replaced, by)
        self._registry.set_version_tag(champion, "rolled_back_by", by)
        return AliasMove(CHAMPION, move.version, champion)

    def aliases(self) -> dict[str, str]:
        return self.registry_state()[0]

    def registry_state(self) -> tuple[dict[str, str], str | None]:
        """The aliases (alias -> version), and what the trainer's first model waits for while
        there is none."""
        try:
            aliases, tags = self._registry.model_notes()
        except MlflowException:
            return {}, None
        return aliases, tags.get(FIRST_MODEL_WAIT_TAG)

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """The trainer's latest runs: what each retrain request came to."""
        client = self._registry.client
        experiment = client.get_experiment_by_name(self._registry.experiment)
        if experiment is None:
            return []
        runs = client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
        )
        return [
            {
                "run_id": run.info.run_id,
                "started_at": run.info.start_time / 1000,
                "request_id": run.data.tags.get(REQUEST_TAG, ""),
                "outcome": run.data.tags.get(OUTCOME_TAG, "running"),
                "average_precision": run.data.metrics.get("average_precision"),
            }
            for run in runs
        ]
