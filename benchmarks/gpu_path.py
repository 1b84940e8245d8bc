"""Inference's ONNX Runtime GPU path, on a machine with an NVIDIA GPU and onnxruntime-gpu:

    uv pip uninstall onnxruntime && uv pip install onnxruntime-gpu
    uv run --no-sync python benchmarks/gpu_path.py --swaps 50 --repeats 2000

The model of model_graphs.py (trained here, or `--graphs` exported elsewhere); inference loads it as a
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
- GPU memory in use (nvidia-smi) before any session, with one, and after each of `--swaps`
  more versions was loaded, warmed, scored and dropped as a hot-swap drops them: flat over the
  second half of the swaps is the aim (a leak grows with every swap; the runtime's caches once).
Writes `benchmarks/results/gpu_path.json`. Exits 2, saying so, where the CUDA provider or
nvidia-smi is missing (CI has no GPU).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from model_graphs import model_graphs
from tensor_graph import placement, provenance

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_common.schemas.v1.model_pb2 import FeatureSpec, ModelPublished
from fraudstream_inference.model import ScoringModel, load, tensor_min_rows_for
from fraudstream_inference.settings import Device

PARITY_TOLERANCE = 1e-5
RESULTS = Path(__file__).parent / "results" / "gpu_path.json"


def nvidia_smi_query(nvidia_smi: str, fields: str, csv_format: str = "csv,noheader") -> str:
    return subprocess.run(
        [nvidia_smi, f"--query-gpu={fields}", f"--format={csv_format}", "--id=0"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def gpu_memory_mib(nvidia_smi: str) -> int:
    return int(nvidia_smi_query(nvidia_smi, "memory.used", "csv,noheader,nounits"))


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
    parser.add_argument("--graphs", type=Path, help="Score the graphs exported here (model_graphs.py).")
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
    graphs = model_graphs(args.graphs)
    onnx_model, tensor_model = graphs.tree_ensemble, graphs.tensor
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

    latency: dict[str, dict[str, float]] = {}
    for size in (1, 64):
        batch = rows[:size]
        cuda_ms, cpu_ms = median_ms(cuda, batch, args.repeats), median_ms(cpu, batch, args.repeats)
        latency[str(size)] = {"cuda_ms": cuda_ms, "cpu_ms": cpu_ms, "cuda_to_cpu": cuda_ms / cpu_ms}
        print(f"{size:>3} row(s): CUDA {cuda_ms:.3f} ms, CPU {cpu_ms:.3f} ms, CUDA / CPU {cuda_ms / cpu_ms:.2f}")

    nodes = placement(tensor_model, rows[:64])
    print(f"tensor graph nodes by provider in a CUDA session: {nodes}")

    current = cuda
    memory_by_swap = [memory_first]
    for version in range(2, args.swaps + 2):
        incoming = on_cuda(version)
        incoming.scores(rows[:64])
        current = incoming  # the old session's last reference goes, as in a hot-swap
        gc.collect()
        memory_by_swap.append(gpu_memory_mib(nvidia_smi))
    current.scores(rows[:1])
    memory_last = gpu_memory_mib(nvidia_smi)
    quarters = {
        str(n): memory_by_swap[n]
        for n in sorted({0, args.swaps // 4, args.swaps // 2, 3 * args.swaps // 4, args.swaps})
    }
    print(f"GPU memory (MiB) after so many swaps: {quarters}")
    print(
        f"GPU memory used: {memory_before} MiB before, {memory_first} MiB with one session, "
        f"{memory_last} MiB after {args.swaps} more swapped in and out"
    )
    # A leak grows with every swap; ONNX Runtime's and CUDA's caches grow once, while the first
    # sessions overlap, then stay: so compare the second half of the swaps, not the first session.
    middle = memory_by_swap[len(memory_by_swap) // 2]
    flat = memory_last <= middle + 64  # MiB: allocator slack, not a session's worth
    print("GPU memory flat across swaps" if flat else "GPU memory GREW across swaps")
    run = provenance(args)
    run["machine"] = {"gpu": nvidia_smi_query(nvidia_smi, "name,driver_version"), **run["machine"]}
    result = {
        **run,
        "onnxruntime": ort.__version__,
        "placement": {"cuda": cuda.placement(), "cpu": cpu.placement()},
        "max_abs_score_difference_cuda_cpu": difference,
        "parity_tolerance": PARITY_TOLERANCE,
        "median_latency_ms_by_rows": latency,
        "tensor_graph_nodes_by_provider": nodes,
        "gpu_memory_mib": {"before": memory_before, "one_session": memory_first, "after_swaps": memory_last},
        "gpu_memory_mib_after_swaps": quarters,
        "swaps": args.swaps,
        "memory_flat": flat,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"written to {RESULTS}")
    return 0 if difference <= PARITY_TOLERANCE and flat else 1


if __name__ == "__main__":
    sys.exit(main())
