"""Stand-in models for the unit tests: a version and thresholds (review at 0.5, decline at 0.9),
with whatever session the test gives (none when it never scores)."""

from __future__ import annotations

from typing import Any

from fraudstream_inference.model import ScoringModel


def stand_in_model(version: str, alias: str, session: Any = None) -> ScoringModel:
    return ScoringModel(
        name="m",
        version=version,
        alias=alias,
        sha256="",
        threshold=0.5,
        decline_threshold=0.9,
        session=session,
        provider="CPUExecutionProvider",
        onnx_model=b"",
    )
