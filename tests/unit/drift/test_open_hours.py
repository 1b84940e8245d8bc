"""The hours of one input partition out of event-time order (`drift.OpenHours`): predictions
interleaved within the lateness are counted as in order, whatever the batches, and so are
sources interleaved by far more, each in order, as inference interleaves its input partitions
when it catches up; a live
prediction in a replay is left out and closes nothing; a stream that moved on is followed once
it is confirmed; a prediction of a closed hour is late."""

from __future__ import annotations

import itertools

import numpy as np

from fraudstream_common.reference import SCORE, Reference
from fraudstream_drift.drift import HOUR, HourCounter, HourCounts, OpenHours

LATENESS = 600.0
MAX_AHEAD = HOUR
CONFIRM = 50


def stream(rng: np.random.Generator, hours: int, per_hour: int, first_hour: int = 0) -> np.ndarray:
    return np.sort(first_hour * HOUR + rng.uniform(0, hours * HOUR, hours * per_hour))


def interleaved(times: np.ndarray, skew: float) -> np.ndarray:
    """Two halves of a stream (as two upstream partitions), merged with one `skew` seconds
    behind the other: each in order, together out of order by up to `skew`."""
    odd = np.arange(len(times)) % 2 == 1
    keys = np.where(odd, times + skew, times)
    return times[np.argsort(keys, kind="stable")]


def counted(
    times: np.ndarray, hours: OpenHours, batches: list[int] | None = None, sources: np.ndarray | None = None
) -> list[HourCounts]:
    """The hours `times` (of the given upstream sources) close, in batches of the given sizes
    (one batch by default), then the hours still open."""
    counter = hours.counters["1"] = HourCounter(Reference.of({SCORE: np.linspace(0, 1, 1000)}), None)
    closed: list[HourCounts] = []
    edges = np.cumsum([0, *(batches or [len(times)])])
    for first, last in itertools.pairwise(edges):
        batch = times[first:last]
        values = (batch % HOUR) / HOUR

        def count_rows(start: float, rows: np.ndarray, values: np.ndarray = values) -> None:
            counter.count(start, {SCORE: values[rows]}, None)

        batch_sources = None if sources is None else sources[first:last]
        closed += [hour for _, hour in hours.count(batch, count_rows, batch_sources)]
    return closed + [hour for _, hour in hours.close()]


def policy() -> OpenHours:
    return OpenHours(LATENESS, MAX_AHEAD, CONFIRM)


def summary(hours: list[HourCounts]) -> list[tuple[float, int, list[float]]]:
    return [(h.start, h.n, h.counts[SCORE].tolist()) for h in hours]


def test_predictions_out_of_order_within_the_lateness_count_as_in_order_whatever_the_batches() -> None:
    rng = np.random.default_rng(0)
    times = stream(rng, 6, 400)
    in_order = counted(times, policy())
    scrambled = interleaved(times, skew=LATENESS * 0.9)
    assert (np.diff(scrambled) < 0).sum() > 100
    cuts = np.sort(rng.choice(np.arange(1, len(times)), 40, replace=False))
    for split in (None, np.diff(np.r_[0, cuts, len(times)]).tolist()):
        hours = policy()
        out_of_order = counted(scrambled, hours, split)
        assert hours.late == 0
        assert hours.ahead == 0
        assert summary(out_of_order) == summary(in_order)
    # Without the lateness, an hour closes at the first prediction of the next: the rest are lost.
    strict = OpenHours()
    counted(scrambled, strict)
    assert strict.late > 100


