"""`python -m fraudstream_inference` (or `fraudstream-inference`): gRPC's engine chosen, then the service
(fraudstream_inference.service), which imports grpc."""

from __future__ import annotations

from fraudstream_common.grpc_engine import prefer_poll_engine


def main() -> None:
    prefer_poll_engine()
    from fraudstream_inference.service import main as run_service  # imports grpc: after the choice

    run_service()


if __name__ == "__main__":
    main()
