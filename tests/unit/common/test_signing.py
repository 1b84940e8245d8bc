"""Signed retrain requests: only the secret's holder makes one that verifies, and any change
to a signed request (a field, its evidence, a field the reader does not know) breaks it."""

from __future__ import annotations

from fraudstream_common.schemas.v1.monitoring_pb2 import DriftAlert, RetrainRequest
from fraudstream_common.signing import sign_request, verify_request

SECRET = "the-monitors-secret"


def request() -> RetrainRequest:
    return RetrainRequest(
        request_id="drift-1",
        model_name="fraud-detector",
        reason="drift",
        requested_by="monitor",
        evidence=[DriftAlert(alert_id="a1", subject="tx_amount")],
    )


def test_a_signed_request_verifies_only_under_its_secret() -> None:
    signed = sign_request(request(), SECRET)
    assert verify_request(RetrainRequest.FromString(signed.SerializeToString()), SECRET)
    assert not verify_request(signed, "another-secret")
    assert not verify_request(request(), SECRET)  # unsigned


def test_any_change_to_a_signed_request_breaks_it() -> None:
    def forced(r: RetrainRequest) -> None:
        r.force = True

    def renamed(r: RetrainRequest) -> None:
        r.model_name = "another-model"

    def renumbered(r: RetrainRequest) -> None:
        r.request_id = "drift-2"

    def more_evidence(r: RetrainRequest) -> None:
        r.evidence.add(alert_id="a2")

    for change in (forced, renamed, renumbered, more_evidence):
        tampered = sign_request(request(), SECRET)
        change(tampered)
        assert not verify_request(tampered, SECRET), change.__name__
    # A field this reader does not know, appended to the signed bytes (field 99, varint 1).
    extended = RetrainRequest.FromString(sign_request(request(), SECRET).SerializeToString() + b"\x98\x06\x01")
    assert not verify_request(extended, SECRET)


def test_a_signature_with_non_ascii_characters_is_refused_not_an_error() -> None:
    # Found by the atheris target tests/fuzz/targets.py::retrain_request.
    forged = request()
    forged.signature = "é" * 64
    assert not verify_request(forged, SECRET)
