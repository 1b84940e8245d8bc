"""The Grafana dashboards and the Prometheus alerting rules name only metrics that a service
exports (a renamed metric would leave a panel empty and an alert silent, with no error)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from . import compose_model as compose

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
SERVICES = ("ingest", "features", "trainer", "inference", "monitor")
METRIC = re.compile(r"\bfraudstream_[a-z_]+\b")


def exported() -> set[str]:
    importlib.import_module("fraudstream_common.garbage")  # every service's collector pauses
    importlib.import_module("fraudstream_common.stream")  # the stream runtime's, by stage
    for service in SERVICES:
        importlib.import_module(f"fraudstream_{service}.metrics")
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def test_there_are_dashboards_for_serving_and_model_health() -> None:
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS]
    assert sorted(uids) == ["fraudstream-model", "fraudstream-serving"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_panels_query_exported_metrics(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    known = exported()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            named = set(METRIC.findall(target["expr"]))
            assert named, target["expr"]
            assert named <= known, f"{panel['title']}: {named - known}"


def test_alerting_rules_use_exported_metrics_and_say_how_bad() -> None:
    known = exported()
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert len(rules) >= 10
    for rule in rules:
        named = set(METRIC.findall(rule["expr"]))
        assert named <= known, f"{rule['alert']}: {named - known}"
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]


def test_compose_provisions_the_dashboards_and_the_rules() -> None:
    services = compose.services()
    mounts = {
        name: {
            (Path(v["source"]).relative_to(ROOT).as_posix(), v["target"], v.get("read_only", False))
            for v in s["volumes"]
        }
        for name, s in services.items()
        if name in ("grafana", "prometheus")
    }
    assert mounts["grafana"] == {
        ("deploy/grafana/provisioning", "/etc/grafana/provisioning", True),
        ("deploy/grafana/dashboards", "/var/lib/grafana/dashboards", True),
    }
    assert mounts["prometheus"] == {("deploy/prometheus", "/etc/prometheus", True)}
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {f"fraudstream-{service}" for service in SERVICES}
