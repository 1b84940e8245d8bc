"""Feature state in Feast: write it (the features service, in micro-batches), read it (a
request at scoring time), and the one request-time function that turns a transaction and the
stored state into its feature vector."""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from feast import FeatureStore, FeatureView, RepoConfig
from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig
from feast.infra.online_stores.helpers import _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, _versioned_fv_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RegistryConfig
from google.protobuf.timestamp_pb2 import Timestamp
from redis.exceptions import NoScriptError

from fraudstream_common.features.state import CustomerState, Snapshot, TerminalState, feature_vector
from fraudstream_feature_store.repository import (
    CUSTOMER_VIEW,
    PROJECT,
    TERMINAL_VIEW,
    definitions,
    ensure_offline_logs,
)

# Writes one entity's row in Feast's Redis layout unless the row stored is as new or newer, as
# Feast's online_write_batch decides, and then sets the key's time to live if there is one.
# KEYS[1]: the entity's hash; ARGV: the timestamp's field, the row's seconds and nanoseconds, its
# serialised Timestamp, the time to live in seconds (0: none), then each feature's field and
# value. The stored Timestamp is read from its protobuf encoding: field 1 seconds, field 2
# nanoseconds, both varints.
WRITE_IF_NEWER = """
local function varint(bytes, at)
  local value, scale = 0, 1
  while true do
    local byte = string.byte(bytes, at)
    value = value + (byte % 128) * scale
    at = at + 1
    if byte < 128 then return value, at end
    scale = scale * 128
  end
end
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then
  local seconds, nanos, at = 0, 0, 1
  while at <= #stored do
    local tag = string.byte(stored, at)
    local value
    value, at = varint(stored, at + 1)
    if tag == 8 then seconds = value elseif tag == 16 then nanos = value end
  end
  local new_seconds, new_nanos = tonumber(ARGV[2]), tonumber(ARGV[3])
  if seconds > new_seconds or (seconds == new_seconds and nanos >= new_nanos) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4], unpack(ARGV, 6))
if tonumber(ARGV[5]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[5]) end
return 1
"""

# Query parameters of a Redis URL that redis-py takes for TLS, passed on to Feast's client.
TLS_PARAMETERS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")


def feast_redis_connection(redis_url: str, socket_timeout: float = 2.0) -> str:
    """A Redis URL as redis-py reads it (`rediss://` for TLS, an ACL user and password, the
    database as its path, TLS files as query parameters) in Feast's form,
    "host:port,db=N,key=value,...", so that Feast's client connects as ours does.

    Feast splits that form on commas: a user, password or path holding one is refused."""
    url = urlsplit(redis_url)
    parts = [f"{url.hostname or '127.0.0.1'}:{url.port or 6379}"]
    options = {"db": (url.path or "/0").lstrip("/") or "0"}
    if url.username:
        options["username"] = unquote(url.username)
    if url.password:
        options["password"] = unquote(url.password)
    if url.scheme == "rediss":
        options["ssl"] = "true"
    query = parse_qs(url.query)
    for name in TLS_PARAMETERS:
        if name in query:
            options[name] = query[name][-1]
    for name, value in options.items():
        if "," in value:
            raise ValueError(f"the Redis URL's {name} holds a comma, which Feast's connection string cannot carry")
        parts.append(f"{name}={value}")
    # Fail fast instead of hanging on a dead Redis: callers retry (the stream) or fall back (a request).
    parts.append(f"socket_timeout={socket_timeout:g}")
    parts.append(f"socket_connect_timeout={socket_timeout:g}")
    return ",".join(parts)


def open_store(redis_url: str, registry: Path, offline_dir: Path) -> FeatureStore:
    """A Feast store over the given Redis, registry file and offline folder (no feature_store.yaml)."""
    config = RepoConfig(
        project=PROJECT,
        provider="local",
        registry=RegistryConfig(path=str(registry), cache_ttl_seconds=60),
        online_store=RedisOnlineStoreConfig(connection_string=feast_redis_connection(redis_url)),
        offline_store=DuckDBOfflineStoreConfig(),
        entity_key_serialization_version=3,
    )
    return FeatureStore(config=config)


