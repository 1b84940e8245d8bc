"""`fraudstream up --replicas features=2`: replicas of a scalable service on their own ports
and instance ids; anything else refused with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudstream_cli.platform.services import local_services, parse_replicas
from fraudstream_cli.platform.settings import PlatformSettings


def settings(tmp_path: Path) -> PlatformSettings:
    return PlatformSettings(home=tmp_path)


def test_replicas_of_a_scalable_service_get_their_own_ports_and_instance_ids(tmp_path: Path) -> None:
    services = local_services(settings(tmp_path), parse_replicas(["features=3"]))
    features = [s for s in services if s.spec.name == "features"]
    assert [s.name for s in features] == ["features", "features-1", "features-2"]
    assert [s.http_port for s in features] == [8083, 8183, 8283]
    assert [s.environment()["FRAUDSTREAM_INSTANCE_ID"] for s in features] == ["features-0", "features-1", "features-2"]
    assert len({s.process.pid_file for s in services}) == len(services)
    assert [s.name for s in services if s.spec.name == "inference"] == ["inference"]
    assert parse_replicas(["features=2,ingest=3", "inference=2", "monitor=2"]) == {
        "features": 2,
        "ingest": 3,
        "inference": 2,
        "monitor": 2,
    }
    ingest = local_services(settings(tmp_path), parse_replicas(["ingest=2"]))
    assert [(s.http_port, s.grpc_port) for s in ingest if s.spec.name == "ingest"] == [(8081, 50052), (8181, 50152)]


@pytest.mark.parametrize(
    ("values", "error"),
    [
        (["features"], "SERVICE=N"),
        (["features=x"], "SERVICE=N"),
        (["nosuch=2"], "no service called nosuch"),
        (["trainer=2"], "trainer: 2 replicas"),
        (["features=0"], "features: 0 replicas"),
    ],
)
def test_what_cannot_run_is_refused_with_its_reason(tmp_path: Path, values: list[str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        local_services(settings(tmp_path), parse_replicas(values))
