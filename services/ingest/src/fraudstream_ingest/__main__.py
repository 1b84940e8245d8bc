"""`python -m fraudstream_ingest` (or `fraudstream-ingest`): gRPC's engine chosen, then the service
(fraudstream_ingest.service), which imports grpc."""

from __future__ import annotations

from fraudstream_common.grpc_engine import prefer_poll_engine


def main() -> None:
    prefer_poll_engine()
    from fraudstream_ingest.service import main as run_service  # imports grpc: after the choice

    run_service()


if __name__ == "__main__":
    main()
