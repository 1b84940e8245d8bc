"""The model registry as fraudstream uses it: a version's ONNX (checksum verified), the
aliases the gate and operators move, the `models.published` event of a version, and what earlier runs did
(for idempotency by request id and the cooldown). Everything lives in MLflow: a restarted
trainer, or a second one, sees the same history."""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, ErrorCode

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.model_pb2 import FeatureSpec, ModelPublished
from fraudstream_common.timestamps import timestamp_of

CHAMPION = "champion"
CHALLENGER = "challenger"
# Run tags: the request a run answered, and what became of it (set last, once the run is done).
REQUEST_TAG = "retrain_request_id"
OUTCOME_TAG = "outcome"
METRIC_TAG_PREFIX = "metric."
# A registered-model tag: what the trainer's first model waits for, while it waits.
FIRST_MODEL_WAIT_TAG = "first_model.waiting_for"
# The same trees as a tensor graph, beside the registered TreeEnsemble graph: a run artifact
# (`tensor/model.onnx`) and its checksum as a version tag. Versions made before have neither.
TENSOR_FOLDER = "tensor"
TENSOR_SHA256_TAG = "tensor_sha256"
# The model the gate judged, where the version serves the same recipe refit on later data: a
# run artifact (`judged/model.onnx`) and its checksum as a version tag.
JUDGED_FOLDER = "judged"
JUDGED_SHA256_TAG = "judged_sha256"
ONNX_FILE = "model.onnx"


# What MLflow answers for a model, or an alias, that does not exist.
_ABSENT = (ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE))


class ArtifactError(Exception):
    """A registered version's artifact is missing or does not match its checksum."""


@dataclass(frozen=True)
class RegisteredModel:
    version: str
    onnx_model: bytes
    features: tuple[str, ...]
    run_id: str


class UnconfirmedError(ArtifactError):
    """A `models.published` record the registry does not bear out."""


