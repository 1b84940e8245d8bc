"""The model versions the monitor knows: every `models.published` record, and each version's
reference distribution (`reference.json` of its MLflow run, stored by the trainer).

The topic keeps every record; the follower reads it from the beginning with no consumer group
(every monitor replica needs all of it) and no commits. A version is judged against its own
reference; one whose run has no reference (or whose run cannot be read) is watched for quality
only, and says so on the console.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import mlflow.artifacts
from google.protobuf.message import DecodeError
from mlflow.exceptions import MlflowException

from fraudstream_common.reference import Reference
from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.stream import TopicFollower
from fraudstream_common.timestamps import seconds_of
from fraudstream_monitor.settings import MonitorSettings

logger = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "reference.json"


@dataclass(frozen=True)
class Version:
    version: str
    alias: str
    run_id: str
    published_at: float
    metrics: dict[str, float]
    review_threshold: float
    decline_threshold: float


class Versions(Protocol):
    """What the monitor needs to know of the published versions (`VersionCatalogue`)."""

    def get(self, version: str) -> Version | None: ...

    def reference(self, version: str) -> Reference | None: ...


class VersionCatalogue:
    """Published versions and their references; safe to use from any thread."""

    def __init__(self, tracking_uri: str) -> None:
        self._tracking_uri = tracking_uri
        self._lock = threading.Lock()
        self._versions: dict[str, Version] = {}
        self._references: dict[str, Reference | None] = {}

    def published(self, event: ModelPublished) -> None:
        version = Version(
            version=event.version,
            alias=event.alias,
            run_id=event.run_id,
            published_at=seconds_of(event.published_at),
            metrics=dict(event.metrics),
            review_threshold=event.threshold,
            decline_threshold=event.decline_threshold,
        )
        with self._lock:
            self._versions[event.version] = version

    def get(self, version: str) -> Version | None:
        with self._lock:
            return self._versions.get(version)

    def all(self) -> list[Version]:
        with self._lock:
            return sorted(self._versions.values(), key=lambda v: int(v.version) if v.version.isdigit() else 0)

    def reference(self, version: str) -> Reference | None:
        """The version's reference, fetched from MLflow once (None: unknown version, or no
        reference stored; asked again only for a version not yet published)."""
        with self._lock:
            if version in self._references:
                return self._references[version]
            known = self._versions.get(version)
        if known is None:
            return None
        reference = self._fetch(known)
        with self._lock:
            self._references[version] = reference
        return reference

    def has_reference(self, version: str) -> bool:
        with self._lock:
            return self._references.get(version) is not None

    def _fetch(self, version: Version) -> Reference | None:
        try:
            with tempfile.TemporaryDirectory() as scratch:
                local = mlflow.artifacts.download_artifacts(
                    run_id=version.run_id,
                    artifact_path=REFERENCE_ARTIFACT,
                    dst_path=scratch,
                    tracking_uri=self._tracking_uri,
                )
                return Reference.from_json(json.loads(Path(local).read_text()))
        except (MlflowException, OSError, ValueError, KeyError, TypeError) as unusable:
            logger.warning(
                "no usable reference for this version: drift is not watched for it",
                extra={"model_version": version.version, "error": str(unusable)},
            )
            return None


class PublishedFollower(TopicFollower):
    """Feeds the catalogue from `models.published`; ready once it has read what was there."""

    name = "published-follower"

    def __init__(self, settings: MonitorSettings, catalogue: VersionCatalogue, topic: str) -> None:
        super().__init__(settings, topic, client_id=f"{settings.instance_id}-models")
        self._registered_model = settings.registered_model
        self._catalogue = catalogue

    def _follow(self, value: bytes) -> None:
        try:
            event = ModelPublished.FromString(value)
        except DecodeError:
            logger.error("undecodable models.published record skipped")
            return
        if event.model_name == self._registered_model:
            self._catalogue.published(event)
