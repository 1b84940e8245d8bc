"""Structured logs: one JSON object a line, with the service name and any `extra` fields
(transaction_id, model_version, ...) a call passes."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _through_root_logger()


# MLflow, when imported, gives its loggers a handler of its own, and draws progress bars on
# stderr while it downloads a model: lines a log shipper cannot parse.
_LIBRARY_ENVIRONMENT = {"MLFLOW_CONFIGURE_LOGGING": "false", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


def _through_root_logger() -> None:
    """Libraries' warnings, and the records of loggers a library imported earlier gave a stream
    handler of their own, go through the root's handler; libraries imported later are asked
    not to install their own."""
    logging.captureWarnings(True)
    for name, value in _LIBRARY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    for logger in list(logging.root.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger):
            continue
        own = [h for h in logger.handlers if type(h) is logging.StreamHandler]
        if own:
            for handler in own:
                logger.removeHandler(handler)
            logger.propagate = True


class _LinesToLogger(io.TextIOBase):
    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._partial = ""

    def write(self, text: str) -> int:
        *complete, self._partial = (self._partial + text).split("\n")
        for line in complete:
            if line.strip():
                self._logger.info(line.strip())
        return len(text)

    def flush(self) -> None:
        if self._partial.strip():
            self._logger.info(self._partial.strip())
        self._partial = ""


@contextlib.contextmanager
def printed_as_logs(logger: logging.Logger) -> Iterator[None]:
    """What libraries print to stdout or stderr meanwhile (MLflow's run links and registration
    notices) becomes `logger`'s records, a line each. Process-wide, as any redirection of
    sys.stdout: for the calls of one thread while the others only log."""
    stream = _LinesToLogger(logger)
    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        try:
            yield
        finally:
            stream.flush()
