"""The Quix Streams side of `benchmarks/stream_runtimes.py`: a count per key in RocksDB state
with its changelog, one output per event, exactly-once. Runs in its own environment (Quix
Streams pins confluent-kafka below the project's):

    uv run --isolated --no-project --with quixstreams==3.28.1 python benchmarks/quix_app/counter.py ...

Prints one JSON line: the seconds from the first counted event to the last commit.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from quixstreams import Application


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--commit-interval", type=float, default=1.0)
    args = parser.parse_args()
    first: list[float] = []

    def count(_value: bytes, state) -> str:  # type: ignore[no-untyped-def]
        if not first:
            first.append(time.perf_counter())
        n = int(state.get("n", 0)) + 1
        state.set("n", n)
        return str(n)

    with tempfile.TemporaryDirectory() as state_dir:
        app = Application(
            broker_address=args.broker,
            consumer_group=f"{args.source}-quix",
            auto_offset_reset="earliest",
            processing_guarantee="exactly-once",
            commit_interval=args.commit_interval,
            state_dir=state_dir,
            loglevel="WARNING",
        )
        source = app.topic(args.source, key_deserializer="str", value_deserializer="bytes")
        sink = app.topic(args.sink, key_serializer="str", value_serializer="str")
        app.dataframe(source).apply(count, stateful=True).to_topic(sink)
        app.run(count=args.events, collect=False)
        print(json.dumps({"seconds": time.perf_counter() - first[0]}))


if __name__ == "__main__":
    main()
