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
    given = dict(overrides or {})
    environment = {**os.environ, **given}
    feast_metrics = sys.modules.get("feast.metrics")
    if not getattr(feast_metrics, "_owns_mp_dir", False):
        return environment
    feasts = getattr(feast_metrics, "_prometheus_mp_dir", None)
    for name in MULTIPROCESS_VARIABLES:
        if name not in given and environment.get(name) == feasts:
            del environment[name]
    return environment
