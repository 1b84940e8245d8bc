"""The environment a process gives the fraudstream processes it starts."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

MULTIPROCESS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")


def child_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with `overrides`, less the metrics directory Feast made.

    Importing Feast points prometheus_client's multiprocess variables at a directory of its own
    where no operator set them. A child that inherits them keeps its metrics in files there, and
    its /metrics sums every process that ever wrote there, the dead ones with the others: a
    restarted service would report its predecessor's counts as its own. An operator's
    directory is kept."""
    environment = {**os.environ, **(overrides or {})}
    feast_metrics = sys.modules.get("feast.metrics")
    feasts = (
        getattr(feast_metrics, "_prometheus_mp_dir", None) if getattr(feast_metrics, "_owns_mp_dir", False) else None
    )
    for name in MULTIPROCESS_VARIABLES:
        if feasts is not None and environment.get(name) == feasts and name not in (overrides or {}):
            del environment[name]
    return environment