def chunked(times: np.ndarray, sources: int, chunk: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`times` dealt to `sources` upstream partitions, each in order, and merged as a consumer
    catching up merges them: a chunk of one, then a chunk of another, each read at its own pace
    (one at twice the others' rows a chunk). Returns the merged times and their sources."""
    owner = rng.integers(0, sources, len(times))
    queues = [list(times[owner == s]) for s in range(sources)]
    merged: list[float] = []
    of: list[int] = []
    while any(queues):
        for s, queue in enumerate(queues):
            take = chunk * (2 if s == 0 else 1)
            merged += queue[:take]
            of += [s] * len(queue[:take])
            del queue[:take]
    return np.asarray(merged), np.asarray(of)


def test_sources_far_apart_each_in_order_count_as_in_order() -> None:
    rng = np.random.default_rng(5)
    times = stream(rng, 48, 100)
    in_order = counted(times, policy())
    merged, sources = chunked(times, 4, 500, rng)
    behind = np.maximum.accumulate(merged) - merged
    assert behind.max() > 12 * HOUR  # the partitions are half a day apart and more
    cuts = np.sort(rng.choice(np.arange(1, len(times)), 30, replace=False))
    for split in (None, np.diff(np.r_[0, cuts, len(times)]).tolist()):
        hours = OpenHours(LATENESS, MAX_AHEAD, CONFIRM, sources=4)
        got = counted(merged, hours, split, sources)
        assert hours.late == 0
        assert hours.ahead == 0
        assert summary(got) == summary(in_order)
    # Taken as one stream, the hours close with the source furthest on: most of the rest is lost.
    one_stream = policy()
    counted(merged, one_stream)
    assert one_stream.late > len(times) // 4


def test_a_source_that_stopped_holds_no_hour_open_and_traffic_that_stopped_closes_its_hours() -> None:
    rng = np.random.default_rng(6)
    times = stream(rng, 12, 400)
    sources = np.where(np.arange(len(times)) < 200, np.arange(len(times)) % 2, 0)  # source 1 stops early
    now = [0.0]
    hours = OpenHours(LATENESS, MAX_AHEAD, CONFIRM, sources=3, source_idle_seconds=5.0, clock=lambda: now[0])
    for first in range(0, len(times), 100):
        hours.count(times[first : first + 100], lambda start, rows: None, sources[first : first + 100])
        assert hours.start == -np.inf  # source 2 has yet to deliver
    now[0] += 5.1
    hours.caught_up = False  # more of the stream waits to be read: a silent source may be behind
    hours.count(times[-1:], lambda start, rows: None, sources[-1:])
    assert hours.start == -np.inf
    hours.caught_up = True
    hours.count(times[-1:], lambda start, rows: None, sources[-1:])
    assert hours.start == (times[-1] - LATENESS) // HOUR * HOUR
    assert hours.late == 0


def test_traffic_that_stopped_closes_the_hours_its_latest_prediction_passed() -> None:
    rng = np.random.default_rng(7)
    ahead, behind = stream(rng, 6, 100), stream(rng, 4, 100)
    now = [0.0]
    hours = OpenHours(LATENESS, MAX_AHEAD, CONFIRM, sources=2, source_idle_seconds=5.0, clock=lambda: now[0])
    counter = hours.counters["1"] = HourCounter(Reference.of({SCORE: np.linspace(0, 1, 1000)}), None)
    times = np.r_[ahead, behind]

    def count_rows(start: float, rows: np.ndarray) -> None:
        counter.count(start, {SCORE: (times[rows] % HOUR) / HOUR}, None)

    closed = hours.count(times, count_rows, np.r_[np.zeros(len(ahead)), np.ones(len(behind))])
    assert [h.start for _, h in closed] == [h * HOUR for h in range(3)]  # source 1 holds hour 3 open
    assert not hours.closable
    assert hours.close_idle() == []
    now[0] += 5.1  # both idle: the traffic stopped
    assert hours.closable
    assert [h.start for _, h in hours.close_idle()] == [3 * HOUR, 4 * HOUR]
    assert not hours.closable
    assert hours.late == 0


def test_a_live_prediction_in_a_replay_is_left_out_and_closes_nothing() -> None:
    rng = np.random.default_rng(1)
    replay = stream(rng, 6, 400)
    expected = counted(replay, policy())
    live = 3 * 365 * 24 * HOUR
    with_live = np.insert(replay, [500, 1500, 1501], [live, live, live + 300])
    hours = policy()
    got = counted(with_live, hours)
    assert hours.ahead == 3
    assert hours.late == 0
    assert summary(got) == summary(expected)


def test_a_stream_that_moved_on_is_followed_once_confirmed() -> None:
    rng = np.random.default_rng(2)
    before, after = stream(rng, 3, 400), stream(rng, 3, 400, first_hour=48)
    hours = policy()
    got = counted(np.concatenate([before, after]), hours)
    assert hours.ahead == CONFIRM - 1
    assert hours.late == 0
    starts = [h.start for h in got]
    assert starts == [0.0, HOUR, 2 * HOUR, 48 * HOUR, 49 * HOUR, 50 * HOUR]
    assert sum(h.n for h in got) == len(before) + len(after) - (CONFIRM - 1)


def test_traffic_of_many_sources_back_after_a_gap_is_followed_once_confirmed() -> None:
    # Each source brings only a few predictions: confirming it moved on is the partition's, in a row.
    rng = np.random.default_rng(9)
    before, after = stream(rng, 3, 400), stream(rng, 3, 400, first_hour=48)
    times = np.concatenate([before, after])
    of = rng.integers(0, 16, len(times))
    for step_by_step in (False, True):
        clock = ManualClock()
        hours = OpenHours(LATENESS, MAX_AHEAD, CONFIRM, sources=16, source_idle_seconds=5.0, clock=clock)
        if step_by_step:
            hours._count_in_step = step_by_step_only  # type: ignore[method-assign,assignment]
        got, late, _ = closed_in_batches(times, of, [len(before), 300, len(after) - 300], hours, clock)
        assert (hours.ahead, late) == (CONFIRM - 1, 0)
        assert [start for start, _, _ in got] == [0.0, HOUR, 2 * HOUR, 48 * HOUR, 49 * HOUR]  # 50 is open
        assert sum(n for _, n, _ in got) == len(before) + (after < 50 * HOUR).sum() - (CONFIRM - 1)


def test_a_prediction_of_a_closed_hour_is_late() -> None:
    rng = np.random.default_rng(3)
    times = stream(rng, 4, 400)
    behind = times[-1] - HOUR - LATENESS - 1
    hours = policy()
    got = counted(np.append(times, behind), hours)
    assert hours.late == 1
    assert sum(h.n for h in got) == len(times)


def test_the_rows_of_an_hour_are_counted_together_while_no_hour_closes() -> None:
    # Two partitions six minutes apart around an hour's end: the hour changes every few rows.
    rng = np.random.default_rng(4)
    times = interleaved(np.sort(rng.uniform(9.9 * HOUR, 10.1 * HOUR, 400)), skew=360)
    starts = times - times % HOUR
    assert (np.diff(starts) != 0).sum() > 50
    hours = OpenHours(1.5 * HOUR, MAX_AHEAD, CONFIRM)
    hours.count(times[:1], lambda start, rows: None)
    calls: list[tuple[float, list[int]]] = []
    hours.count(times[1:], lambda start, rows: calls.append((start, rows.tolist())))
    # One call per hour, with all its rows in arrival order.
    assert sorted(start for start, _ in calls) == [9 * HOUR, 10 * HOUR]
    for start, rows in calls:
        assert rows == np.flatnonzero(starts[1:] == start).tolist()


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def closed_in_batches(
    times: np.ndarray, of: np.ndarray, batches: list[int], hours: OpenHours, clock: ManualClock
) -> tuple[list[tuple[float, int, list[float]]], int, float]:
    """What `hours` closes of `times` (from sources `of`) in batches a second apart, and once
    they are idle; how many were late; where it stands."""
    counter = hours.counters["1"] = HourCounter(Reference.of({SCORE: np.linspace(0, 1, 100)}), None)
    closed: list[HourCounts] = []
    for first, last in itertools.pairwise(np.cumsum([0, *batches])):
        values = (times[first:last] % HOUR) / HOUR

        def count_rows(start: float, rows: np.ndarray, values: np.ndarray = values) -> None:
            counter.count(start, {SCORE: values[rows]}, None)

        closed += [h for _, h in hours.count(times[first:last], count_rows, of[first:last])]
        clock.now += 1.0
    closed += [h for _, h in hours.close_idle()]
    return summary(closed), hours.late, hours.start


def step_by_step_only(*_: object) -> None:
    """In place of OpenHours._count_in_step: every batch takes the step-by-step path."""


def test_batches_counted_in_array_operations_close_what_the_step_by_step_path_closes() -> None:
    rng = np.random.default_rng(8)
    for _ in range(50):
        n, sources = int(rng.integers(50, 800)), int(rng.integers(2, 6))
        of = rng.integers(0, sources, n)
        times = np.sort(rng.uniform(0, 10 * HOUR, n)) + rng.uniform(0, 2 * HOUR, sources)[of]
        times = np.clip(times + rng.normal(0, 400, n), 0, None)  # some out of order within a source: late
        cuts = np.sort(rng.choice(np.arange(1, n), int(rng.integers(0, 10)), replace=False))
        batches = np.diff(np.r_[0, cuts, n]).tolist()
        idle = float(rng.choice([np.inf, 2.5]))
        results = []
        for step_by_step in (False, True):
            clock = ManualClock()
            hours = OpenHours(LATENESS, 3 * HOUR, CONFIRM, sources=sources, source_idle_seconds=idle, clock=clock)
            if step_by_step:
                hours._count_in_step = step_by_step_only  # type: ignore[method-assign,assignment]
            results.append(closed_in_batches(times, of, batches, hours, clock))
        assert results[0] == results[1]
