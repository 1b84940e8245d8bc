"""compose.yaml, as compose-go resolves it, holds what it needs to start and to run unattended:
each service can write the volumes it is given, the model registry answers the services, Kafka
keeps its topics, every long-running service has a health check, a restart policy and limits,
nothing listens beyond this machine by default, secrets come from an uncommitted .env, and the
`gpu` profile asks for a GPU."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from . import compose_model as compose
from . import dockerfile_model as dockerfile

ROOT = Path(__file__).resolve().parents[3]
ONE_SHOT = {"topics", "feast-apply", "simulator"}


def test_kafka_keeps_its_topics_on_its_volume() -> None:
    kafka = compose.services()["kafka"]
    volumes = {v["target"] for v in kafka["volumes"] if v["type"] == "volume"}
    # Without KAFKA_LOG_DIRS the image writes to /tmp/kraft-combined-logs: a new container has no topics.
    assert kafka["environment"].get("KAFKA_LOG_DIRS") in volumes


def test_services_own_the_volumes_they_write() -> None:
    services = compose.services()
    # Services that run an image another one builds (the CLI's one-shot jobs) have no build section.
    built_by = {s["image"]: s["build"]["target"] for s in services.values() if "build" in s}
    for name, service in services.items():
        if not service["image"].startswith("fraudstream-"):
            continue
        stage = built_by[service["image"]]
        user, runs = dockerfile.stages()[stage]["user"], dockerfile.runs(stage)
        for volume in service.get("volumes", []):
            if volume["type"] != "volume" or volume.get("read_only"):
                continue
            target = volume["target"]
            assert any(
                "mkdir" in run and target in run and re.search(rf"chown {user}\S* [^&]*{re.escape(target)}", run)
                for run in runs
            ), f"{name} writes {target}, which its image does not create for user {user}: a new volume is root's"


def test_mlflow_serves_the_locked_version_to_the_services_host() -> None:
    services = compose.services()
    mlflow = services["mlflow"]
    locked = tomllib.loads((ROOT / "uv.lock").read_text())
    [version] = [p["version"] for p in locked["package"] if p["name"] == "mlflow"]
    assert mlflow["image"].endswith(f":v{version}"), (mlflow["image"], version)
    command = mlflow["command"]
    allowed = set(command[command.index("--allowed-hosts") + 1].split(","))
    for name, service in services.items():
        uri = service.get("environment", {}).get("FRAUDSTREAM_MLFLOW_TRACKING_URI")
        if uri is None:
            continue
        parts = urlsplit(uri)
        # MLflow 3.5+ answers 403 to a Host header it does not allow; /health is exempt.
        assert {parts.hostname, parts.netloc} <= allowed, (name, uri, allowed)


def test_long_running_services_are_checked_restarted_and_limited() -> None:
    for name, service in compose.services().items():
        if name in ONE_SHOT:
            assert service.get("restart", "no") == "no", name
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name}: no health check"
        assert service.get("restart") in ("unless-stopped", "always"), f"{name}: no restart policy"
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus"), f"{name}: no CPU limit"
        assert limits.get("memory"), f"{name}: no memory limit"


def test_ports_listen_on_this_machine_only_and_never_for_kafka_or_redis() -> None:
    services = compose.services()
    assert not services["kafka"].get("ports")
    assert not services["redis"].get("ports")
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", (name, port)


def test_the_gpu_profile_reserves_a_gpu_and_requires_cuda() -> None:
    services = compose.services()
    gpu = services["inference-gpu"]
    assert gpu["profiles"] == ["gpu"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert "gpu" in device["capabilities"]
    assert gpu["environment"]["FRAUDSTREAM_DEVICE"] == "cuda"
    assert gpu["build"]["target"] == "inference-gpu"
    # Its own ports beside the CPU replica's, and its own transactional identity.
    published = {p["published"] for s in ("inference", "inference-gpu") for p in services[s]["ports"]}
    assert len(published) == len(services["inference"]["ports"]) + len(gpu["ports"])
    assert (
        gpu["environment"]["FRAUDSTREAM_INSTANCE_ID"] != services["inference"]["environment"]["FRAUDSTREAM_INSTANCE_ID"]
    )


def test_secrets_come_from_the_environment_and_are_required(tmp_path: Path) -> None:
    services = compose.services()
    redis = services["redis"]
    command = redis["command"]
    password = command[command.index("--requirepass") + 1]
    assert password == compose.secrets()["REDIS_PASSWORD"]
    assert redis["environment"]["REDISCLI_AUTH"] == password  # its health check's redis-cli
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if isinstance(value, str) and value.startswith("redis://"):
                assert urlsplit(value).password == password, (name, key)
    assert (
        services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == compose.secrets()["GRAFANA_ADMIN_PASSWORD"]
    )
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/.env" in ignored

    # Without any one of them (no .env beside the file, only the others in the environment),
    # nothing starts, and the refusal names the one missing. compose-go interpolates in map
    # order, so each is left out alone.
    shutil.copy(ROOT / "compose.yaml", tmp_path / "compose.yaml")
    for missing in compose.secrets():
        others = {name: value for name, value in compose.secrets().items() if name != missing}
        refused = compose.load(tmp_path / "compose.yaml", others)
        assert refused.returncode == 1, missing
        assert f"set {missing} in .env" in refused.stderr
