"""Every line a service writes through logging is one JSON object, whatever library wrote it."""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from fraudstream_common.kafka import producer_config
from fraudstream_common.logging import configure_logging, printed_as_logs
from fraudstream_common.settings import ServiceSettings


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_a_library_warning_is_a_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("fetch_arrow_table() is deprecated", DeprecationWarning, stacklevel=1)
    [entry] = lines(capsys)
    assert entry["logger"] == "py.warnings"
    assert entry["level"] == "warning"
    assert "fetch_arrow_table() is deprecated" in str(entry["message"])


def test_a_library_logger_with_its_own_handler_goes_through_the_root(capsys: pytest.CaptureFixture[str]) -> None:
    library = logging.getLogger("some_library_with_its_own_handler")
    library.addHandler(logging.StreamHandler(sys.stderr))  # as MLflow does for its loggers
    library.propagate = False
    library.setLevel(logging.INFO)
    configure_logging("test")
    library.info("Detected uv project")
    [entry] = lines(capsys)
    assert entry == {**entry, "logger": "some_library_with_its_own_handler", "message": "Detected uv project"}
    assert library.propagate


def test_librdkafka_logs_are_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    settings = ServiceSettings(kafka_bootstrap_servers="127.0.0.1:1")  # nothing listens
    producer = Producer(producer_config(settings, client_id="unreachable"))
    deadline = time.monotonic() + 10
    entries: list[dict[str, object]] = []
    while not entries and time.monotonic() < deadline:
        producer.poll(0.2)
        entries = lines(capsys)
    assert entries, "librdkafka logged nothing about a broker that does not listen"
    assert {entry["logger"] for entry in entries} == {"librdkafka"}


def test_what_a_library_prints_becomes_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    with printed_as_logs(logging.getLogger("mlflow.printed")):
        print("🏃 View run at: http://127.0.0.1:5000/#/experiments/1/runs/abc")  # as MLflow's end_run
        sys.stderr.write("Registered model 'fraud-detector' already exists. ")
        sys.stderr.write("Creating a new version of this model...\n")
        sys.stdout.write("no newline at the end")
    print("after: not redirected")
    captured = capsys.readouterr()
    entries = [json.loads(line) for line in captured.err.splitlines()]
    assert [entry["message"] for entry in entries] == [
        "🏃 View run at: http://127.0.0.1:5000/#/experiments/1/runs/abc",
        "Registered model 'fraud-detector' already exists. Creating a new version of this model...",
        "no newline at the end",
    ]
    assert {entry["logger"] for entry in entries} == {"mlflow.printed"}
    assert captured.out == "after: not redirected\n"
