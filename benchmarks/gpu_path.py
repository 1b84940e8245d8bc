"""Inference's ONNX Runtime GPU path, on a machine with an NVIDIA GPU and onnxruntime-gpu:

    uv pip uninstall onnxruntime && uv pip install onnxruntime-gpu
    uv run --no-sync python benchmarks/gpu_path.py --swaps 50 --repeats 2000

A model with the trainer's default parameters is trained on random rows of the service's
width and exported to ONNX as the trainer exports it, both graphs; inference loads it as a
published version (fraudstream_inference.model.load: signature check, sessions, warm-up) on
`cuda` (batches on the tensor graph there) and on `cpu`. For the graphs by batch size, see
tensor_graph.py.
Prints:
- the largest score difference between the two providers over 4,096 rows (must be under 1e-5:
  the trainer's parity tolerance);
- scoring latency of one row and of a 64-row pass on each, medians of `--repeats`, and the
  ratio CUDA / CPU;
- where ONNX Runtime placed the tensor graph's nodes (a profiled run): all on CUDA is the aim
  (the TreeEnsemble graph has no CUDA kernel, so inference runs it on the CPU);
- GPU memory in use (nvidia-smi) before any session, with one, and with one again after
  `--swaps` more versions were loaded, warmed, scored and dropped as a hot-swap drops them:
  flat is the aim.
Exits 2, saying so, where the CUDA provider or nvidia-smi is missing (CI has no GPU).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
from tensor_graph import placement

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.model_pb2 import FeatureSpec, ModelPublished
from fraudstream_inference.model import ScoringModel, load, tensor_min_rows_for
from fraudstream_inference.settings import Device
from fraudstream_trainer.model import ModelParams, to_onnx, train
from fraudstream_trainer.tensor_graph import to_tensor_onnx

PARITY_TOLERANCE = 1e-5


def gpu_memory_mib(nvidia_smi: str) -> int:
    used = subprocess.run(
        [nvidia_smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "--id=0"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(used.strip())


def published(onnx_model: bytes, version: int) -> ModelPublished:
    return ModelPublished(
        model_name="gpu-path",
        version=str(version),
        alias="champion",
        sha256=hashlib.sha256(onnx_model).hexdigest(),
        threshold=0.5,
        decline_threshold=0.9,
        input_signature=[FeatureSpec(name=name, dtype="float") for name in FEATURE_NAMES],
    )


def median_ms(model: ScoringModel, rows: np.ndarray, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.scores(rows)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--swaps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"no CUDA provider in this onnxruntime build ({ort.get_available_providers()}): install onnxruntime-gpu")
        return 2
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        print("nvidia-smi not found: no NVIDIA driver here")
        return 2

    rng = np.random.default_rng(0)
    width = len(FEATURE_NAMES)
    features = rng.random((20_000, width), dtype=np.float32)
    labels = (features[:, 0] + 0.3 * rng.random(20_000) > 1.0).astype(np.int32)
    trained = train(features, labels, ModelParams())
    onnx_model, tensor_model = to_onnx(trained, width), to_tensor_onnx(trained, width)
    print(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}, model {len(onnx_model):,} bytes")

    def on_cuda(version: int) -> ScoringModel:
        return load(
            published(onnx_model, version),
            onnx_model,
            device=Device.CUDA,
            intra_op_threads=1,
            warmup_rows=256,
            tensor_model=tensor_model,
            tensor_min_rows=tensor_min_rows_for(Device.CUDA, None),
        )

    memory_before = gpu_memory_mib(nvidia_smi)
    cuda = on_cuda(1)
    cpu = load(published(onnx_model, 1), onnx_model, device=Device.CPU, intra_op_threads=1, warmup_rows=256)
    print(f"placement: {cuda.placement()}; against {cpu.placement()}")
    memory_first = gpu_memory_mib(nvidia_smi)

    rows = rng.random((4096, width), dtype=np.float32)
    difference = float(np.max(np.abs(cuda.scores(rows) - cpu.scores(rows))))
    print(
        f"largest score difference CUDA - CPU over {len(rows)} rows: {difference:.2e} "
        f"(tolerance {PARITY_TOLERANCE:.0e})"
    )

    for size in (1, 64):
        batch = rows[:size]
        cuda_ms, cpu_ms = median_ms(cuda, batch, args.repeats), median_ms(cpu, batch, args.repeats)
        print(f"{size:>3} row(s): CUDA {cuda_ms:.3f} ms, CPU {cpu_ms:.3f} ms, CUDA / CPU {cuda_ms / cpu_ms:.2f}")

    print(f"tensor graph nodes by provider in a CUDA session: {placement(tensor_model, rows[:64])}")

    current = cuda
    for version in range(2, args.swaps + 2):
        incoming = on_cuda(version)
        incoming.scores(rows[:64])
        current = incoming  # the old session's last reference goes, as in a hot-swap
        gc.collect()
    current.scores(rows[:1])
    memory_last = gpu_memory_mib(nvidia_smi)
    print(
        f"GPU memory used: {memory_before} MiB before, {memory_first} MiB with one session, "
        f"{memory_last} MiB after {args.swaps} more swapped in and out"
    )
    flat = memory_last <= memory_first + 64  # MiB: allocator slack, not a session's worth
    print("GPU memory flat across swaps" if flat else "GPU memory GREW across swaps")
    return 0 if difference <= PARITY_TOLERANCE and flat else 1


if __name__ == "__main__":
    sys.exit(main())
