"""Which of gRPC core's I/O engines a serving process runs on, chosen before grpc is imported.

grpcio 1.85 serves connections on EventEngine by default: its own threads read and write the
sockets and hand each event on to the completion queue that grpc.aio's poller thread waits on,
which wakes the event loop. With EventEngine off for the listener and the endpoints, gRPC's
older poll engine (iomgr) does the reads and writes on the thread that polls the completion
queue: one hand-off between threads fewer an event. Measured on 2 cores (README, "gRPC"):
futex calls in the server 1.9 a call with EventEngine against 0.34 without (strace -c);
benchmarks/transport_floor.py's gRPC server 0.093 against 0.074 ms of CPU a call. In a scored
Predict the gain is smaller than the spread between benchmark runs.

gRPC reads GRPC_EXPERIMENTS once, when grpc is imported: a service's entry point calls
`prefer_poll_engine` before it imports anything that imports grpc. An operator's own
GRPC_EXPERIMENTS wins (empty: gRPC's defaults, EventEngine included).
"""

from __future__ import annotations

import os
import sys

SERVING_EXPERIMENTS = "-event_engine_listener,-event_engine_for_all_other_endpoints"


def prefer_poll_engine() -> None:
    """Serve on the poll engine unless GRPC_EXPERIMENTS says otherwise; an error once grpc is
    imported, since the setting would then be ignored without a word."""
    if "grpc" in sys.modules:
        raise RuntimeError("grpc is already imported, and reads GRPC_EXPERIMENTS at import: choose its engine first")
    os.environ.setdefault("GRPC_EXPERIMENTS", SERVING_EXPERIMENTS)
