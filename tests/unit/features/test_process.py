"""Which stages one features process runs (FRAUDSTREAM_STAGES)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fraudstream_features import __main__ as features_main
from fraudstream_features.settings import FeaturesSettings


@pytest.fixture
def no_kafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features_main, "partition_counts", lambda _settings, topics: dict.fromkeys(topics, 4))


@pytest.mark.usefixtures("no_kafka")
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (None, ["customers", "terminals"]),
        ('["customers"]', ["customers"]),
        ('["terminals"]', ["terminals"]),
    ],
)
def test_a_process_runs_the_stages_it_is_given(
    monkeypatch: pytest.MonkeyPatch, env: str | None, expected: list[str]
) -> None:
    if env is not None:
        monkeypatch.setenv("FRAUDSTREAM_STAGES", env)
    runtimes = features_main.streams(FeaturesSettings())
    assert [runtime.name for runtime in runtimes] == expected


@pytest.mark.parametrize("stages", [[], ["customers", "accounts"]])
def test_no_stage_or_an_unknown_one_is_refused(stages: list[str]) -> None:
    with pytest.raises(ValidationError):
        FeaturesSettings(stages=stages)  # type: ignore[arg-type]