def apply_repository(redis_url: str, registry: Path, offline_dir: Path) -> FeatureStore:
    """Registers the repository (idempotent): what `fraudstream platform up` runs."""
    registry.parent.mkdir(parents=True, exist_ok=True)
    ensure_offline_logs(offline_dir)
    store = open_store(redis_url, registry, offline_dir)
    store.apply(definitions(offline_dir))
    return store


class _ViewLayout:
    """Where Feast's Redis store keeps a view's rows: the hash of each entity, and in it the
    fields of the row's timestamp and of each feature. Built from Feast's own helpers for one
    entity; the key of another is the same bytes with its id in place, which is checked against
    Feast's helper once, here, so that a Feast release with another layout fails at start."""

    def __init__(self, config: RepoConfig, online_store: RedisOnlineStore, view: FeatureView, join_key: str) -> None:
        version = config.entity_key_serialization_version
        self._suffix = config.project.encode()

        def feast_key(entity: str) -> bytes:
            return _redis_key(config.project, _entity_key(join_key, entity), entity_key_serialization_version=version)

        self._prefix = feast_key("")[: -len(struct.pack("<I", 0) + self._suffix)]
        for entity in ("", "customer-ü 1"):
            if self.key(entity) != feast_key(entity):
                raise RuntimeError(f"Feast's Redis keys of {view.name} are not laid out as this store writes them")
        names = [feature.name for feature in view.features]
        _names, fields = online_store._generate_hset_keys_for_features(
            view, list(names), fv_name_override=_versioned_fv_name(view, config)
        )
        *feature_fields, self.timestamp_field = fields  # Feast appends the timestamp's field
        self.feature_fields = dict(zip(names, feature_fields, strict=True))

    def key(self, entity: str) -> bytes:
        encoded = entity.encode()
        return b"".join((self._prefix, struct.pack("<I", len(encoded)), encoded, self._suffix))


