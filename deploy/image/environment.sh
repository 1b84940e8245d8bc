#!/bin/sh
# The environment of one service in /opt/venv, from the lock file: the service's own
# dependencies (uv sync --package), then the gRPC bridge's wheel built in the `bridge` stage.
#   environment.sh SERVICE [uv sync options...]
set -eu
service="$1"
shift
uv sync --frozen --no-dev --no-editable --package "fraudstream-${service}" --no-install-package fraudstream-grpc-bridge "$@"
uv pip install --python /opt/venv/bin/python --no-deps /wheels/*.whl
