"""fraudstream's Feast feature repository and the request-time feature read.

Feast holds each customer's and terminal's rollable feature state (see
fraudstream_common.features): online in Redis for scoring, offline in parquet for training.

This package is the one place fraudstream imports Feast from. Importing Feast (0.67) sets
PROMETHEUS_MULTIPROC_DIR and PROMETHEUS_MULTIPROCESS_DIR to a fresh temporary directory, for
its own Gunicorn feature server. Left set, they switch prometheus_client into multiprocess mode
in every process that imports it afterwards, and in every child process: each metric update
becomes a write to a memory-mapped file under /tmp (it cost the inference service about 2% of
its time under load) and the files pile up. fraudstream's services are one process each, so
the variables are taken back out unless the operator set them, and prometheus_client (which
Feast imports with them set) goes back to in-process values.
"""

import os

from prometheus_client import values

_MULTIPROCESS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
_set_by_operator = {name for name in _MULTIPROCESS_VARIABLES if name in os.environ}

from feast import FeatureStore  # noqa: E402 (the variables are read before Feast sets them)

if not _set_by_operator:
    for _name in _MULTIPROCESS_VARIABLES:
        os.environ.pop(_name, None)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]

__all__ = ["FeatureStore"]
