"""Raw transactions as the simulator writes them: the event time to the microsecond, in both
formats ingest reads."""

from __future__ import annotations

import math

import orjson
import pandas as pd

from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.timestamps import seconds_of
from fraudstream_simulator.sinks import encode_transaction_json, encode_transaction_protobuf, exact_epoch_seconds

WHOLE = 1_522_540_800.0  # 2018-04-01T00:00:00Z
FRACTIONAL = WHOLE + 0.25


def test_a_time_in_whole_seconds_is_written_as_before() -> None:
    body = orjson.loads(encode_transaction_json("tx", "c", "t", 1.0, "EUR", WHOLE))
    assert body["timestamp"] == "2018-04-01T00:00:00Z"
    assert Transaction.FromString(encode_transaction_protobuf("tx", "c", "t", 1.0, "EUR", WHOLE)).event_time.nanos == 0


def test_a_time_between_seconds_keeps_its_fraction() -> None:
    body = orjson.loads(encode_transaction_json("tx", "c", "t", 1.0, "EUR", FRACTIONAL))
    assert body["timestamp"] == "2018-04-01T00:00:00.250000Z"
    message = Transaction.FromString(encode_transaction_protobuf("tx", "c", "t", 1.0, "EUR", FRACTIONAL))
    assert seconds_of(message.event_time) == FRACTIONAL


def test_exact_epoch_seconds_keep_the_microseconds() -> None:
    times = pd.Series([pd.Timestamp("2018-04-01T00:00:00Z"), pd.Timestamp("2018-04-01T00:00:00.250001Z")])
    assert exact_epoch_seconds(times).tolist() == [WHOLE, 1_522_540_800.250001]


def test_a_fraction_within_half_a_microsecond_of_the_next_second_is_that_second() -> None:
    just_before = math.nextafter(WHOLE, 0.0)  # 0.24 us before it: the closest a float gets here
    body = orjson.loads(encode_transaction_json("tx", "c", "t", 1.0, "EUR", just_before))
    assert body["timestamp"] == "2018-04-01T00:00:00Z"
