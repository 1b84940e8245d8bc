"""One function over many inputs, in worker processes when asked for."""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_in_processes(
    function: Callable[..., Result], items: Sequence[Item], *shared: object, jobs: int = 1
) -> list[Result]:
    """`function(item, *shared)` for each item, in order: here when `jobs` is 1 or there is one
    item, else in up to `jobs` spawned processes (the function and its arguments must pickle)."""
    if jobs <= 1 or len(items) <= 1:
        return [function(item, *shared) for item in items]
    # Spawned, not forked: a caller with threads (XGBoost's, a client's) forks children that can
    # wait forever on a lock held by a thread that was not copied.
    with ProcessPoolExecutor(min(jobs, len(items)), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(function, items, *(itertools.repeat(argument) for argument in shared)))
