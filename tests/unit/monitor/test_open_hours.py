"""The hours of one input partition out of event-time order (`drift.OpenHours`): predictions
interleaved within the lateness are counted as in order, whatever the batches; a live
prediction in a replay is left out and closes nothing; a stream that moved on is followed once
it is confirmed; a prediction of a closed hour is late."""

from __future__ import annotations

import itertools

import numpy as np

from fraudstream_common.reference import SCORE, Reference
from fraudstream_monitor.drift import HOUR, HourCounter, HourCounts, OpenHours

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


def counted(times: np.ndarray, hours: OpenHours, batches: list[int] | None = None) -> list[HourCounts]:
    """The hours `times` close, in batches of the given sizes (one batch by default), then the
    hours still open."""
    counter = hours.counters["1"] = HourCounter(Reference.of({SCORE: np.linspace(0, 1, 1000)}), None)
    closed: list[HourCounts] = []
    edges = np.cumsum([0, *(batches or [len(times)])])
    for first, last in itertools.pairwise(edges):
        batch = times[first:last]
        values = (batch % HOUR) / HOUR

        def count_rows(start: float, rows: np.ndarray, values: np.ndarray = values) -> None:
            counter.count(start, {SCORE: values[rows]}, None)

        closed += [hour for _, hour in hours.count(batch, count_rows)]
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
