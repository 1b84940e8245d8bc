from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from fraudstream_common import garbage


@pytest.fixture
def frozen_heap() -> Iterator[int]:
    try:
        yield garbage.freeze_startup_heap()
    finally:
        gc.unfreeze()


def _full_collection_count() -> float:
    return sum(
        sample.value
        for metric in garbage.PAUSE_SECONDS.collect()
        for sample in metric.samples
        if sample.name.endswith("_count") and sample.labels["generation"] == "2"
    )


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_each_collection_is_counted_by_generation_once_however_often_watched() -> None:
    garbage.watch_pauses()
    garbage.watch_pauses()
    before = _full_collection_count()
    gc.collect()
    assert _full_collection_count() == before + 1


def test_what_lives_at_the_freeze_is_left_out_of_collections() -> None:
    built_at_start_up = _Node()
    try:
        frozen = garbage.freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 0
        assert not any(tracked is built_at_start_up for tracked in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(tracked is built_at_start_up for tracked in gc.get_objects())


def test_objects_built_after_the_freeze_stay_collectable(frozen_heap: int) -> None:
    first, second = _Node(), _Node()
    first.other, second.other = second, first  # a cycle: only the collector frees it
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None
