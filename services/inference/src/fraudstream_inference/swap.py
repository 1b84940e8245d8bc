"""Hot-swap: every replica follows `models.published` and swaps each new version in.

The topic keeps every record. A starting replica reads it from the beginning, with no consumer
group (every replica must see every record) and no commits, and loads the latest champion,
then the latest challenger published after it; then it follows new records. A record is only
a notice: the registry must confirm it (the version holds the record's alias there, with the
record's checksum), and the file comes from the registry, not from the record's URI. Each
version is downloaded, checked (SHA-256, input signature, thresholds), warmed up, and installed by one
reference assignment in the rollout: requests in flight finish on the model they started with,
the next ones take the new one, and the old session is released when the last one is done. An
artifact that fails a check is refused: the current model keeps serving, a counter goes up.
"""

from __future__ import annotations

import logging

from google.protobuf.message import DecodeError

from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.stream import TopicFollower
from fraudstream_inference import metrics
from fraudstream_inference.model import ModelRefusedError, confirmed, load, tensor_min_rows_for
from fraudstream_inference.rollout import CHAMPION, Rollout
from fraudstream_inference.settings import Device, InferenceSettings
from fraudstream_registry.registry import Registry

logger = logging.getLogger(__name__)


class ModelFollower(TopicFollower):
    name = "model-follower"

    def __init__(self, settings: InferenceSettings, rollout: Rollout, topic: str, device: Device) -> None:
        """`device`: cpu or cuda (model.resolve_device)."""
        super().__init__(settings, topic, client_id=f"{settings.instance_id}-models")
        self._settings = settings
        self._rollout = rollout
        self._device = device
        self._tensor_min_rows = tensor_min_rows_for(device, settings.tensor_graph_min_rows)
        self._registry = Registry(settings.mlflow_tracking_uri, settings.registered_model)

    def _caught_up(self, values: list[bytes]) -> None:
        """Loads the latest champion, and the latest challenger published after it."""
        latest: dict[str, ModelPublished] = {}
        order: list[str] = []
        for value in values:
            event = self._decode(value)
            if event is None:
                continue
            latest[event.alias] = event
            order = [a for a in order if a != event.alias] + [event.alias]
            if event.alias == CHAMPION:
                latest.pop("challenger", None)
                order = [CHAMPION]
        for alias in order:
            if alias in latest:
                self._install(latest[alias])

    def _follow(self, value: bytes) -> None:
        published = self._decode(value)
        if published is not None:
            self._install(published)

    def _decode(self, value: bytes | None) -> ModelPublished | None:
        try:
            event = ModelPublished.FromString(value or b"")
        except DecodeError:
            logger.error("undecodable models.published record skipped")
            return None
        if event.model_name != self._settings.registered_model:
            return None
        return event

    def _install(self, event: ModelPublished) -> None:
        settings = self._settings
        try:
            onnx_model, tensor_model = confirmed(event, self._registry, tensor=self._tensor_min_rows > 0)
            model = load(
                event,
                onnx_model,
                device=self._device,
                intra_op_threads=settings.intra_op_threads,
                warmup_rows=settings.warmup_rows,
                tensor_model=tensor_model,
                tensor_min_rows=self._tensor_min_rows,
            )
        except ModelRefusedError as refused:
            metrics.SWAPS.labels(event.alias, "refused").inc()
            logger.error("model refused; the current one keeps serving: %s", refused)
            self._rollout.refused(event.alias, event.version, str(refused))
            return
        self._rollout.install(model)
        metrics.SWAPS.labels(event.alias, "swapped").inc()
        logger.info(
            "model swapped in",
            extra={"model_version": model.version, "alias": model.alias, "placement": model.placement()},
        )
