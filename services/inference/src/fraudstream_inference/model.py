"""A servable model: its ONNX Runtime sessions, the version it came from, its thresholds and its
input signature; loaded from a `models.published` record, verified and warmed before it serves.

Two graphs of the same trees (fraudstream_trainer.tensor_graph): the TreeEnsemble graph, which
ONNX Runtime runs on the CPU only (it has no CUDA kernel for it), scores single rows and small
batches; the tensor graph, whose operators the CUDA provider runs, scores batches of at least
`tensor_min_rows` (stream micro-batches, PredictBatch) on the device. On the CPU the
TreeEnsemble graph is faster at every batch size (`benchmarks/tensor_graph.py`), so there the
tensor graph is used only when asked for.

On CUDA the arena grows only as asked (`kSameAsRequested`) and stays with its session: it
holds what the largest batch needed and goes when a swap drops the session, so GPU memory
stays flat across swaps (`benchmarks/gpu_path.py`). It is not shrunk after each run: that
would hold less memory at the price of an allocation per run, on every batch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.schemas.v1.prediction_pb2 import Decision
from fraudstream_inference import metrics
from fraudstream_inference.settings import Device
from fraudstream_registry.registry import ArtifactError, Registry

logger = logging.getLogger(__name__)

_FEATURE_NAMES = list(FEATURE_NAMES)
# The crossover benchmarks/tensor_graph.py measured on an H200 (results/tensor_graph.json): below
# it, a kernel launch per node costs more than the TreeEnsemble graph's CPU run.
TENSOR_MIN_ROWS_ON_CUDA = 16
# The trainer checks both graphs against the native model within 1e-5; this guards the
# device's arithmetic at load.
TENSOR_PARITY_TOLERANCE = 1e-4


class ModelRefusedError(Exception):
    """A published artifact that must not serve: missing, tampered, or not for our features."""


class Graph(StrEnum):
    TREE_ENSEMBLE = "tree_ensemble"
    TENSOR = "tensor"


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
    # The tensor graph's session (None: every batch on the TreeEnsemble graph).
    tensor_session: ort.InferenceSession | None = field(default=None, repr=False)
    tensor_provider: str = ""
    tensor_min_rows: int = 0

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Fraud probabilities of rows of FEATURE_NAMES (float32)."""
        if self.tensor_session is not None and len(features) >= self.tensor_min_rows:
            session, graph, provider = self.tensor_session, Graph.TENSOR, self.tensor_provider
        else:
            session, graph, provider = self.session, Graph.TREE_ENSEMBLE, self.provider
        _labels, probabilities = session.run(None, {self.input_name: features})
        metrics.SCORING_RUNS.labels(graph.value, provider).inc()
        return np.asarray(probabilities, dtype=np.float64)[:, 1]

    def placement(self) -> str:
        """Which graph on which provider scores what, in words."""
        tree = f"{Graph.TREE_ENSEMBLE.value} on {self.provider}"
        if self.tensor_session is None:
            return f"every batch: {tree}"
        return (
            f"under {self.tensor_min_rows} rows: {tree}; from {self.tensor_min_rows} rows: "
            f"{Graph.TENSOR.value} on {self.tensor_provider}"
        )

    def decide(self, score: float) -> int:
        if score >= self.decline_threshold:
            return int(Decision.DECISION_DECLINE)
        if score >= self.threshold:
            return int(Decision.DECISION_REVIEW)
        return int(Decision.DECISION_APPROVE)


def cuda_probe() -> bytes:
    """A one-operator graph to open on CUDA, stamped with the lowest IR version of its opset so
    that any ONNX Runtime build loads it (the onnx package's default may be newer than the
    runtime's)."""
    opsets = [helper.make_opsetid("", 15)]
    probe = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "probe",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        ),
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
    )
    return probe.SerializeToString()


