"""Where the Feast feature store lives; every service that reads or writes features takes these
(FRAUDSTREAM_ environment variables), and `fraudstream platform up` sets them for local runs."""

from __future__ import annotations

from pathlib import Path

from feast import FeatureStore
from pydantic import BaseModel, Field

from fraudstream_feature_store.store import FeatureStateStore, open_store


class FeatureStoreSettings(BaseModel):
    feature_store_redis_url: str = Field(
        default="redis://127.0.0.1:6379/1", description="Redis of Feast's online store (its own database number)."
    )
    feature_registry: Path = Field(
        default=Path(".platform/feast/registry.db"), description="Feast registry file (shared by every service)."
    )
    feature_offline_dir: Path = Field(
        default=Path(".platform/feast/offline"), description="Folder of Feast's parquet offline store."
    )

    def feast(self) -> FeatureStore:
        return open_store(self.feature_store_redis_url, self.feature_registry, self.feature_offline_dir)

    def state_store(self) -> FeatureStateStore:
        return FeatureStateStore(self.feast())