class FeatureStateStore:
    def __init__(self, store: FeatureStore) -> None:
        self._store = store
        self._online_store = RedisOnlineStore()
        self._layouts: dict[str, _ViewLayout] = {}
        self._write_sha: str | None = None

    @property
    def feast(self) -> FeatureStore:
        """The Feast store itself, for what this wrapper does not cover (historical features)."""
        return self._store

    def push(self, customers: Mapping[str, Snapshot], terminals: Mapping[str, Snapshot]) -> None:
        """Writes the states to the online store, each stamped with its version time, in Feast's
        layout; a row is written only where the one stored is older, as Feast decides, so
        pushing a batch twice changes nothing.

        One round trip for the batch: a script on the Redis server compares and writes each row
        (Feast's own batch write reads every stored timestamp first, then writes, in two round
        trips, and builds each row's fields anew). Each row is one call on one key, so a push
        blocks no reader for longer than a row."""
        calls: list[tuple[bytes, bytes | str, int, int, bytes, list[bytes | str]]] = []
        for view, states in ((CUSTOMER_VIEW, customers), (TERMINAL_VIEW, terminals)):
            if not states:
                continue
            layout = self._layout(view)
            state_field, as_of_field = layout.feature_fields["state"], layout.feature_fields["as_of"]
            for entity, snapshot in states.items():
                seconds, micros = _seconds_and_micros(snapshot.version_time)
                stamp = Timestamp(seconds=seconds, nanos=micros * 1000)
                values = ValueProto(string_val=snapshot.json).SerializeToString()
                as_of = ValueProto(double_val=snapshot.as_of).SerializeToString()
                calls.append(
                    (
                        layout.key(entity),
                        layout.timestamp_field,
                        stamp.seconds,
                        stamp.nanos,
                        stamp.SerializeToString(),
                        [state_field, values, as_of_field, as_of],
                    )
                )
        if calls:
            self._write_if_newer(calls)

    def _write_if_newer(self, calls: Sequence[tuple[bytes, bytes | str, int, int, bytes, list[bytes | str]]]) -> None:
        client = self._online_store._get_client(self._store.config.online_store)
        ttl = self._store.config.online_store.key_ttl_seconds or 0
        for attempt in range(2):
            if self._write_sha is None:
                self._write_sha = client.script_load(WRITE_IF_NEWER)
            try:
                with client.pipeline(transaction=False) as pipe:
                    for key, timestamp_field, seconds, nanos, stamp, fields in calls:
                        pipe.evalsha(self._write_sha, 1, key, timestamp_field, seconds, nanos, stamp, ttl, *fields)
                    pipe.execute()
                return
            except NoScriptError:
                # The server lost its scripts (a restart): nothing was written; load it again.
                self._write_sha = None
                if attempt:
                    raise

    def _layout(self, view: str) -> _ViewLayout:
        layout = self._layouts.get(view)
        if layout is None:
            join_key = "customer_id" if view == CUSTOMER_VIEW else "terminal_id"
            layout = self._layouts[view] = _ViewLayout(
                self._store.config, self._online_store, self._store.get_feature_view(view), join_key
            )
        return layout

    def read(self, customer_id: str, terminal_id: str) -> tuple[CustomerState, TerminalState]:
        """The stored state of a customer and a terminal (empty states for unknown ones)."""
        response = self._store.get_online_features(
            features=[f"{CUSTOMER_VIEW}:state", f"{TERMINAL_VIEW}:state"],
            entity_rows=[{"customer_id": customer_id, "terminal_id": terminal_id}],
            full_feature_names=True,
        ).to_dict()
        return (
            CustomerState.from_json(response[f"{CUSTOMER_VIEW}__state"][0]),
            TerminalState.from_json(response[f"{TERMINAL_VIEW}__state"][0]),
        )

    async def read_many(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[CustomerState, TerminalState]]:
        """The stored states of (customer, terminal) pairs, in ONE asynchronous round trip for
        both views: what a request waits on, so that a deadline can cancel it.

        Feast's `online_read_async` takes one round trip per view and builds protos for every
        field; on the request path that doubled the Redis time. This reads the same hashes
        (tests/integration/feature_store holds the read equal to Feast's
        `get_online_features`)."""
        customers, terminals = self._layout(CUSTOMER_VIEW), self._layout(TERMINAL_VIEW)
        customer_field, terminal_field = customers.feature_fields["state"], terminals.feature_fields["state"]
        client = await self._online_store._get_client_async(self._store.config.online_store)
        async with client.pipeline(transaction=False) as pipe:
            for customer_id, _ in pairs:
                pipe.hget(customers.key(customer_id), customer_field)
            for _, terminal_id in pairs:
                pipe.hget(terminals.key(terminal_id), terminal_field)
            values = await pipe.execute()
        return [
            (
                CustomerState.from_json(_string_of(values[n])),
                TerminalState.from_json(_string_of(values[len(pairs) + n])),
            )
            for n in range(len(pairs))
        ]

    def request_features(
        self, *, customer_id: str, terminal_id: str, event_time: float, amount: float
    ) -> dict[str, float]:
        """The feature vector of a transaction at request time: the stored state of its
        customer and terminal, combined with it by the shared definitions. The state is not
        changed: the transaction joins it when it comes through the stream."""
        customer, terminal = self.read(customer_id, terminal_id)
        return feature_vector(customer, terminal, event_time=event_time, amount=amount, terminal_id=terminal_id)


def _seconds_and_micros(timestamp: float) -> tuple[int, int]:
    """A POSIX timestamp as whole seconds and microseconds, rounded as
    `datetime.fromtimestamp` rounds it (half to even), which is how Feast stamps a row."""
    fraction, whole = math.modf(timestamp)
    seconds, micros = int(whole), round(fraction * 1e6)
    if micros >= 1_000_000:
        return seconds + 1, micros - 1_000_000
    if micros < 0:
        return seconds - 1, micros + 1_000_000
    return seconds, micros


def _entity_key(join_key: str, entity: str) -> EntityKeyProto:
    return EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=entity)])


def _string_of(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    value = ValueProto.FromString(raw)
    return value.string_val if value.HasField("string_val") else None
