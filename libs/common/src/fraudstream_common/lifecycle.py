"""One owner of shutdown signals per process, and a fixed stop order.

A service is a list of components (HTTP server, gRPC server, stream loop, ...). The runner
starts them all, waits for SIGTERM/SIGINT or for any component to end on its own (a crash),
then stops them one by one in the order given: transports first so no new work arrives,
then the stream loop so it finishes its batch and commits, then the shared clients.

Before it starts them, the runner takes the heap the service built out of the garbage
collector's reach (fraudstream_common.garbage) and counts the collector's pauses.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from typing import Protocol

from fraudstream_common import garbage

logger = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    async def run(self) -> None:
        """Serve until `stop` is called; returning or raising early means the component failed."""

    async def stop(self) -> None:
        """Finish in-flight work and release resources; called once, in the runner's stop order."""


class ServiceRunner:
    def __init__(self, components: list[Component], stop_timeout: float = 30.0) -> None:
        self._components = components
        self._stop_timeout = stop_timeout
        self._stopping = asyncio.Event()

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> int:
        """Returns the process exit code: 0 after a requested stop, 1 when a component failed."""
        garbage.watch_pauses()
        logger.info("start-up heap frozen", extra={"objects": garbage.freeze_startup_heap()})
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        tasks: dict[asyncio.Task[None], Component] = {
            asyncio.create_task(c.run(), name=c.name): c for c in self._components
        }
        stop_waiter = asyncio.create_task(self._stopping.wait(), name="stop-signal")
        await asyncio.wait([stop_waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        failed = [component for task, component in tasks.items() if task.done()]
        exit_code = 0
        for task, component in tasks.items():
            if task.done():
                error = None if task.cancelled() else task.exception()
                logger.error("component %s ended on its own", component.name, exc_info=error)
                exit_code = 1
        logger.info("stopping", extra={"order": [c.name for c in self._components]})
        for component in self._components:
            try:
                await asyncio.wait_for(component.stop(), self._stop_timeout)
            except Exception:
                logger.exception("component %s did not stop cleanly", component.name)
                exit_code = 1
        stop_waiter.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for component, result in zip(tasks.values(), results, strict=True):
            failed_while_stopping = isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError)
            if failed_while_stopping and component not in failed:
                logger.error("component %s failed while stopping", component.name, exc_info=result)
                exit_code = 1
        return exit_code


class BlockingLoop:
    """A component whose work is a blocking loop (Kafka clients block) run in a worker thread.
    Subclasses implement `_loop`, checking `_stopping` between batches, and set `_ready`."""

    name = "loop"

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._ready = threading.Event()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def stop_requested(self) -> bool:
        return self._stopping.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Blocks until ready (True) or until `timeout` seconds passed (False)."""
        return self._ready.wait(timeout)

    async def run(self) -> None:
        await asyncio.to_thread(self._loop)

    async def stop(self) -> None:
        self._stopping.set()

    def _loop(self) -> None:
        raise NotImplementedError
