"""`python -m fraudstream_inference` (or `fraudstream-inference`): the service (fraudstream_inference.service)."""

from __future__ import annotations

from fraudstream_inference.service import main

if __name__ == "__main__":
    main()
