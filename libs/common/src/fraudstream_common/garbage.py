"""Python's cyclic garbage collector on a service's hot path: its pauses as a metric, and the
heap a service builds at start-up kept out of its reach.

A service imports Feast, pandas, ONNX Runtime, gRPC and protobuf before it serves: some
250,000 objects that live as long as the process. CPython's full collection walks every one of
them each time: 100 ms on this project's 2-core machine, about once in 30 to 45 seconds under
the inference benchmark (benchmarks/inference_latency.py prints the pauses), and a request
that arrives meanwhile waits for it. `freeze_startup_heap` moves what exists once the service
is built into the collector's permanent generation (gc.freeze), so full collections walk only
what the service allocated since; the frozen objects are still freed by reference counting."""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram

PAUSE_SECONDS = Histogram(
    "fraudstream_gc_pause_seconds",
    "Pauses of Python's cyclic garbage collector, by generation (2 is a full collection).",
    ["generation"],
    buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25),
)


class _PauseWatch:
    def __init__(self) -> None:
        self._started = 0.0
        self._by_generation = [PAUSE_SECONDS.labels(str(generation)) for generation in range(3)]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)


_watch: _PauseWatch | None = None


def watch_pauses() -> None:
    """Count every collection's pause in `fraudstream_gc_pause_seconds` (once per process)."""
    global _watch  # noqa: PLW0603 - one callback per process, however many services ask
    if _watch is None:
        _watch = _PauseWatch()
        gc.callbacks.append(_watch)


def freeze_startup_heap() -> int:
    """Collects what start-up left behind, then exempts every surviving object from later
    collections. Call once the service is built, before it serves; returns how many objects
    were frozen. Objects built later (a model swapped in) stay collectable."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
