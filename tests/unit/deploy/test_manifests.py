"""compose.yaml and k8s/ are not run here (no Docker engine, no cluster); these checks hold them
to what they promise: hardened pods, probes, deny-by-default networking, and only settings that
exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudstream_cli.platform.settings import PlatformSettings
from fraudstream_common.settings import ServiceSettings
from fraudstream_common.topics import TOPIC_SPECS, Topic
from fraudstream_feature_store.settings import FeatureStoreSettings
from fraudstream_features.settings import FeaturesSettings
from fraudstream_inference.settings import InferenceSettings
from fraudstream_ingest.settings import IngestSettings
from fraudstream_monitor.settings import MonitorSettings
from fraudstream_trainer.settings import TrainerSettings

from . import compose_model as compose

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "k8s"
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
} | {"FRAUDSTREAM_SERVICE"}


def k8s_documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    documents: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        documents.extend(d for d in yaml.safe_load_all((K8S / resource).read_text()) if d)
    return documents


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in k8s_documents() if d["kind"] == kind]


def test_every_manifest_file_is_in_the_kustomization() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("workload", of_kind("Deployment") + of_kind("Job"), ids=lambda d: d["metadata"]["name"])
def test_pods_are_hardened_and_bounded(workload: dict[str, Any]) -> None:
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound])


@pytest.mark.parametrize("deployment", of_kind("Deployment"), ids=lambda d: d["metadata"]["name"])
def test_deployments_probe_liveness_and_readiness_separately(deployment: dict[str, Any]) -> None:
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    name = deployment["metadata"]["name"]
    assert any(
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == name for p in of_kind("PodDisruptionBudget")
    )


def test_network_is_denied_by_default() -> None:
    deny = [
        p
        for p in of_kind("NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and "ingress" not in p["spec"]
    ]
    assert deny, "no default-deny NetworkPolicy"


def test_ingest_replicas_never_exceed_raw_partitions() -> None:
    [hpa] = [h for h in of_kind("HorizontalPodAutoscaler") if h["metadata"]["name"] == "ingest"]
    raw = next(s for s in TOPIC_SPECS if s.topic is Topic.TRANSACTIONS_RAW)
    assert hpa["spec"]["maxReplicas"] <= raw.partitions


def environment_names() -> set[str]:
    names: set[str] = set()
    for document in k8s_documents():
        if document["kind"] == "ConfigMap":
            names |= set(document["data"])
        if document["kind"] == "Secret":
            names |= set(document.get("stringData", {}))
        if document["kind"] in ("Deployment", "Job"):
            for container in document["spec"]["template"]["spec"]["containers"]:
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


def test_features_runs_replicas_with_stable_transactional_ids() -> None:
    [features] = [d for d in of_kind("StatefulSet") if d["metadata"]["name"] == "features"]
    assert features["spec"]["replicas"] >= 1
    [container] = features["spec"]["template"]["spec"]["containers"]
    instance = {e["name"]: e for e in container["env"]}["FRAUDSTREAM_INSTANCE_ID"]
    # The pod's stable name: a restarted replica fences its predecessor's transactions.
    assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    features_env = compose.services()["features"]["environment"]
    assert FeaturesSettings().http_port == int(features_env["FRAUDSTREAM_HTTP_PORT"])
