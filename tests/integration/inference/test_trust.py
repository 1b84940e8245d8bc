"""A record on `models.published` is only a notice: inference installs a version only when the
registry bears the record out. Records anyone could write to the topic (a version the registry
does not have, a real version under an alias the registry does not give it, a checksum that is
not the registry's) are refused and counted, and the champion keeps answering."""

from __future__ import annotations

import time

import httpx
import pytest

from fraudstream_common.schemas.v1.model_pb2 import ModelPublished
from fraudstream_common.topics import Topic
from fraudstream_registry.publisher import EventPublisher
from tests.integration.inference.serving import Served, requests_after_history, settings_for
from tests.platform import Topics

pytestmark = pytest.mark.integration


def forged(champion: ModelPublished, **changes: str) -> ModelPublished:
    record = ModelPublished()
    record.CopyFrom(champion)
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def refused(served: Served) -> float:
    samples = served.service.metric_samples("fraudstream_inference_model_swaps_total")
    return sum(value for labels, value in samples.items() if 'outcome="refused"' in labels)


def test_records_the_registry_does_not_confirm_are_refused(served: Served, topics: Topics) -> None:
    champion = served.published
    request = requests_after_history(served, 1)[0]
    bearer = {"Authorization": f"Bearer {served.predict_key}"}
    with httpx.Client(base_url=served.service.url, timeout=10, headers=bearer) as http:
        deadline = time.monotonic() + 120
        while http.post("/v1/predict", json=request).status_code != 200:
            assert time.monotonic() < deadline, "the champion never served"
            time.sleep(0.5)
        before = refused(served)

        publisher = EventPublisher(settings_for(topics), topics(Topic.MODELS_PUBLISHED), client_id="forger")
        records = [
            forged(champion, version="9199"),  # a version the registry does not have, same file and checksum
            forged(champion, alias="challenger"),  # the champion's version under an alias it does not hold
            forged(champion, sha256="0" * 64),  # the champion, with another file's checksum
        ]
        for record in records:
            publisher(record)
        while refused(served) < before + len(records):
            assert time.monotonic() < deadline + 60, f"refused {refused(served) - before} of {len(records)}"
            time.sleep(0.2)

        for n in range(20):
            answer = http.post("/v1/predict", json={**request, "transaction_id": f"after-forgery-{n}"})
            assert answer.status_code == 200
            assert answer.json()["model_version"] == champion.version
