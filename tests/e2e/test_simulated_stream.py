"""The simulator feeding the system: `fraudstream simulate` replays to Kafka, the real ingest
service validates it, and every simulated transaction reaches `transactions` exactly once,
with its labels on `labels` after it in event time."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fraudstream_common.schemas.v1.label_pb2 import Label
from fraudstream_common.schemas.v1.transaction_pb2 import Transaction
from fraudstream_common.topics import Topic
from fraudstream_simulator.config import SimulationConfig
from fraudstream_simulator.simulation import simulate
from tests.platform import ServiceProcess, Topics, drain

pytestmark = pytest.mark.integration

WORLD = ["--days", "20", "--customers", "400", "--terminals", "800"]


@pytest.mark.parametrize(("raw_format", "run_id"), [("json", ""), ("protobuf", "run7")])
def test_simulator_through_ingest(topics: Topics, ingest: ServiceProcess, raw_format: str, run_id: str) -> None:
    expected = simulate(SimulationConfig(n_customers=400, n_terminals=800, nb_days=20))
    limit = 5_000
    ingest.start()
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "fraudstream_cli.main",
            "simulate",
            *WORLD,
            "--limit",
            str(limit),
            "--format",
            raw_format,
            "--run-id",
            run_id,
        ],
        env={**os.environ, "FRAUDSTREAM_TOPIC_PREFIX": topics.prefix},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr
    sent = expected.transactions.iloc[:limit].copy()
    if run_id:
        sent["transaction_id"] = run_id + "-" + sent["transaction_id"]

    out = [Transaction.FromString(m.value) for m in drain(topics(Topic.TRANSACTIONS), expected=limit)]
    assert sorted(t.transaction_id for t in out) == sorted(sent["transaction_id"])
    by_id = {t.transaction_id: t for t in out}
    first = sent.iloc[0]
    assert by_id[first["transaction_id"]].amount == pytest.approx(first["amount"])
    assert (
        by_id[first["transaction_id"]].event_time.ToDatetime().isoformat()
        == first["event_time"].tz_convert(None).isoformat()
    )

    labels = [Label.FromString(m.value) for m in drain(topics(Topic.LABELS), expected=limit)]
    assert sorted(label.transaction_id for label in labels) == sorted(sent["transaction_id"])
    assert all(label.label_time.seconds > label.transaction_time.seconds for label in labels)
    frauds = {label.transaction_id for label in labels if label.is_fraud}
    assert frauds == set(sent.loc[sent["is_fraud"], "transaction_id"])
