"""A consumed Kafka message, as the unit tests hand one to a transform (the integration tests
use the real broker)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fraudstream_common.kafka import HeaderList


@dataclass
class FakeMessage:
    value_: bytes | None
    offset_: int
    key_: bytes | None = b"k"
    headers_: HeaderList = field(default_factory=list)
    topic_: str = "transactions.raw"
    partition_: int = 0

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> HeaderList:
        return self.headers_

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)

    def error(self) -> None:
        return None
