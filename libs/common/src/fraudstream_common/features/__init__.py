"""fraudstream's features, defined once (definitions.py) and computed from rollable state
(state.py) by every path: the stream, the backfill, and a request at scoring time."""
