"""compose.yaml and k8s/ are not run here (no Docker engine, no cluster); these checks hold them
to what they promise: overlays that render and that an API server would accept, hardened pods,
probes, networking denied unless named, Kafka users that write only their own topics, secrets
never committed, and only settings that exist."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml

from fraudstream_cli.platform.redis_server import EVICTION_POLICY, RedisServer
from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.topics import TOPIC_SPECS, Topic, Writer, topic_partitions
from fraudstream_feature_store.settings import FeatureStoreSettings
from fraudstream_features.settings import FeaturesSettings
from fraudstream_inference.settings import InferenceSettings
from fraudstream_ingest.settings import IngestSettings
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_trainer.settings import TrainerSettings

from . import compose_model as compose
from .kubernetes import K8S, OVERLAYS, check, named, of_kind, placeholder_copy, rendered

KNOWN_SETTINGS = {
    f"FRAUDSTREAM_{name.upper()}"
    for settings in (
        ServiceSettings,
        IngestSettings,
        FeaturesSettings,
        TrainerSettings,
        InferenceSettings,
        MonitorSettings,
        PlatformSettings,
        FeatureStoreSettings,
    )
    for name in settings.model_fields
}
SERVICES = ("ingest", "features", "inference", "monitor", "trainer")
WORKLOADS = ("Deployment", "StatefulSet", "Job")


def workloads(overlay: str) -> list[dict[str, Any]]:
    return [d for kind in WORKLOADS for d in of_kind(overlay, kind)]


def pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def test_every_manifest_file_is_used_by_its_kustomization() -> None:
    for folder in [K8S / "base", *(K8S / "overlays" / o for o in OVERLAYS), *(K8S / "components").iterdir()]:
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        used = set(kustomization.get("resources", [])) | {
            p["path"] for p in kustomization.get("patches", []) if "path" in p
        }
        present = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
        assert present <= used, f"{folder}: not in its kustomization: {sorted(present - used)}"


def test_no_secret_value_is_committed() -> None:
    committed = [d for path in K8S.rglob("*.yaml") for d in yaml.safe_load_all(path.read_text()) if d]
    assert not [d for d in committed if d.get("kind") == "Secret"], "Secrets come from the overlays' generators"


def test_a_field_no_schema_knows_is_refused() -> None:
    copy = placeholder_copy()
    dev = copy / "overlays" / "dev"
    topics = dev / "kafka-topics.yaml"
    topics.write_text(topics.read_text().replace("  partitions:", "  partition_count:", 1))
    mlflow = dev / "mlflow.yaml"
    mlflow.write_text(mlflow.read_text().replace("  replicas: 1", "  replica: 1", 1))
    users = dev / "kafka-users.yaml"
    users.write_text(users.read_text().replace("type: scram-sha-512", "type: scram", 1))
    result = check(dev)
    assert result.returncode == 1
    assert "KafkaTopic transactions-raw: unknown field spec.partition_count" in result.stderr
    assert 'Deployment mlflow: strict decoding error: unknown field "spec.replica"' in result.stderr
    assert 'spec.authentication.type: Unsupported value: "scram"' in result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay: str) -> None:
    kinds = {d["kind"] for d in rendered(overlay)}
    assert {"Deployment", "StatefulSet", "NetworkPolicy", "Secret", "ConfigMap"} <= kinds
    elsewhere = [
        d for d in rendered(overlay) if d["kind"] != "Namespace" and d["metadata"]["namespace"] != "fraudstream"
    ]
    assert not elsewhere, "one namespace: the Secrets' references and the NetworkPolicies assume it"


def hardening_gaps(workload: dict[str, Any]) -> list[str]:
    spec = pod(workload)
    gaps = []
    if spec["securityContext"].get("runAsNonRoot") is not True:
        gaps.append("runAsNonRoot")
    if spec["securityContext"].get("seccompProfile", {}).get("type") != "RuntimeDefault":
        gaps.append("seccompProfile")
    if spec.get("automountServiceAccountToken") is not False:
        gaps.append("automountServiceAccountToken")
    for container in spec["containers"]:
        context = container.get("securityContext", {})
        if context.get("readOnlyRootFilesystem") is not True:
            gaps.append(f"{container['name']}: readOnlyRootFilesystem")
        if context.get("allowPrivilegeEscalation") is not False:
            gaps.append(f"{container['name']}: allowPrivilegeEscalation")
        if context.get("capabilities", {}).get("drop") != ["ALL"]:
            gaps.append(f"{container['name']}: capabilities")
        for bound in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(container.get("resources", {}).get(bound, {})):
                gaps.append(f"{container['name']}: {bound}")
    return gaps


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_hardened_and_bounded(overlay: str) -> None:
    gaps = {w["metadata"]["name"]: hardening_gaps(w) for w in workloads(overlay)}
    assert len(gaps) >= 7
    assert not {name: g for name, g in gaps.items() if g}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_probe_liveness_and_readiness_separately(overlay: str) -> None:
    long_running = [w for w in workloads(overlay) if w["kind"] != "Job"]
    for workload in long_running:
        name = workload["metadata"]["name"]
        for container in pod(workload)["containers"]:
            assert {"livenessProbe", "readinessProbe"} <= set(container), name
            if name in SERVICES:
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        if workload["kind"] == "Deployment":
            budgets = of_kind(overlay, "PodDisruptionBudget")
            assert any(p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == name for p in budgets), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_is_denied_unless_named(overlay: str) -> None:
    policies = of_kind(overlay, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and "ingress" not in p["spec"]
        and "egress" not in p["spec"]
    ]
    assert deny, "no default-deny NetworkPolicy"
    for policy in policies:
        # Strimzi's pods call each other and the Kubernetes API: the one policy left open.
        if policy["spec"]["podSelector"] == {"matchLabels": {"strimzi.io/cluster": "kafka"}}:
            continue
        name = policy["metadata"]["name"]
        assert all(rule.get("from") for rule in policy["spec"].get("ingress", [])), name
        assert all(rule.get("to") for rule in policy["spec"].get("egress", [])), name


def kafka_users() -> dict[str, dict[str, Any]]:
    return {u["metadata"]["name"]: u for u in of_kind("dev", "KafkaUser")}


def written_topics(user: dict[str, Any]) -> set[str]:
    return {
        acl["resource"]["name"]
        for acl in user["spec"]["authorization"]["acls"]
        if acl["resource"]["type"] == "topic" and {"Write", "All"} & set(acl["operations"])
    }


@pytest.mark.parametrize("writer", list(Writer))
def test_each_kafka_user_writes_only_the_topics_it_owns(writer: Writer) -> None:
    user = kafka_users()[f"fraudstream-{writer.value}"]
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    owned = {spec.topic.value for spec in TOPIC_SPECS if writer in spec.writers}
    assert owned
    assert written_topics(user) == owned
    literal = all(
        acl["resource"]["patternType"] == "literal"
        for acl in user["spec"]["authorization"]["acls"]
        if acl["resource"]["type"] == "topic" and "Write" in acl["operations"]
    )
    assert literal


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_connects_as_its_own_kafka_user(overlay: str) -> None:
    [config] = [
        c["data"] for c in of_kind(overlay, "ConfigMap") if c["metadata"]["name"].startswith("fraudstream-config")
    ]
    assert config["FRAUDSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    users = {}
    for workload in workloads(overlay):
        for container in pod(workload)["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            if "FRAUDSTREAM_KAFKA_SASL_USERNAME" in env:
                username = env["FRAUDSTREAM_KAFKA_SASL_USERNAME"]["value"]
                secret = env["FRAUDSTREAM_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"]
                users[workload["metadata"]["name"]] = (username, secret)
    assert {users[s][0] for s in SERVICES} == {f"fraudstream-{s}" for s in SERVICES}
    if overlay == "production":
        generated = {s["metadata"]["name"] for s in of_kind(overlay, "Secret")}
        assert {secret for _, secret in users.values()} <= generated
    else:
        assert {username for username, _ in users.values()} <= set(kafka_users())
        assert all(username == secret for username, secret in users.values())


def test_strimzi_topics_are_the_topics_table() -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in of_kind("dev", "KafkaTopic")}
    assert {name: spec["partitions"] for name, spec in topics.items()} == topic_partitions()
    for spec in TOPIC_SPECS:
        assert spec.config.items() <= {k: str(v) for k, v in topics[spec.topic.value]["config"].items()}.items()
    assert "fraudstream-topics" not in {j["metadata"]["name"] for j in of_kind("dev", "Job")}


def test_gpu_overlay_puts_inference_on_a_gpu_or_stops_it() -> None:
    inference = pod(named("gpu", "Deployment", "inference"))
    [container] = inference["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "FRAUDSTREAM_DEVICE", "value": "cuda"} in container["env"]
    assert any(t["key"] == "nvidia.com/gpu" for t in inference["tolerations"])
    assert inference["runtimeClassName"] == "nvidia"
    assert container["image"].startswith("fraudstream-inference-gpu")


def test_production_is_scraped_and_alerted_on_by_the_prometheus_operator() -> None:
    [rule] = of_kind("production", "PrometheusRule")
    alerts = yaml.safe_load((K8S.parent / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    [monitor] = of_kind("production", "ServiceMonitor")
    scraped = [
        s
        for s in of_kind("production", "Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert {s["metadata"]["name"] for s in scraped} == set(SERVICES)
    assert all(any(p["name"] == "http" for p in s["spec"]["ports"]) for s in scraped)


def test_production_images_name_their_registry() -> None:
    images = {c["image"] for w in workloads("production") for c in pod(w)["containers"]}
    assert images
    assert all(image.split("/", 1)[0].count(".") >= 1 for image in images), images


def environment_names() -> set[str]:
    names: set[str] = set()
    for document in itertools.chain.from_iterable(rendered(o) for o in OVERLAYS):
        if document["kind"] in ("ConfigMap", "Secret"):
            names |= set(document.get("data", {}))
        if document["kind"] in WORKLOADS:
            for container in pod(document)["containers"]:
                names |= {e["name"] for e in container.get("env", [])}
    for service in compose.services().values():
        names |= set(service.get("environment", {}))
    return {n for n in names if n.startswith("FRAUDSTREAM_")}


def test_deployments_set_only_settings_that_exist() -> None:
    unknown = environment_names() - KNOWN_SETTINGS
    assert not unknown, f"not a setting of any service: {sorted(unknown)}"


def test_compose_ports_match_the_settings() -> None:
    ingest = compose.services()["ingest"]
    port = ingest["environment"]["FRAUDSTREAM_HTTP_PORT"]
    assert {"target": int(port), "published": port}.items() <= ingest["ports"][0].items()
    assert IngestSettings().http_port == int(port)


def redis_option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_redis_drops_only_what_expires_and_fills_before_its_limit() -> None:
    """Every Redis the project starts is bounded and, full, drops the caches (keys with an
    expiry) rather than refusing writes, which would stop ingest; its maxmemory leaves a quarter
    of the container's limit for the fork of a rewrite."""
    mebibyte = 1024 * 1024  # Redis reads "mb" as 1024 * 1024 bytes
    compose_redis = compose.services()["redis"]
    [container] = pod(named("dev", "StatefulSet", "redis"))["containers"]
    local = RedisServer(PlatformSettings()).options()
    for command, limit in (
        (compose_redis["command"], int(compose_redis["deploy"]["resources"]["limits"]["memory"])),
        (container["args"], int(container["resources"]["limits"]["memory"].removesuffix("Gi")) * 1024 * mebibyte),
        (local, None),
    ):
        assert redis_option(command, "--maxmemory-policy") == EVICTION_POLICY
        maxmemory = int(redis_option(command, "--maxmemory").removesuffix("mb")) * mebibyte
        if limit is not None:
            assert maxmemory <= 0.75 * limit


def test_ingest_replicas_never_exceed_raw_partitions() -> None:
    [hpa] = [h for h in of_kind("dev", "HorizontalPodAutoscaler") if h["metadata"]["name"] == "ingest"]
    raw = next(s for s in TOPIC_SPECS if s.topic is Topic.TRANSACTIONS_RAW)
    assert hpa["spec"]["maxReplicas"] <= raw.partitions


def test_features_runs_replicas_with_stable_transactional_ids() -> None:
    features = named("dev", "StatefulSet", "features")
    assert features["spec"]["replicas"] >= 1
    [container] = pod(features)["containers"]
    instance = {e["name"]: e for e in container["env"]}["FRAUDSTREAM_INSTANCE_ID"]
    # The pod's stable name: a restarted replica fences its predecessor's transactions.
    assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    features_env = compose.services()["features"]["environment"]
    assert FeaturesSettings().http_port == int(features_env["FRAUDSTREAM_HTTP_PORT"])
