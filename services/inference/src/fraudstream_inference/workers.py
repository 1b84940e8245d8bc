"""Worker processes: with FRAUDSTREAM_WORKERS=N (N > 1) the service runs as N processes that
share the HTTP and gRPC ports (SO_REUSEPORT: the kernel spreads connections over them), each a
whole service (its own model follower, prediction log and, with stream scoring, a member of the
stream's consumer group), like N replicas of one host. One Python process scores on one core;
this is how a host with more cores is used without one pod per core.

This process supervises and serves nothing: it owns the shutdown signals and passes SIGTERM and
SIGINT on to every worker, then waits for them (each stops in its own fixed order). A worker
that ends on its own stops the others, and the exit code says so: the orchestrator restarts the
whole, as it would a single process.

Metrics: the workers write their values to files in a shared directory (prometheus_client's
multiprocess mode) and /metrics on any of them reports the sum of all (the latest value for
gauges of live workers). The per-key rate limit is divided among the workers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from prometheus_client import multiprocess

from fraudstream_inference.settings import InferenceSettings

logger = logging.getLogger(__name__)

WORKER_INDEX = "FRAUDSTREAM_WORKER_INDEX"
_PR_SET_PDEATHSIG = 1
MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


def is_worker() -> bool:
    return WORKER_INDEX in os.environ


def follow_the_supervisor() -> None:
    """In a worker: SIGTERM when the supervisor dies, however it dies (SIGKILL included), so
    that no worker is left holding the ports."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        logger.warning("could not ask to be stopped with the supervisor (errno %d)", ctypes.get_errno())
    if os.getppid() == 1:  # the supervisor died before the request took hold
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    def __init__(self, settings: InferenceSettings) -> None:
        self._settings = settings
        self._workers: list[subprocess.Popen[bytes]] = []
        self._stopping = False

    def run(self) -> int:
        """Returns the exit code: 0 when every worker stopped cleanly after a signal."""
        operator_directory = os.environ.get(MULTIPROCESS_DIRECTORY)
        directory = Path(operator_directory or tempfile.mkdtemp(prefix="fraudstream-inference-metrics-"))
        for stale in directory.glob("*.db"):  # left by an earlier run in the operator's directory
            stale.unlink()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._forward)
        try:
            for index in range(self._settings.workers):
                env = {
                    **os.environ,
                    WORKER_INDEX: str(index),
                    MULTIPROCESS_DIRECTORY: str(directory),
                    "FRAUDSTREAM_INSTANCE_ID": f"{self._settings.instance_id}-w{index}",
                }
                self._workers.append(subprocess.Popen([sys.executable, "-m", "fraudstream_inference"], env=env))
            logger.info("started %d workers", len(self._workers), extra={"pids": [w.pid for w in self._workers]})
            return self._wait(directory)
        finally:
            for worker in self._workers:
                if worker.poll() is None:
                    worker.kill()
            if operator_directory is None:
                shutil.rmtree(directory, ignore_errors=True)

    def _wait(self, metrics_directory: Path) -> int:
        exit_code = 0
        running = list(self._workers)
        while running:
            for worker in list(running):
                code = worker.poll()
                if code is None:
                    continue
                running.remove(worker)
                multiprocess.mark_process_dead(worker.pid, str(metrics_directory))  # type: ignore[no-untyped-call]
                if code != 0 or not self._stopping:
                    logger.error("worker %d ended with exit code %d; stopping the others", worker.pid, code)
                    exit_code = exit_code or code or 1
                    self._forward(signal.SIGTERM, None)
            time.sleep(0.2)
        return exit_code

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        for worker in self._workers:
            if worker.poll() is None:
                worker.send_signal(signum)
