"""The online store's writer against real Redis and Feast: the rows it writes are the bytes
Feast's own batch write stores, it keeps the newest row as Feast does (against rows Feast
wrote, too), and it survives a Redis that lost its scripts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from fraudstream_common.features.state import CustomerState, Snapshot
from fraudstream_feature_store.repository import CUSTOMER_VIEW, TERMINAL_VIEW
from fraudstream_feature_store.store import FeatureStateStore, apply_repository
from tests.platform import PLATFORM

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> FeatureStateStore:
    feast = apply_repository(PLATFORM.feature_store_redis_url, tmp_path / "registry.db", tmp_path / "offline")
    return FeatureStateStore(feast)


@pytest.fixture
def client() -> redis.Redis:
    return redis.Redis.from_url(PLATFORM.feature_store_redis_url)


def snapshot(updates: int, version_time: float) -> Snapshot:
    state = CustomerState()
    state.updates = updates
    return Snapshot(state.to_json(), version_time - 1.0, version_time)


def feast_write(store: FeatureStateStore, view: str, join_key: str, rows: dict[str, Snapshot]) -> None:
    """The same rows through Feast's own batch write."""
    RedisOnlineStore().online_write_batch(
        store.feast.config,
        store.feast.get_feature_view(view),
        [
            (
                EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=entity)]),
                {"state": ValueProto(string_val=row.json), "as_of": ValueProto(double_val=row.as_of)},
                datetime.fromtimestamp(row.version_time, UTC),
                None,
            )
            for entity, row in rows.items()
        ],
        None,
    )


def stored_rows(client: redis.Redis, store: FeatureStateStore, view: str, entities: list[str]) -> list[object]:
    layout = store._layout(view)
    with client.pipeline(transaction=False) as pipe:
        for entity in entities:
            pipe.hgetall(layout.key(entity))  # type: ignore[arg-type]  # redis-py takes bytes keys too
        return list(pipe.execute())


def test_rows_are_the_bytes_feast_writes(store: FeatureStateStore, client: redis.Redis) -> None:
    run = uuid.uuid4().hex[:8]
    for view, join_key in ((CUSTOMER_VIEW, "customer_id"), (TERMINAL_VIEW, "terminal_id")):
        rows = {f"{run}-{n}-é": snapshot(n, 1_527_000_000.123456 + n * 1e-6) for n in range(50)}
        entities = list(rows)
        feast_write(store, view, join_key, rows)
        by_feast = stored_rows(client, store, view, entities)
        assert all(by_feast), "Feast's rows are where the layout says"
        client.delete(*(store._layout(view).key(entity) for entity in entities))
        if view == CUSTOMER_VIEW:
            store.push(rows, {})
        else:
            store.push({}, rows)
        assert stored_rows(client, store, view, entities) == by_feast


def test_the_newest_row_is_kept_whoever_wrote_it(store: FeatureStateStore, client: redis.Redis) -> None:
    customer = f"{uuid.uuid4().hex[:8]}-customer"
    at = 1_527_000_000.5
    feast_write(store, CUSTOMER_VIEW, "customer_id", {customer: snapshot(2, at)})

    store.push({customer: snapshot(1, at - 1e-6)}, {})  # older by a microsecond
    assert store.read(customer, "none")[0].updates == 2
    store.push({customer: snapshot(3, at)}, {})  # the same version time: not newer
    assert store.read(customer, "none")[0].updates == 2
    store.push({customer: snapshot(4, at + 1e-6)}, {})
    assert store.read(customer, "none")[0].updates == 4
    store.push({customer: snapshot(5, at - 86_400 * 400)}, {})  # older by seconds
    assert store.read(customer, "none")[0].updates == 4


def test_a_redis_that_lost_its_scripts_is_written_again(store: FeatureStateStore, client: redis.Redis) -> None:
    customer = f"{uuid.uuid4().hex[:8]}-customer"
    store.push({customer: snapshot(1, 1_527_000_000.0)}, {})
    client.script_flush()
    store.push({customer: snapshot(2, 1_527_000_001.0)}, {})
    assert store.read(customer, "none")[0].updates == 2
