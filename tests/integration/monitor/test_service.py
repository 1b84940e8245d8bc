"""The monitor service end to end on the real platform: predictions and labels in through
Kafka; drift and quality alerts with their evidence on `monitor.alerts`; one retrain request
(debounced, then the cooldown) on `retrain.requests`; a dead letter for garbage; the admin
actions behind the admin key (pause, force, roll back through the real registry); and a
restart that rebuilds the windows by replay without sending any alert twice, and knows the
requests it sent before."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest
import redis

from fraudstream_common.schemas.v1.audit_pb2 import AdminAction
from fraudstream_common.schemas.v1.deadletter_pb2 import DeadLetter
from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.schemas.v1.monitoring_pb2 import AlertKind, DriftAlert, RetrainRequest
from fraudstream_common.topics import Topic
from fraudstream_registry.registry import CHAMPION
from tests.integration.monitor.conftest import (
    Watched,
    drifting_traffic,
    overview,
    unranked_frauds_in_hour_0,
)
from tests.platform import PLATFORM, drain, eventually
from tests.unit.monitor.fixtures import HOUR, START

pytestmark = pytest.mark.integration


def post(url: str, body: dict[str, Any], key: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return int(refused.code), json.loads(refused.read())


def test_drift_and_quality_alerts_one_request_admin_actions_and_a_replayed_restart(watched: Watched) -> None:
    rng = np.random.default_rng(11)
    monitor, topics = watched.monitor, watched.topics
    watched.send(Topic.PREDICTIONS, [b"\x08\xff\xff not a prediction"])

    sent = drifting_traffic(watched, rng)
    watched.send(Topic.PREDICTIONS, [p.SerializeToString() for p in sent])

    letters = [DeadLetter.FromString(r.value) for r in drain(topics(Topic.DEADLETTER), expected=1, timeout=60)]
    assert [(d.service, d.error_code) for d in letters] == [("monitor", "invalid_predictions")]

    alerts = [DriftAlert.FromString(r.value) for r in drain(topics(Topic.MONITOR_ALERTS), expected=1, timeout=90)]
    amount = [a for a in alerts if a.subject == "tx_amount" and a.detector == "PSI"]
    assert amount, [f"{a.subject}/{a.detector}" for a in alerts]
    alert = amount[0]
    assert alert.kind == AlertKind.ALERT_KIND_INPUT_DRIFT
    assert (alert.model_name, alert.model_version) == (watched.model, "2")
    assert alert.statistic > alert.threshold == pytest.approx(0.2)
    assert alert.window_end.seconds > START + 4 * HOUR  # raised by a window that holds shifted hours
    assert alert.window_size >= 500
    # Stationary hours raised nothing: every alert's window ends after the shift began.
    assert all(a.window_end.seconds > START + 4 * HOUR for a in alerts)

    requests = [RetrainRequest.FromString(r.value) for r in drain(topics(Topic.RETRAIN_REQUESTS), expected=1)]
    assert len(requests) == 1
    request = requests[0]
    assert request.reason == "drift"
    assert request.requested_by == "monitor"
    assert not request.force
    assert "tx_amount/PSI" in {f"{a.subject}/{a.detector}" for a in request.evidence}

    labels = unranked_frauds_in_hour_0(rng)
    watched.send(Topic.LABELS, labels)
    alerts = [DriftAlert.FromString(r.value) for r in drain(topics(Topic.MONITOR_ALERTS), expected=len(alerts) + 1)]
    quality = [a for a in alerts if a.kind == AlertKind.ALERT_KIND_QUALITY]
    assert len(quality) == 1, quality
    assert quality[0].subject == "average_precision"
    assert quality[0].model_version == "2"
    assert quality[0].statistic < quality[0].threshold == pytest.approx(0.8 * 0.7)
    assert quality[0].details["frauds"] == "20"
    # Within the cooldown: still one request.
    time.sleep(4)
    assert len(drain(topics(Topic.RETRAIN_REQUESTS), quiet=2)) == 1
    document = overview(monitor)
    [version] = [v for v in document["versions"] if v["version"] == "2"]
    assert version["predictions"] == len(sent)
    assert version["drift"]["tx_amount"]["psi"] > 0.2
    assert version["quality"][0]["frauds"] == 20
    assert document["aliases"] == {"champion": "2"}

    # Admin actions: refused without a key and with a key that lacks the admin scope.
    assert post(f"{monitor.url}/api/admin/pause", {"paused": True})[0] == 401
    assert post(f"{monitor.url}/api/admin/pause", {"paused": True}, watched.predict_key)[0] == 403
    assert post(f"{monitor.url}/api/admin/pause", {"paused": True}, watched.admin_key) == (200, {"paused": True})
    flag = redis.Redis.from_url(PLATFORM.redis_url).get(f"{topics.prefix}fraudstream:monitor:{watched.model}:paused")
    assert flag == b"1"
    status, forced = post(f"{monitor.url}/api/admin/retrain", {}, watched.admin_key)
    assert status == 200
    requests = [RetrainRequest.FromString(r.value) for r in drain(topics(Topic.RETRAIN_REQUESTS), expected=2)]
    assert requests[-1].request_id == forced["request_id"]
    assert requests[-1].force
    assert requests[-1].reason == "operator"
    assert requests[-1].requested_by.startswith("it-admin (key:")

    status, moved = post(f"{monitor.url}/api/admin/rollback", {}, watched.admin_key)
    assert (status, moved) == (200, {"alias": "champion", "version": "1", "previous": "2"})
    assert watched.registry.client.get_registered_model(watched.model).aliases == {CHAMPION: "1"}
    published = [ModelPublished.FromString(r.value) for r in drain(topics(Topic.MODELS_PUBLISHED), expected=3)]
    assert (published[-1].version, published[-1].alias) == ("1", CHAMPION)
    assert post(f"{monitor.url}/api/admin/promote", {"version": "99"}, watched.admin_key)[0] == 409

    # Every act that took effect is on the audit topic, by the key's name (never the key), and
    # in the console.
    acts = [AdminAction.FromString(r.value) for r in drain(topics(Topic.AUDIT), expected=3)]
    assert [a.action for a in acts] == ["loop_paused", "retrain_forced", "version_rolled_back"]
    assert all(a.actor.startswith("it-admin (key:") for a in acts)
    assert dict(acts[1].details) == {"request_id": forced["request_id"]}
    assert dict(acts[2].details) == {"alias": "champion", "version": "1", "previous": "2"}
    assert not any(watched.admin_key in a.SerializeToString().decode(errors="replace") for a in acts)
    eventually(
        lambda: (
            [a["action"] for a in overview(monitor)["audit"]]
            == ["version_rolled_back", "retrain_forced", "loop_paused"]
        ),
        "the console lists the acts, newest first",
        timeout=30,
    )

    # Restart: the windows come back by replay, nothing is sent again, the pause holds.
    alerts_before = len(drain(topics(Topic.MONITOR_ALERTS), quiet=2))
    assert monitor.terminate() == 0
    monitor.start()

    def rebuilt() -> bool:
        versions = {v["version"]: v for v in overview(monitor)["versions"]}
        return "2" in versions and versions["2"]["predictions"] == len(sent)

    eventually(rebuilt, "the windows rebuilt from the topics")
    document = overview(monitor)
    assert document["paused"] is True
    [version] = [v for v in document["versions"] if v["version"] == "2"]
    assert version["drift"]["tx_amount"]["psi"] > 0.2
    assert version["quality"][0]["frauds"] == 20
    # What it asked before the restart is known again: listed, newest first, and cooling down.
    assert [r["request_id"] for r in document["requests"]] == [r.request_id for r in reversed(requests)]
    assert document["cooling"] is True
    time.sleep(3)
    assert len(drain(topics(Topic.MONITOR_ALERTS), quiet=2)) == alerts_before
    assert len(drain(topics(Topic.RETRAIN_REQUESTS), quiet=2)) == 2
