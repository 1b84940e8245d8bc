"""Signed retrain requests: who may ask for a model is whoever holds the request secret (the
monitor), not whoever can write to `retrain.requests`.

The signature is an HMAC-SHA256 of the request serialized deterministically with its
signature field empty; fields a writer added that the reader does not know change the
serialization, so they fail the check too.
"""

from __future__ import annotations

import hashlib
import hmac

from fraudstream_common.schemas.v1.monitoring_pb2 import RetrainRequest


def _digest(request: RetrainRequest, secret: str) -> str:
    unsigned = RetrainRequest()
    unsigned.CopyFrom(request)
    unsigned.signature = ""
    return hmac.new(secret.encode(), unsigned.SerializeToString(deterministic=True), hashlib.sha256).hexdigest()


def sign_request(request: RetrainRequest, secret: str) -> RetrainRequest:
    """The request, signed (in place)."""
    request.signature = _digest(request, secret)
    return request


def verify_request(request: RetrainRequest, secret: str) -> bool:
    """Whether the request carries the secret's signature; False for any other (compared as
    bytes: a signature with non-ASCII characters is refused, not an error)."""
    return bool(request.signature) and hmac.compare_digest(
        request.signature.encode(), _digest(request, secret).encode()
    )
