"""Drop duplicates by transaction id, remembering each id's first position in Redis.

A key per transaction id holds the position (topic:partition:offset) of its first sighting and
the digest of its content (fraudstream_common.idempotency). A message is a duplicate only when
its id was first seen at *another* position: a batch that is replayed after a crash (its Kafka
transaction aborted) therefore passes again, instead of being taken for a duplicate of itself
and lost. A duplicate whose content differs is a conflict, not a retry. Keys written before
the digest was kept hold the position alone; their duplicates count as retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

# KEYS: one dedupe key per message; ARGV: a position and a content digest per key, then the TTL
# in seconds. Returns, per key: 1 where the message is the id's first sighting (or a replay of
# it), 0 where it is a duplicate with the same content, the first position where its content differs.
_CLAIM_SCRIPT = """
local ttl = ARGV[#KEYS * 2 + 1]
local claims = {}
for i, key in ipairs(KEYS) do
  local position, digest = ARGV[i * 2 - 1], ARGV[i * 2]
  local seen = redis.call('GET', key)
  if not seen then
    redis.call('SET', key, position .. ' ' .. digest, 'EX', ttl)
    claims[i] = 1
  else
    local gap = string.find(seen, ' ', 1, true)
    local first = gap and string.sub(seen, 1, gap - 1) or seen
    if first == position then
      claims[i] = 1
    elseif not gap or string.sub(seen, gap + 1) == digest then
      claims[i] = 0
    else
      claims[i] = first
    end
  end
end
return claims
"""


@dataclass(frozen=True)
class Sighting:
    transaction_id: str
    position: str
    digest: str


@dataclass(frozen=True)
class Claim:
    """What a sighting is: the id's first (pass it on), a retry (drop it), or a conflict with
    the content first seen at `first_position` (dead-letter it)."""

    first: bool
    first_position: str = ""

    @property
    def conflict(self) -> bool:
        return bool(self.first_position)


FIRST = Claim(first=True)
RETRY = Claim(first=False)


class Deduplicator:
    def __init__(self, client: redis.Redis, ttl_seconds: int, key_prefix: str = "fraudstream:ingest:seen:") -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = key_prefix
        self._claim = client.register_script(_CLAIM_SCRIPT)

    def claim(self, sightings: Sequence[Sighting]) -> list[Claim]:
        """One claim per sighting, in order. Raises redis.RedisError when Redis cannot answer;
        nothing is decided then."""
        if not sightings:
            return []
        keys = [self._prefix + s.transaction_id for s in sightings]
        args = [value for s in sightings for value in (s.position, s.digest)]
        result = self._claim(keys=keys, args=[*args, self._ttl])
        return [_claim_of(answer) for answer in result]

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False


def _claim_of(answer: int | bytes) -> Claim:
    if answer == 1:
        return FIRST
    if answer == 0:
        return RETRY
    return Claim(first=False, first_position=answer.decode() if isinstance(answer, bytes) else str(answer))
