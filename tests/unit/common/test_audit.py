"""The audit log: a record the broker did not take is reported as such, and the trail the
console shows is newest first, once per act, bounded."""

from __future__ import annotations

import asyncio

import pytest

from fraudstream_common.audit import Action, AuditLog, AuditTrail, NotAuditedError, admin_action
from fraudstream_common.kafka import DeliveryError
from fraudstream_common.settings import ServiceSettings


class Producer:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.sent: list[tuple[str, bytes]] = []

    async def produce(self, topic: str, value: bytes, key: bytes | None = None, headers: object = None) -> None:
        if self.fail:
            raise DeliveryError("broker down")
        self.sent.append((topic, value))


def test_an_act_whose_record_is_not_acknowledged_says_so() -> None:
    log = AuditLog(Producer(fail=True), "audit", "monitor")  # type: ignore[arg-type]
    with pytest.raises(NotAuditedError, match="loop_paused done, but its audit record was not written"):
        asyncio.run(log.record(Action.LOOP_PAUSED, "ops (key:abc)"))


def test_a_record_names_who_what_and_when() -> None:
    producer = Producer(fail=False)
    entry = asyncio.run(AuditLog(producer, "audit", "monitor").record(Action.RETRAIN_FORCED, "ops", request_id="r1"))  # type: ignore[arg-type]
    assert (entry.action, entry.actor, dict(entry.details), entry.origin) == (
        "retrain_forced",
        "ops",
        {"request_id": "r1"},
        "monitor",
    )
    assert entry.at.seconds > 0
    assert producer.sent == [("audit", entry.SerializeToString())]


def test_the_trail_is_newest_first_once_per_act_and_bounded() -> None:
    trail = AuditTrail(ServiceSettings(), client_id="test", keep=3)
    acts = [admin_action(Action.KEY_CREATED, f"cli:{n}", {}, "cli") for n in range(5)]
    trail._caught_up([a.SerializeToString() for a in acts[:4]])
    trail._follow(acts[3].SerializeToString())  # seen twice
    trail._follow(b"\xff not a record")
    trail._follow(acts[4].SerializeToString())
    assert [a["actor"] for a in trail.latest()] == ["cli:4", "cli:3", "cli:2"]
