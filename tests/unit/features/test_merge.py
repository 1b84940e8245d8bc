"""The event-time merger: one order out of many partitions, exact committable offsets, idle
partitions, late events, and bounded waiting (early events)."""

from __future__ import annotations

import math

import pytest

from fraudstream_features.merge import RANK_INVALID, RANK_LABEL, RANK_TRANSACTION, EventTimeMerger, Timing

TX = ("transactions", 0)
TX1 = ("transactions", 1)
LB = ("labels", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def merger(
    clock: Clock, idle: float = 1.0, max_wait: float = 10.0, wall_clock: Clock | None = None
) -> EventTimeMerger[str]:
    """Event times in the tests' small numbers are history, years behind the wall clock."""
    m: EventTimeMerger[str] = EventTimeMerger(idle, max_wait, clock, wall_clock=wall_clock or (lambda: 1e9))
    m.assign([TX, TX1, LB])
    return m


def at_end(m: EventTimeMerger[str], *sources: tuple[str, int]) -> None:
    """These partitions are read to their end now; the others stay as they were (as the
    runtime keeps an end until a record of the partition is read)."""
    still = {source for source, partition in m._partitions.items() if partition.at_end_since is not None}
    m.at_end(still | set(sources or (TX, TX1, LB)))


def test_releases_nothing_while_a_partition_may_still_deliver_earlier_events() -> None:
    m = merger(Clock())
    m.add(TX, 0, 10.0, RANK_TRANSACTION, "a")
    m.add(TX, 1, 11.0, RANK_TRANSACTION, "a2")
    m.add(LB, 0, 5.0, RANK_LABEL, "l")
    m.add(LB, 1, 6.0, RANK_LABEL, "l2")
    assert [r.item for r in m.release()] == []  # TX1 has said nothing yet
    m.add(TX1, 0, 7.0, RANK_TRANSACTION, "b")
    m.add(TX1, 1, 8.0, RANK_TRANSACTION, "b2")
    # Then LB holds one event, which may be ahead of what LB delivers next: the rest waits.
    assert [r.item for r in m.release()] == ["l"]


def test_labels_before_transactions_at_equal_times_and_time_order_across_partitions() -> None:
    m = merger(Clock(), idle=0.0)
    m.add(TX, 0, 3.0, RANK_TRANSACTION, "t3")
    m.add(TX, 1, 9.0, RANK_TRANSACTION, "t9")
    m.add(TX1, 0, 1.0, RANK_TRANSACTION, "u1")
    m.add(TX1, 1, 20.0, RANK_TRANSACTION, "u20")
    m.add(LB, 0, 3.0, RANK_LABEL, "l3")
    m.add(LB, 1, 30.0, RANK_LABEL, "l30")
    m.add(LB, 2, 31.0, RANK_LABEL, "l31")
    at_end(m, TX, TX1)
    assert [r.item for r in m.release()] == ["u1", "l3", "t3", "t9", "u20", "l30"]
    assert m.committable() == {TX: 2, TX1: 2, LB: 2}
    assert len(m) == 1  # l31, alone in a partition that has not said it is at its end
    assert m.watermark == 30.0


def test_at_equal_times_every_partition_gets_its_turn() -> None:
    """Traffic stamped to the second: a second's events of one partition do not wait for the next
    second because another partition's went first and left it holding one event."""
    m = merger(Clock(), idle=1.0)
    for offset in range(3):
        m.add(TX, offset, 100.0, RANK_TRANSACTION, f"t{offset}")
    for offset in range(5):
        m.add(TX1, offset, 100.0, RANK_TRANSACTION, f"u{offset}")
    for offset in range(3):
        m.add(LB, offset, 100.0 + offset, RANK_LABEL, f"l{offset}")
    released = [r.item for r in m.release()]
    # The order stops once a partition holds one event (it may be ahead of what follows it): the
    # longer queue going first, both partitions have given most of their second by then.
    assert sorted(released) == ["l0", "t0", "t1", "u0", "u1", "u2"]


def test_an_idle_partition_stops_holding_time_back_after_the_grace_period() -> None:
    clock = Clock()
    m = merger(clock, idle=0.5)
    m.add(TX, 0, 3.0, RANK_TRANSACTION, "t3")
    at_end(m)
    assert list(m.release()) == []
    clock.now = 0.6
    assert [r.item for r in m.release()] == ["t3"]
    # It arrives later with an earlier time: released (not lost), flagged late.
    m.add(TX1, 0, 2.0, RANK_TRANSACTION, "u2")
    at_end(m, TX1)
    clock.now = 2.0
    assert [(r.item, r.timing) for r in m.release()] == [("u2", Timing.LATE)]
    assert m.committable() == {TX: 1, TX1: 1}


def test_light_traffic_waits_the_grace_period_from_its_read_not_for_a_quiet_moment() -> None:
    """A few transactions a second over many partitions: one of them has always just delivered
    and is not idle yet. An event read `idle_seconds` ago goes once the others are read to their
    end: what they deliver next comes after that grace, as from an idle partition. A lone live
    event goes once the others are idle."""
    clock = Clock()
    m = merger(clock, idle=0.1, wall_clock=live_wall_clock())
    m.add(TX, 0, 10.0, RANK_TRANSACTION, "t10")
    at_end(m)
    clock.now = 0.05
    m.add(TX1, 0, 11.0, RANK_TRANSACTION, "u11")
    at_end(m, TX1)
    clock.now = 0.08
    m.add(LB, 0, 12.0, RANK_LABEL, "l12")
    at_end(m, LB)
    clock.now = 0.09
    assert list(m.release()) == []  # read 0.09 s ago
    clock.now = 0.1
    # u11 was read 0.05 s ago, and LB has just delivered.
    assert [(r.item, r.timing) for r in m.release()] == [("t10", Timing.IN_ORDER)]
    clock.now = 0.16
    # TX1 is idle: u11 goes, then l12, alone with the others idle.
    assert [(r.item, r.timing) for r in m.release()] == [("u11", Timing.IN_ORDER), ("l12", Timing.IN_ORDER)]


def test_a_lone_live_event_goes_at_once_where_every_other_partition_is_idle() -> None:
    """Traffic lighter still: the other partitions have been idle for their idle time, so
    nothing of theirs is on its way to go before the lone live event, which goes once its own
    partition is read to its end. Where one of them has just delivered, or in a replay, it
    waits as before."""
    clock = Clock()
    m = merger(clock, idle=0.1, wall_clock=live_wall_clock())
    at_end(m)
    clock.now = 1.0
    m.add(TX, 0, 10.0, RANK_TRANSACTION, "t10")
    assert list(m.release()) == []  # more of TX may be on its way
    at_end(m, TX)
    assert [(r.item, r.timing) for r in m.release()] == [("t10", Timing.IN_ORDER)]
    m.add(TX1, 0, 11.0, RANK_TRANSACTION, "u11")
    at_end(m, TX1)
    clock.now = 1.09
    assert list(m.release()) == []  # TX delivered 0.09 s ago: not idle yet
    clock.now = 1.1
    assert [(r.item, r.timing) for r in m.release()] == [("u11", Timing.IN_ORDER)]
    assert m.source_watermarks() == {TX: None, TX1: None, LB: None}

    replay = merger(clock, idle=0.1)  # the same history, years behind the wall clock
    at_end(replay)
    clock.now = 2.0
    replay.add(TX, 0, 10.0, RANK_TRANSACTION, "t10")
    at_end(replay, TX)
    assert list(replay.release()) == []  # its partition's next event may be earlier
    clock.now = 2.1
    assert [r.item for r in replay.release()] == ["t10"]


def live_wall_clock() -> Clock:
    """A wall clock at which the tests' event times are live."""
    wall = Clock()
    wall.now = 100.0
    return wall


def test_a_quiet_partition_holds_the_order_at_its_latest_time_plus_the_time_since() -> None:
    """A replay the consumer keeps up with: every partition reaches its end between the
    producer's writes. When it writes again, the partition read first (labels, days ahead)
    waits for the others instead of carrying the order past them."""
    clock = Clock()
    m = merger(clock, idle=0.1)
    m.add(TX, 0, 100.0, RANK_TRANSACTION, "t100")
    m.add(LB, 0, 105.0, RANK_LABEL, "l105")
    m.add(TX1, 0, 110.0, RANK_TRANSACTION, "u110")
    at_end(m)
    clock.now = 1.0
    # Nothing left to read anywhere: the order is complete for now (the end of a replay too).
    assert [(r.item, r.timing) for r in m.release()] == [
        ("t100", Timing.IN_ORDER),
        ("l105", Timing.IN_ORDER),
        ("u110", Timing.IN_ORDER),
    ]
    clock.now = 2.0
    m.add(LB, 1, 400_000.0, RANK_LABEL, "l-ahead")
    m.add(LB, 2, 400_001.0, RANK_LABEL, "l-ahead2")
    at_end(m, LB)
    clock.now = 2.05
    assert list(m.release()) == []  # TX may still deliver from 102.05 on, TX1 from 112.05
    m.add(TX, 1, 200.0, RANK_TRANSACTION, "t200")
    m.add(TX, 2, 300.0, RANK_TRANSACTION, "t300")
    m.add(TX1, 1, 250.0, RANK_TRANSACTION, "u250")
    m.add(TX1, 2, 260.0, RANK_TRANSACTION, "u260")
    at_end(m, TX, TX1)
    clock.now = 2.1
    released = [(r.item, r.timing) for r in m.release()]  # t300, alone, may be ahead of TX's next
    clock.now = 3.0
    released += [(r.item, r.timing) for r in m.release()]
    assert [item for item, _ in released] == ["t200", "u250", "u260", "t300", "l-ahead", "l-ahead2"]
    assert {timing for _, timing in released} == {Timing.IN_ORDER}


def test_a_held_partition_holds_back_only_what_the_time_since_has_not_reached() -> None:
    clock = Clock()
    m = merger(clock, idle=0.1)
    m.add(LB, 0, 1000.0, RANK_LABEL, "l")
    m.add(TX1, 0, 1000.0, RANK_TRANSACTION, "u")
    m.add(TX, 0, 1000.1, RANK_TRANSACTION, "t")
    at_end(m)
    clock.now = 0.2
    assert [r.item for r in m.release()] == ["l", "u", "t"]
    clock.now = 5.0  # LB and TX1 quiet since their events at 1000.0 were read, at 0.0; TX resumes
    for offset, t in enumerate((1004.8, 1004.9, 1005.1), start=1):
        m.add(TX, offset, t, RANK_TRANSACTION, f"t{t}")
    assert [r.item for r in m.release()] == ["t1004.8", "t1004.9"]
    clock.now = 5.2
    m.add(TX, 4, 1005.3, RANK_TRANSACTION, "t1005.3")
    m.add(TX, 5, 1005.4, RANK_TRANSACTION, "t1005.4")
    assert [r.item for r in m.release()] == ["t1005.1"]
    # A late event does not pull back where its partition stands.
    m.add(TX1, 1, 500.0, RANK_TRANSACTION, "u-late")
    m.add(TX1, 2, 1005.25, RANK_TRANSACTION, "u1005.25")
    at_end(m, TX1)
    clock.now = 5.35
    assert [(r.item, r.timing) for r in m.release()] == [
        ("u-late", Timing.LATE),
        ("u1005.25", Timing.IN_ORDER),
        ("t1005.3", Timing.IN_ORDER),
    ]


def test_the_hold_lasts_hold_seconds_and_live_events_need_none() -> None:
    def resumed(now_in_event_time: float) -> list[str]:
        clock = Clock()
        m: EventTimeMerger[str] = EventTimeMerger(0.1, 10.0, clock, 1.0, lambda: now_in_event_time + clock.now)
        m.assign([TX, TX1, LB])
        for source in (LB, TX1, TX):
            m.add(source, 0, 1000.0, RANK_TRANSACTION, "first")
        at_end(m)
        clock.now = 0.2
        assert len(list(m.release())) == 3
        clock.now = 5.0
        m.add(TX, 1, 1004.9, RANK_TRANSACTION, "t1004.9")
        m.add(TX, 2, 1500.0, RANK_TRANSACTION, "t1500")
        m.add(TX, 3, 1600.0, RANK_TRANSACTION, "t1600")
        released = [r.item for r in m.release()]
        clock.now = 6.1
        return released + ["|"] + [r.item for r in m.release()]

    # History: LB and TX1 hold the order at 1005 for a second, then nothing back.
    assert resumed(1e9) == ["t1004.9", "|", "t1500"]
    # Live (events at the wall clock): nothing holds.
    assert resumed(1000.0) == ["t1004.9", "t1500", "|"]


def test_source_watermarks_say_how_far_each_partition_has_delivered() -> None:
    clock = Clock()
    m = merger(clock, idle=0.1)
    m.add(TX, 0, 100.0, RANK_TRANSACTION, "a")
    m.add(TX, 1, 9_000.0, RANK_TRANSACTION, "live")
    m.add(TX, 2, 101.0, RANK_TRANSACTION, "b")
    m.add(TX1, 0, 100.5, RANK_TRANSACTION, "c")
    at_end(m)
    clock.now = 0.2
    assert [r.item for r in m.release()] == ["a", "live", "c", "b"]
    assert m.source_watermarks() == {TX: None, TX1: None, LB: None}  # nothing to read anywhere
    clock.now = 1.0
    m.add(TX1, 1, 102.0, RANK_TRANSACTION, "d")
    # TX stands at 101 (not at the live event, ahead of it), read 1 s ago; LB has said nothing.
    # The order's last event is a transaction at 101: every label of 101 is in, so the mark is
    # just past it (a transaction at 101 has all it needs).
    assert m.source_watermarks() == {TX: 102.0, TX1: math.nextafter(101.0, math.inf), LB: None}


def test_after_a_label_in_order_the_marks_stay_at_its_time() -> None:
    """Labels sort first at equal times: after a label at t, another label at t may still come,
    so a transaction at t does not have all it needs yet."""
    clock = Clock()
    m = merger(clock, idle=0.1)
    m.add(LB, 0, 100.0, RANK_LABEL, "l")
    m.add(LB, 1, 100.5, RANK_LABEL, "l2")
    m.add(TX, 0, 100.0, RANK_TRANSACTION, "a")
    m.add(TX, 1, 101.0, RANK_TRANSACTION, "b")
    at_end(m, TX1)
    clock.now = 0.2
    assert [r.item for r in m.release()] == ["l"]  # l2 alone in LB may be ahead of what follows
    assert m.source_watermarks()[TX] == 100.0


def test_an_event_ahead_of_its_own_partition_goes_early_and_holds_nothing_back() -> None:
    """A live transaction inside a replay: waiting could never put it in order."""
    m = merger(Clock(), idle=0.0)
    m.add(TX, 0, 1.0, RANK_TRANSACTION, "replay1")
    m.add(TX, 1, 9_000.0, RANK_TRANSACTION, "live")
    m.add(TX, 2, 2.0, RANK_TRANSACTION, "replay2")
    m.add(TX1, 0, 1.5, RANK_TRANSACTION, "u")
    m.add(TX1, 1, 3.0, RANK_TRANSACTION, "u3")
    m.add(LB, 0, 5.0, RANK_LABEL, "l")
    at_end(m)
    released = [(r.item, r.timing) for r in m.release()]
    assert released == [
        ("replay1", Timing.IN_ORDER),
        ("live", Timing.EARLY),  # as soon as it is its partition's head
        ("u", Timing.IN_ORDER),
        ("replay2", Timing.IN_ORDER),
        ("u3", Timing.IN_ORDER),
        ("l", Timing.IN_ORDER),
    ]
    assert m.watermark == 5.0  # the early event did not move it: the replay is not late
    assert m.committable() == {TX: 3, TX1: 2, LB: 1}


def test_a_lone_head_is_not_taken_for_where_its_partition_stands() -> None:
    """The live transaction is the last event read from its partition so far: what comes next
    may be earlier than the other partitions' heads, so they wait for it."""
    m = merger(Clock(), idle=0.0)
    m.add(TX, 0, 1.0, RANK_TRANSACTION, "replay1")
    m.add(TX, 1, 9_000.0, RANK_TRANSACTION, "live")
    m.add(TX1, 0, 2.0, RANK_TRANSACTION, "u2")
    m.add(TX1, 1, 4.0, RANK_TRANSACTION, "u4")
    at_end(m, LB)
    assert [r.item for r in m.release()] == ["replay1"]
    m.add(TX, 2, 3.0, RANK_TRANSACTION, "replay3")
    at_end(m, TX, TX1)
    assert [(r.item, r.timing) for r in m.release()] == [
        ("live", Timing.EARLY),
        ("u2", Timing.IN_ORDER),
        ("replay3", Timing.IN_ORDER),  # not late: nothing after 3.0 had been released in order
        ("u4", Timing.IN_ORDER),
    ]


def test_out_of_order_within_a_partition_releases_the_earlier_event_in_order() -> None:
    m = merger(Clock(), idle=0.0)
    m.add(TX, 0, 5.0, RANK_TRANSACTION, "t5")
    m.add(TX, 1, 4.0, RANK_TRANSACTION, "t4")
    at_end(m)
    assert [(r.item, r.timing, r.offset) for r in m.release()] == [("t5", Timing.EARLY, 0), ("t4", Timing.IN_ORDER, 1)]


def test_a_partition_ahead_of_the_others_waits_at_most_max_wait_each_time() -> None:
    """A producer whose clock runs ahead, alone on its partition, while the others replay."""
    clock = Clock()
    m = merger(clock, idle=0.0, max_wait=2.0)
    at_end(m, LB)
    m.add(TX, 0, 100.0, RANK_TRANSACTION, "ahead100")
    m.add(TX, 1, 101.0, RANK_TRANSACTION, "ahead101")
    m.add(TX1, 0, 1.0, RANK_TRANSACTION, "u1")
    m.add(TX1, 1, 2.0, RANK_TRANSACTION, "u2")
    assert [r.item for r in m.release()] == ["u1"]
    clock.now = 1.0
    m.add(TX1, 2, 3.0, RANK_TRANSACTION, "u3")
    assert [r.item for r in m.release()] == ["u2"]  # TX waits: TX1 may still hold older events
    clock.now = 2.5
    assert [(r.item, r.timing) for r in m.release()] == [("ahead100", Timing.EARLY), ("ahead101", Timing.EARLY)]
    m.add(TX, 2, 102.0, RANK_TRANSACTION, "ahead102")
    m.add(TX, 3, 103.0, RANK_TRANSACTION, "ahead103")
    assert list(m.release()) == []  # it waits again, at most as long
    clock.now = 4.6
    assert [r.item for r in m.release()] == ["ahead102", "ahead103"]
    assert m.watermark == 2.0
    # The others catch up with it: its events are in the order again.
    m.add(TX1, 3, 160.0, RANK_TRANSACTION, "u160")
    m.add(TX1, 4, 170.0, RANK_TRANSACTION, "u170")
    m.add(TX, 4, 150.0, RANK_TRANSACTION, "t150")
    m.add(TX, 5, 155.0, RANK_TRANSACTION, "t155")
    assert [(r.item, r.timing) for r in m.release()] == [("u3", Timing.IN_ORDER), ("t150", Timing.IN_ORDER)]


def waiting_on_a_lagging_partition(clock: Clock) -> EventTimeMerger[str]:
    """TX holds t50 and t51; TX1 released u10 and holds u11 alone: the order waits on TX1."""
    m = merger(clock, idle=0.0, max_wait=2.0)
    at_end(m, LB)
    m.add(TX, 0, 50.0, RANK_TRANSACTION, "t50")
    m.add(TX, 1, 51.0, RANK_TRANSACTION, "t51")
    m.add(TX1, 0, 10.0, RANK_TRANSACTION, "u10")
    m.add(TX1, 1, 11.0, RANK_TRANSACTION, "u11")
    assert [r.item for r in m.release()] == ["u10"]
    return m


def test_a_partition_the_order_waits_on_is_not_itself_waiting() -> None:
    """Only a partition that could release but for the others is bounded by max_wait: one with
    a lone head is what the others wait for, and goes on waiting for its next event."""
    clock = Clock()
    m = waiting_on_a_lagging_partition(clock)
    clock.now = 8.0
    assert [(r.item, r.timing) for r in m.release()] == [("t50", Timing.EARLY), ("t51", Timing.EARLY)]
    m.add(TX1, 2, 12.0, RANK_TRANSACTION, "u12")
    at_end(m, TX)
    assert [(r.item, r.timing) for r in m.release()] == [("u11", Timing.IN_ORDER)]


def test_invalid_input_is_released_at_once_and_never_moves_event_time() -> None:
    m = merger(Clock())
    m.add(TX, 0, 0.0, RANK_INVALID, "bad")
    m.add(TX, 1, 8.0, RANK_TRANSACTION, "t8")
    m.add(TX, 2, 8.5, RANK_TRANSACTION, "t8b")
    m.add(TX1, 0, 9.0, RANK_TRANSACTION, "u9")
    assert [r.item for r in m.release()] == ["bad"]
    m.add(TX1, 1, 10.0, RANK_TRANSACTION, "u10")
    m.add(LB, 0, 9.5, RANK_LABEL, "l")
    m.add(LB, 1, 11.0, RANK_LABEL, "l2")
    released = list(m.release())
    assert [r.item for r in released] == ["t8"]
    assert not released[0].late
    assert m.watermark == 8.0


def test_queued_counts_each_partition_and_assign_starts_over() -> None:
    m = merger(Clock())
    m.add(TX, 0, 1.0, RANK_TRANSACTION, "t")
    assert m.queued() == {TX: 1, TX1: 0, LB: 0}
    m.assign([TX])
    assert len(m) == 0
    assert m.committable() == {}


def test_partitions_given_after_a_rebalance_are_not_late_by_those_that_went() -> None:
    """The watermark of partitions this replica had says nothing about those it is given: a
    slower replica's partition, taken over, starts earlier and is in order, not late."""
    m = merger(Clock())
    for offset, t in enumerate((100.0, 101.0)):
        for source in (TX, TX1, LB):
            m.add(source, offset, t, RANK_TRANSACTION, "ahead")
    assert {r.timing for r in m.release()} == {Timing.IN_ORDER}
    assert m.watermark == 100.0
    m.assign([TX, TX1, LB, ("transactions", 2)])
    assert m.watermark == float("-inf")


def test_time_the_reader_was_held_back_does_not_count_as_waiting() -> None:
    clock = Clock()
    m = waiting_on_a_lagging_partition(clock)
    clock.now = 30.0  # the online store was down, the consumer paused
    m.restart_waits()
    m.add(TX1, 2, 12.0, RANK_TRANSACTION, "u12")
    assert [(r.item, r.timing) for r in m.release()] == [("u11", Timing.IN_ORDER)]


def test_a_released_event_says_how_long_it_waited_for_the_order() -> None:
    clock = Clock()
    m = merger(clock, idle=1.0)
    m.add(TX, 0, 10.0, RANK_TRANSACTION, "a")
    clock.now = 0.4
    m.add(TX, 1, 11.0, RANK_TRANSACTION, "b")
    at_end(m)
    assert list(m.release()) == []  # TX1 and LB not idle long enough yet
    clock.now = 1.5
    released = list(m.release())
    assert [r.item for r in released] == ["a", "b"]
    assert [r.waited for r in released] == pytest.approx([1.5, 1.1])


def test_a_lone_label_read_to_its_partitions_end_holds_back_nothing_where_labels_idle_at_once() -> None:
    """Labels come one at a time: with the labels' partitions idle at their end, a label read
    alone goes in order at once, and the transactions after it with it; the transactions'
    partitions still wait their idle time."""
    clock = Clock()
    m: EventTimeMerger[str] = EventTimeMerger(1.0, 10.0, clock, wall_clock=lambda: 1e9, topic_idle_seconds={LB[0]: 0.0})
    m.assign([TX, TX1, LB])
    for offset, at in enumerate((10.0, 12.0, 14.0)):
        m.add(TX, offset, at, RANK_TRANSACTION, f"t{at:g}")
        m.add(TX1, offset, at + 1, RANK_TRANSACTION, f"u{at + 1:g}")
    m.add(LB, 0, 11.0, RANK_LABEL, "l11")
    at_end(m, LB)
    assert [(r.item, r.timing) for r in m.release()] == [
        ("t10", Timing.IN_ORDER),
        ("l11", Timing.IN_ORDER),
        ("u11", Timing.IN_ORDER),
        ("t12", Timing.IN_ORDER),
    ]  # then TX holds one event, and has not said it is at its end
    assert m.source_watermarks()[LB] is None  # read to its end and idle: it holds no time back

    waiting = merger(clock)  # every partition idle after 1 s: the lone label, which may be ahead of
    # what its partition delivers next, holds everything for that second
    for offset, at in enumerate((10.0, 12.0, 14.0)):
        waiting.add(TX, offset, at, RANK_TRANSACTION, f"t{at:g}")
        waiting.add(TX1, offset, at + 1, RANK_TRANSACTION, f"u{at + 1:g}")
    waiting.add(LB, 0, 11.0, RANK_LABEL, "l11")
    at_end(waiting, LB)
    assert [r.item for r in waiting.release()] == []
    clock.now += 1.0
    assert [r.item for r in waiting.release()] == ["t10", "l11", "u11", "t12"]
