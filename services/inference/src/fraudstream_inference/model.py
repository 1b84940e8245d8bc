"""A servable model: one ONNX Runtime session, the version it came from, its thresholds and its
input signature; loaded from a `models.published` record, verified and warmed before it serves.

ONNX Runtime releases a session's memory when the session is destroyed, except the CUDA arena,
which by default only grows: sessions here take the arena's `kSameAsRequested` strategy and
shrink it after each run, so that many swaps keep GPU memory flat.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.schemas.v1.prediction_pb2 import Decision
from fraudstream_inference.settings import Device
from fraudstream_registry.registry import ArtifactError, Registry

logger = logging.getLogger(__name__)

_FEATURE_NAMES = list(FEATURE_NAMES)


class ModelRefusedError(Exception):
    """A published artifact that must not serve: missing, tampered, or not for our features."""


@dataclass(frozen=True)
class ScoringModel:
    name: str
    version: str
    alias: str
    sha256: str
    threshold: float
    decline_threshold: float
    session: ort.InferenceSession = field(repr=False)
    provider: str
    onnx_model: bytes = field(repr=False)
    loaded_at: float = field(default_factory=time.time)
    # Looked up once at load, not on every request.
    input_name: str = "features"
    run_options: ort.RunOptions | None = field(default=None, repr=False)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Fraud probabilities of rows of FEATURE_NAMES (float32)."""
        _labels, probabilities = self.session.run(None, {self.input_name: features}, self.run_options)
        return np.asarray(probabilities, dtype=np.float64)[:, 1]

    def decide(self, score: float) -> int:
        if score >= self.decline_threshold:
            return int(Decision.DECISION_DECLINE)
        if score >= self.threshold:
            return int(Decision.DECISION_REVIEW)
        return int(Decision.DECISION_APPROVE)


def run_options_for(provider: str) -> ort.RunOptions | None:
    """On CUDA, the arena gives back what a run took (flat GPU memory across swaps)."""
    if provider != "CUDAExecutionProvider":
        return None
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "gpu:0")
    return options


def providers_for(device: Device) -> list[Any]:
    available = ort.get_available_providers()
    if device is Device.CPU or (device is Device.AUTO and "CUDAExecutionProvider" not in available):
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise RuntimeError("device cuda: this onnxruntime build has no CUDA provider (install onnxruntime-gpu)")
    return [("CUDAExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"}), "CPUExecutionProvider"]


def session_for(onnx_model: bytes, device: Device, intra_op_threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # One row at a time: no thread pool to wake, no spinning between requests.
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_model, sess_options=options, providers=providers_for(device))


def confirmed(event: ModelPublished, registry: Registry) -> bytes:
    """The version's ONNX file, from the registry, if the registry confirms the record (the
    version holds the alias it claims, with its checksum): a record forged or replayed on the
    topic installs nothing."""
    try:
        return registry.confirmed_onnx(event)
    except ArtifactError as refused:
        raise ModelRefusedError(str(refused)) from refused
    except Exception as error:
        raise ModelRefusedError(f"version {event.version}: the registry did not answer: {error}") from error


def load(
    event: ModelPublished, onnx_model: bytes, *, device: Device, intra_op_threads: int, warmup_rows: int
) -> ScoringModel:
    """Checks the input signature against the features this service computes, opens the
    session and warms it up (single rows and a batch), so that its first request is not slow."""
    signature = [spec.name for spec in event.input_signature]
    if signature != _FEATURE_NAMES:
        raise ModelRefusedError(
            f"version {event.version}: input signature {signature[:3]}... is not this service's features "
            f"({len(signature)} against {len(_FEATURE_NAMES)})"
        )
    try:
        graph = onnx.load_from_string(onnx_model)
        (graph_input,) = graph.graph.input
        width = graph_input.type.tensor_type.shape.dim[1].dim_value
    except Exception as error:
        raise ModelRefusedError(f"version {event.version}: not a one-input ONNX model: {error}") from error
    if width != len(_FEATURE_NAMES):
        raise ModelRefusedError(f"version {event.version}: takes {width} features, not {len(_FEATURE_NAMES)}")
    if not 0 < event.threshold <= event.decline_threshold <= 1:
        raise ModelRefusedError(
            f"version {event.version}: thresholds review {event.threshold} and decline {event.decline_threshold}"
        )
    try:
        session = session_for(onnx_model, device, intra_op_threads)
    except Exception as error:
        raise ModelRefusedError(f"version {event.version}: ONNX Runtime refused it: {error}") from error
    model = ScoringModel(
        name=event.model_name,
        version=event.version,
        alias=event.alias,
        sha256=event.sha256,
        threshold=event.threshold,
        decline_threshold=event.decline_threshold,
        session=session,
        provider=session.get_providers()[0],
        onnx_model=onnx_model,
        input_name=str(session.get_inputs()[0].name),
        run_options=run_options_for(session.get_providers()[0]),
    )
    rows = np.random.default_rng(0).random((warmup_rows, len(_FEATURE_NAMES)), dtype=np.float32)
    for row in rows[:32]:
        model.scores(row[None, :])
    scores = model.scores(rows)
    if not np.all(np.isfinite(scores)) or np.any((scores < 0) | (scores > 1)):
        raise ModelRefusedError(f"version {event.version}: warm-up scores are not probabilities")
    return model
