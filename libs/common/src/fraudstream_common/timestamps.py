"""Protobuf timestamps to and from seconds since the epoch (UTC), the unit every fraudstream
computation uses."""

from __future__ import annotations

import math

from google.protobuf.timestamp_pb2 import Timestamp


def seconds_of(timestamp: Timestamp) -> float:
    return timestamp.seconds + timestamp.nanos / 1e9


def timestamp_of(seconds: float) -> Timestamp:
    whole = math.floor(seconds)
    return Timestamp(seconds=whole, nanos=int((seconds - whole) * 1e9))
