"""The event-time merger: one order out of many partitions, exact committable offsets, idle
partitions, late events."""

from __future__ import annotations

from fraudstream_features.merge import RANK_INVALID, RANK_LABEL, RANK_TRANSACTION, EventTimeMerger

TX = ("transactions", 0)
TX1 = ("transactions", 1)
LB = ("labels", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def merger(clock: Clock, idle: float = 1.0) -> EventTimeMerger[str]:
    m: EventTimeMerger[str] = EventTimeMerger(idle, clock)
    m.assign([TX, TX1, LB])
    return m


def test_releases_nothing_while_a_partition_may_still_deliver_earlier_events() -> None:
    m = merger(Clock())
    m.add(TX, 0, 10.0, RANK_TRANSACTION, "a")
    m.add(LB, 0, 5.0, RANK_LABEL, "l")
    assert [r.item for r in m.release()] == []  # TX1 has said nothing yet
    m.add(TX1, 0, 7.0, RANK_TRANSACTION, "b")
    assert [r.item for r in m.release()] == ["l"]  # then LB is empty again: "b" and "a" wait


def test_labels_before_transactions_at_equal_times_and_time_order_across_partitions() -> None:
    m = merger(Clock())
    m.add(TX, 0, 3.0, RANK_TRANSACTION, "t3")
    m.add(TX, 1, 9.0, RANK_TRANSACTION, "t9")
    m.add(TX1, 0, 1.0, RANK_TRANSACTION, "u1")
    m.add(TX1, 1, 20.0, RANK_TRANSACTION, "u20")
    m.add(LB, 0, 3.0, RANK_LABEL, "l3")
    m.add(LB, 1, 30.0, RANK_LABEL, "l30")
    assert [r.item for r in m.release()] == ["u1", "l3", "t3", "t9"]
    assert m.committable() == {TX: 2, TX1: 1, LB: 1}
    assert len(m) == 2
    assert m.watermark == 9.0


def test_an_idle_partition_stops_holding_time_back_after_the_grace_period() -> None:
    clock = Clock()
    m = merger(clock, idle=0.5)
    m.add(TX, 0, 3.0, RANK_TRANSACTION, "t3")
    m.reached_end(TX1)
    m.reached_end(LB)
    assert list(m.release()) == []
    clock.now = 0.6
    assert [r.item for r in m.release()] == ["t3"]
    # It arrives later with an earlier time: released (not lost), flagged late.
    m.add(TX1, 0, 2.0, RANK_TRANSACTION, "u2")
    m.reached_end(TX)
    clock.now = 2.0
    released = list(m.release())
    assert [(r.item, r.late) for r in released] == [("u2", True)]
    assert m.committable() == {TX: 1, TX1: 1}


def test_out_of_order_within_a_partition_keeps_partition_order_and_flags_late() -> None:
    clock = Clock()
    m = merger(clock, idle=0.0)
    m.add(TX, 0, 5.0, RANK_TRANSACTION, "t5")
    m.add(TX, 1, 4.0, RANK_TRANSACTION, "t4")
    for source in (TX1, LB):
        m.reached_end(source)
    assert [(r.item, r.late, r.offset) for r in m.release()] == [("t5", False, 0), ("t4", True, 1)]


def test_invalid_input_is_released_first_and_never_moves_event_time() -> None:
    m = merger(Clock())
    m.add(TX, 0, 0.0, RANK_INVALID, "bad")
    m.add(TX, 1, 8.0, RANK_TRANSACTION, "t8")
    m.add(TX1, 0, 9.0, RANK_TRANSACTION, "u9")
    m.add(LB, 0, 9.5, RANK_LABEL, "l")
    released = list(m.release())
    assert [r.item for r in released] == ["bad", "t8"]
    assert not released[0].late
    assert m.watermark == 8.0


def test_ahead_names_partitions_with_waiting_events_and_assign_starts_over() -> None:
    m = merger(Clock())
    m.add(TX, 0, 1.0, RANK_TRANSACTION, "t")
    assert m.ahead() == [TX]
    m.assign([TX])
    assert len(m) == 0
    assert m.committable() == {}