class Registry:
    def __init__(self, tracking_uri: str, model_name: str, experiment: str = "") -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.experiment = experiment
        self.client = MlflowClient(tracking_uri)

    def aliased_version(self, alias: str) -> str | None:
        """The version that holds `alias`; None when the model or the alias does not exist.
        Raises MlflowException when the registry cannot say (unreachable)."""
        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except MlflowException as error:
            if error.error_code in _ABSENT:
                return None
            raise

    def holder(self, alias: str) -> RegisteredModel | None:
        """The version that holds `alias`, its ONNX verified against the version's checksum."""
        try:
            version = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None
        return RegisteredModel(
            version=str(version.version),
            onnx_model=self.onnx_model(str(version.version)),
            features=tuple(version.tags.get("features", ",".join(FEATURE_NAMES)).split(",")),
            run_id=version.run_id or "",
        )

    def confirmed_onnx(self, published: ModelPublished) -> bytes:
        """The ONNX file of the version a `models.published` record names, from the registry's
        own copy, only if the registry confirms the record: that version holds the record's
        alias now and its checksum is the record's. Anyone who can write to the topic could
        write the record; only the trainer and the operators move aliases in the registry."""
        if published.model_name != self.model_name:
            raise UnconfirmedError(f"version {published.version}: a record for model {published.model_name}")
        try:
            holder = self.client.get_model_version_by_alias(self.model_name, published.alias)
        except MlflowException as error:
            raise UnconfirmedError(
                f"version {published.version}: the registry gives {published.alias} to no version ({error})"
            ) from error
        if str(holder.version) != published.version:
            raise UnconfirmedError(
                f"version {published.version}: the registry gives {published.alias} to version {holder.version}"
            )
        if holder.tags.get("sha256") != published.sha256:
            raise UnconfirmedError(f"version {published.version}: the record's SHA-256 is not the registry's")
        return self.onnx_model(published.version)

    def artifact_uri(self, version: str) -> str:
        uri: str = self.client.get_model_version_download_uri(self.model_name, version)
        return uri

    def onnx_model(self, version: str) -> bytes:
        expected = self.client.get_model_version(self.model_name, version).tags.get("sha256")
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=self.artifact_uri(version), dst_path=scratch, tracking_uri=self.tracking_uri
                )
            )
            files = list(local.rglob("*.onnx"))
            if len(files) != 1:
                raise ArtifactError(f"version {version}: expected one .onnx file, found {len(files)}")
            onnx_model = files[0].read_bytes()
        if expected is None or hashlib.sha256(onnx_model).hexdigest() != expected:
            raise ArtifactError(f"version {version}: the ONNX file does not match its sha256 tag")
        return onnx_model

    def tensor_onnx(self, version: str) -> bytes | None:
        """The version's tensor graph, verified against its checksum tag; None for a version
        registered without one."""
        return self._run_onnx(version, TENSOR_FOLDER, TENSOR_SHA256_TAG)

    def judged_onnx(self, version: str) -> bytes | None:
        """The model the gate judged when the version was made, where the version serves another
        (the same recipe refit on later data), verified against its checksum tag; None where
        the gate judged the served model itself."""
        return self._run_onnx(version, JUDGED_FOLDER, JUDGED_SHA256_TAG)

    def _run_onnx(self, version: str, folder: str, tag: str) -> bytes | None:
        model_version = self.client.get_model_version(self.model_name, version)
        expected = model_version.tags.get(tag)
        if expected is None:
            return None
        with tempfile.TemporaryDirectory() as scratch:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    run_id=model_version.run_id,
                    artifact_path=f"{folder}/{ONNX_FILE}",
                    dst_path=scratch,
                    tracking_uri=self.tracking_uri,
                )
            )
            onnx_model = local.read_bytes()
        if hashlib.sha256(onnx_model).hexdigest() != expected:
            raise ArtifactError(f"version {version}: {folder}/{ONNX_FILE} does not match its {tag} tag")
        return onnx_model

    def set_model_note(self, key: str, value: str | None) -> None:
        """A tag of the registered model (created, with no version, where it does not exist yet);
        None removes it."""
        if value is None:
            try:
                self.client.delete_registered_model_tag(self.model_name, key)
            except MlflowException as error:
                if error.error_code not in _ABSENT:
                    raise
            return
        try:
            self.client.set_registered_model_tag(self.model_name, key, value)
        except MlflowException as error:
            if error.error_code not in _ABSENT:
                raise
            self.client.create_registered_model(self.model_name, tags={key: value})

    def model_notes(self) -> tuple[dict[str, str], dict[str, str]]:
        """The registered model's aliases (alias -> version) and tags; empty before it exists."""
        try:
            model = self.client.get_registered_model(self.model_name)
        except MlflowException as error:
            if error.error_code in _ABSENT:
                return {}, {}
            raise
        return {alias: str(version) for alias, version in model.aliases.items()}, dict(model.tags)

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, version)

    def set_version_tag(self, version: str, key: str, value: str) -> None:
        self.client.set_model_version_tag(self.model_name, version, key, value)

    def published_event(self, version: str, alias: str) -> ModelPublished:
        """The `models.published` record of `version` under `alias`, from what the registry holds."""
        model_version = self.client.get_model_version(self.model_name, version)
        tags = model_version.tags
        return ModelPublished(
            model_name=self.model_name,
            version=version,
            alias=alias,
            artifact_uri=self.artifact_uri(version),
            sha256=tags["sha256"],
            metrics={
                k.removeprefix(METRIC_TAG_PREFIX): float(v) for k, v in tags.items() if k.startswith(METRIC_TAG_PREFIX)
            },
            threshold=float(tags["review_threshold"]),
            decline_threshold=float(tags["decline_threshold"]),
            input_signature=[FeatureSpec(name=name, dtype="float") for name in tags["features"].split(",")],
            run_id=model_version.run_id or "",
            published_at=timestamp_of(time.time()),
        )

    def answered(self, request_id: str) -> str | None:
        """The outcome of the finished run that answered `request_id`, if there is one. A run
        that crashed before its outcome was written does not count: the request is redone."""
        for run in self._runs(f"tags.{REQUEST_TAG} = '{_quoted(request_id)}'", max_results=20):
            outcome = run.data.tags.get(OUTCOME_TAG)
            if outcome:
                return str(outcome)
        return None

    def last_run_started(self) -> float | None:
        """When the latest run with an outcome started (Unix seconds)."""
        for run in self._runs(f"tags.{OUTCOME_TAG} != ''", max_results=1):
            return float(run.info.start_time) / 1000
        return None

    def set_outcome(self, run_id: str, outcome: str) -> None:
        self.client.set_tag(run_id, OUTCOME_TAG, outcome)

    def _runs(self, filter_string: str, max_results: int) -> list[mlflow.entities.Run]:
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is None:
            return []
        runs: list[mlflow.entities.Run] = self.client.search_runs(
            [experiment.experiment_id],
            filter_string=filter_string,
            order_by=["attributes.start_time DESC"],
            max_results=max_results,
        )
        return runs


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
