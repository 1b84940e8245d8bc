"""`python -m fraudstream_ingest` (or `fraudstream-ingest`): the service (fraudstream_ingest.service)."""

from __future__ import annotations

from fraudstream_ingest.service import main

if __name__ == "__main__":
    main()
