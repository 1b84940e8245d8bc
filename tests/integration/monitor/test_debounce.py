"""A monitor killed while its alerts wait for the retrain debounce still asks for the retrain
once it is back: the alerts are raised again live, not only replayed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fraudstream_common.schemas.v1.monitoring_pb2 import DriftAlert, RetrainRequest
from fraudstream_common.topics import Topic
from tests.integration.monitor.conftest import Watched, drifting_traffic, published_versions
from tests.integration.monitor.service import monitor_service
from tests.platform import Topics, drain

pytestmark = pytest.mark.integration


def test_a_monitor_killed_in_the_debounce_asks_for_the_retrain_when_back(topics: Topics, tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    experiment, model, registry = published_versions(topics, rng)
    monitor = monitor_service(
        topics.prefix,
        tmp_path,
        experiment,
        model,
        auth_enabled="false",
        window_hours="2",
        min_window_predictions="500",
        quiet_hours="1000",
        # Longer than the event time the drifting traffic covers after its first alert: the
        # alert waits until the traffic sent after the restart moves event time on.
        debounce_seconds=str(4 * 3600),
        request_cooldown_seconds="3600",
        batch_size="500",
    )
    monitor.start()
    watched = Watched(monitor, topics, model, experiment, "", "", registry)
    try:
        watched.send(Topic.PREDICTIONS, [p.SerializeToString() for p in drifting_traffic(watched, rng)])
        alerts = [DriftAlert.FromString(r.value) for r in drain(topics(Topic.MONITOR_ALERTS), expected=1, timeout=90)]
        amount = [a.alert_id for a in alerts if (a.subject, a.detector) == ("tx_amount", "PSI")]
        assert amount, [f"{a.subject}/{a.detector}" for a in alerts]
        assert drain(topics(Topic.RETRAIN_REQUESTS), quiet=3) == []  # still in the debounce

        monitor.kill()
        monitor.start()
        # Later hours move event time past the debounce.
        later = watched.predictions(rng, range(8, 14), 100) + watched.predictions(rng, range(14, 15), 5)
        watched.send(Topic.PREDICTIONS, [p.SerializeToString() for p in later])
        [request] = [RetrainRequest.FromString(r.value) for r in drain(topics(Topic.RETRAIN_REQUESTS), expected=1)]
        assert set(amount) <= {a.alert_id for a in request.evidence}
    finally:
        if monitor.process is not None and monitor.process.poll() is None:
            monitor.terminate()