def cuda_unusable() -> str | None:
    """Why ONNX Runtime cannot score on CUDA here; None when it can. A build with the provider
    but no CUDA libraries or device falls back to the CPU with only a warning: a probe session
    says which provider it really got."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"this onnxruntime build has no CUDA provider ({', '.join(ort.get_available_providers())})"
    # CUDA and cuDNN installed from PyPI (nvidia-* wheels) are outside the loader's path: ONNX
    # Runtime loads them from there; with none (the GPU image's come with its CUDA base), it
    # looks where the loader does.
    ort.preload_dlls()
    try:
        session = ort.InferenceSession(cuda_probe(), providers=providers_for(Device.CUDA))
    except Exception as error:
        return f"a CUDA session failed: {error}"
    if session.get_providers()[0] != "CUDAExecutionProvider":
        return "ONNX Runtime fell back to the CPU (no usable CUDA device or libraries)"
    return None


def resolve_device(device: Device) -> Device:
    """cpu or cuda: auto takes CUDA where it is usable; cuda where it is not raises RuntimeError,
    so that a service asked to score on the GPU never scores on the CPU without saying so."""
    if device is Device.CPU:
        return Device.CPU
    reason = cuda_unusable()
    if reason is None:
        return Device.CUDA
    if device is Device.CUDA:
        raise RuntimeError(f"FRAUDSTREAM_DEVICE=cuda, but {reason}")
    return Device.CPU


def tensor_min_rows_for(device: Device, setting: int | None) -> int:
    """Batches of at least this many rows go to the tensor graph (0: none)."""
    if setting is not None:
        return setting
    return TENSOR_MIN_ROWS_ON_CUDA if device is Device.CUDA else 0


def providers_for(device: Device) -> list[Any]:
    if device is Device.CPU:
        return ["CPUExecutionProvider"]
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


def confirmed(event: ModelPublished, registry: Registry, *, tensor: bool) -> tuple[bytes, bytes | None]:
    """The version's ONNX file, and with `tensor` its tensor graph (None where it has none),
    from the registry, if the registry confirms the record (the version holds the alias it
    claims, with its checksum): a record forged or replayed on the topic installs nothing."""
    try:
        onnx_model = registry.confirmed_onnx(event)
        return onnx_model, registry.tensor_onnx(event.version) if tensor else None
    except ArtifactError as refused:
        raise ModelRefusedError(str(refused)) from refused
    except Exception as error:
        raise ModelRefusedError(f"version {event.version}: the registry did not answer: {error}") from error


def load(
    event: ModelPublished,
    onnx_model: bytes,
    *,
    device: Device,
    intra_op_threads: int,
    warmup_rows: int,
    tensor_model: bytes | None = None,
    tensor_min_rows: int = 0,
) -> ScoringModel:
    """Checks the input signature against the features this service computes, opens the
    sessions and warms them up (single rows and a batch), so that the first request is not slow.
    `device`: cpu or cuda (resolve_device), where the tensor graph runs; the TreeEnsemble graph
    runs on the CPU. The tensor graph serves batches of `tensor_min_rows` or more (0: none) once
    it scores the warm-up rows as the TreeEnsemble graph does."""
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
        session = session_for(onnx_model, Device.CPU, intra_op_threads)
        tensor_session = None
        if tensor_model is not None and tensor_min_rows > 0:
            tensor_session = session_for(tensor_model, device, intra_op_threads)
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
        **(
            {}
            if tensor_session is None
            else {
                "tensor_session": tensor_session,
                "tensor_provider": tensor_session.get_providers()[0],
                "tensor_min_rows": tensor_min_rows,
            }
        ),
    )
    rows = np.random.default_rng(0).random((warmup_rows, len(_FEATURE_NAMES)), dtype=np.float32)
    for row in rows[:32]:
        model.scores(row[None, :])
    scores = model.scores(rows)
    if not np.all(np.isfinite(scores)) or np.any((scores < 0) | (scores > 1)):
        raise ModelRefusedError(f"version {event.version}: warm-up scores are not probabilities")
    if tensor_session is not None:
        _labels, tree = session.run(None, {model.input_name: rows})
        _labels, tensor = tensor_session.run(None, {model.input_name: rows})
        difference = float(np.max(np.abs(np.asarray(tree)[:, 1] - np.asarray(tensor)[:, 1])))
        if difference > TENSOR_PARITY_TOLERANCE:
            raise ModelRefusedError(
                f"version {event.version}: its tensor graph on {model.tensor_provider} scores up to "
                f"{difference:.1e} away from its TreeEnsemble graph (tolerance {TENSOR_PARITY_TOLERANCE:.0e})"
            )
    return model
