"""Drop duplicates by transaction id, remembering each id's first position in Redis.

A key per transaction id holds the position (topic:partition:offset) of its first sighting.
A message is a duplicate only when its id was first seen at *another* position: a batch that
is replayed after a crash (its Kafka transaction aborted) therefore passes again, instead of
being taken for a duplicate of itself and lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

# KEYS: one dedupe key per message; ARGV: one position per key, then the TTL in seconds.
# Returns 1 where the message is the first sighting of its id, 0 where it is a duplicate.
_CLAIM_SCRIPT = """
local ttl = ARGV[#KEYS + 1]
local first = {}
for i, key in ipairs(KEYS) do
  local seen = redis.call('GET', key)
  if not seen then
    redis.call('SET', key, ARGV[i], 'EX', ttl)
    first[i] = 1
  elseif seen == ARGV[i] then
    first[i] = 1
  else
    first[i] = 0
  end
end
return first
"""


class Deduplicator:
    def __init__(self, client: redis.Redis, ttl_seconds: int, key_prefix: str = "fraudstream:ingest:seen:") -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = key_prefix
        self._claim = client.register_script(_CLAIM_SCRIPT)

    def claim(self, sightings: Sequence[tuple[str, str]]) -> list[bool]:
        """For each (transaction_id, position): True when this position is the id's first sighting.

        Raises redis.RedisError when Redis cannot answer; nothing is decided then.
        """
        if not sightings:
            return []
        keys = [self._prefix + transaction_id for transaction_id, _ in sightings]
        args = [position for _, position in sightings]
        result = self._claim(keys=keys, args=[*args, self._ttl])
        return [flag == 1 for flag in result]

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False
