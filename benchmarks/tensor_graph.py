"""The two graphs of one model, by batch size and provider: the TreeEnsemble graph (ai.onnx.ml,
CPU kernels only) and the tensor graph (fraudstream_trainer.tensor_graph: standard operators).

    uv run python benchmarks/tensor_graph.py --rounds 5

The trainer's default model (400 trees, depth 5) is trained on random rows of the service's
width and exported both ways, as the trainer exports it. Each graph is opened as inference
opens it (fraudstream_inference.model.session_for: one intra-op thread) on the CPU provider
and, where ONNX Runtime has a usable CUDA provider, the tensor graph on CUDA too. For each
batch size from 1 to 4,096: the median time of one run over `--rounds` rounds of at least
`--seconds` each, the ratio to the TreeEnsemble graph on the CPU in the same round, and the
crossover: the smallest batch size from which a configuration is faster than the TreeEnsemble
graph on the CPU. On CUDA, where ONNX Runtime placed the graph's nodes (a profiled run): every
node should be on the CUDA provider. Also the largest score difference between each
configuration and the TreeEnsemble graph on the CPU over 4,096 rows.

Writes `benchmarks/results/tensor_graph.json` and prints a table; the CUDA rows appear only on a
machine with a GPU and onnxruntime-gpu (CI has neither).
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from model_graphs import export, model_graphs

from fraudstream_common.features.definitions import FEATURE_NAMES
from fraudstream_inference.model import cuda_unusable, session_for
from fraudstream_inference.settings import Device

RESULTS = Path(__file__).parent / "results" / "tensor_graph.json"
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 256, 1024, 4096)
BASELINE = "tree_ensemble/cpu"


def run_ms(session: ort.InferenceSession, rows: np.ndarray, seconds: float) -> float:
    """Mean time of one run over at least `seconds` (after one warm-up run)."""
    feeds = {session.get_inputs()[0].name: rows}
    session.run(None, feeds)
    runs, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or runs < 3:
        session.run(None, feeds)
        runs += 1
    return 1000 * elapsed / runs


def placement(onnx_model: bytes, rows: np.ndarray) -> dict[str, int]:
    """Node runs by execution provider, from ONNX Runtime's profile of a few CUDA runs."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    session = ort.InferenceSession(
        onnx_model, sess_options=options, providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    for _ in range(3):
        session.run(None, {session.get_inputs()[0].name: rows})
    profile = Path(session.end_profiling())
    events = json.loads(profile.read_text())
    profile.unlink()
    nodes = [e for e in events if e.get("cat") == "Node" and "provider" in e.get("args", {})]
    return dict(Counter(e["args"]["provider"] for e in nodes))


def provenance(args: argparse.Namespace) -> dict[str, Any]:
    """What a result file says of its run: the command, when, and on what machine."""
    options = " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None)
    return {
        "command": f"{Path(sys.argv[0]).name} {options}",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": {"cpus": os.cpu_count(), "platform": host.platform()},
    }


def scores(session: ort.InferenceSession, rows: np.ndarray) -> np.ndarray:
    _labels, probabilities = session.run(None, {session.get_inputs()[0].name: rows})
    return np.asarray(probabilities, dtype=np.float64)[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.3, help="Least time per batch size per round.")
    parser.add_argument("--graphs", type=Path, help="Score the graphs exported here (model_graphs.py).")
    parser.add_argument("--export-graphs", type=Path, help="Train, export the graphs here and exit.")
    args = parser.parse_args()
    if args.export_graphs is not None:
        export(model_graphs(None), args.export_graphs)
        return

    rng = np.random.default_rng(0)
    width = len(FEATURE_NAMES)
    model = model_graphs(args.graphs)
    graphs = {"tree_ensemble": model.tree_ensemble, "tensor": model.tensor}
    sessions = {f"{name}/cpu": session_for(graph, Device.CPU, 1) for name, graph in graphs.items()}
    unusable = cuda_unusable()
    if unusable is None:
        sessions["tensor/cuda"] = session_for(graphs["tensor"], Device.CUDA, 1)
    rows = rng.random((max(BATCH_SIZES), width), dtype=np.float32)

    timings: dict[str, dict[int, list[float]]] = {name: {size: [] for size in BATCH_SIZES} for name in sessions}
    ratios: dict[str, dict[int, list[float]]] = {name: {size: [] for size in BATCH_SIZES} for name in sessions}
    for _round in range(args.rounds):
        for size in BATCH_SIZES:
            measured = {name: run_ms(session, rows[:size], args.seconds) for name, session in sessions.items()}
            for name, value in measured.items():
                timings[name][size].append(value)
                ratios[name][size].append(value / measured[BASELINE])

    baseline_scores = scores(sessions[BASELINE], rows)
    configurations: dict[str, Any] = {}
    for name, session in sessions.items():
        median_ratio = {size: statistics.median(ratios[name][size]) for size in BATCH_SIZES}
        faster = [size for size in BATCH_SIZES if median_ratio[size] < 1]
        configurations[name] = {
            "provider": session.get_providers()[0],
            "median_ms": {str(size): statistics.median(timings[name][size]) for size in BATCH_SIZES},
            "ratio_to_tree_ensemble_on_cpu": {str(size): median_ratio[size] for size in BATCH_SIZES},
            # The smallest batch size from which this is faster than the baseline at every larger size.
            "crossover_batch_size": next(
                (size for size in faster if all(median_ratio[s] < 1 for s in BATCH_SIZES if s >= size)), None
            ),
            "max_abs_score_difference": float(np.max(np.abs(scores(session, rows) - baseline_scores))),
        }
    if unusable is None:
        configurations["tensor/cuda"]["nodes_by_provider"] = placement(graphs["tensor"], rows[:64])

    result = {
        **provenance(args),
        "onnxruntime": ort.__version__,
        "cuda": "usable" if unusable is None else f"not measured: {unusable}",
        "model": {"trees": model.trees, "max_depth": model.max_depth, "features": width},
        "batch_sizes": list(BATCH_SIZES),
        "configurations": configurations,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")

    print(f"| batch | {' | '.join(f'{name} ms (ratio)' for name in sessions)} |")
    print(f"|---:|{'---:|' * len(sessions)}")
    for size in BATCH_SIZES:
        cells = []
        for name in sessions:
            figures = configurations[name]
            ms, ratio = figures["median_ms"][str(size)], figures["ratio_to_tree_ensemble_on_cpu"][str(size)]
            cells.append(f"{ms:.3f} ({ratio:.2f})")
        print(f"| {size} | {' | '.join(cells)} |")
    for name, figures in configurations.items():
        difference = figures["max_abs_score_difference"]
        print(f"{name}: crossover {figures['crossover_batch_size']}, max score difference {difference:.1e}")
    if unusable is not None:
        print(f"CUDA not measured: {unusable}")
    else:
        print(f"tensor graph nodes by provider on CUDA: {configurations['tensor/cuda']['nodes_by_provider']}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
