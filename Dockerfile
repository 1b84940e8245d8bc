# syntax=docker/dockerfile:1
# One Dockerfile, a target per service, every image from the workspace's one lock file:
#   docker build --target ingest -t fraudstream-ingest .
#   docker compose build          (every target of compose.yaml, with one builder)
# Targets: ingest, features, trainer, inference, inference-gpu, monitor, cli. Each installs only
# its service's dependencies (uv sync --package), never the others'. The gRPC bridge (Rust) is
# built once, in the `bridge` stage, and every target installs that wheel.
#
# Base images are pinned by digest in their FROM lines, where Dependabot (.github/dependabot.yml)
# proposes newer ones. The GPU target's base has the CUDA and cuDNN that the locked
# onnxruntime-gpu is built for (onnxruntime.capi.build_and_package_info: CUDA 13.0; cuDNN 9),
# which needs an NVIDIA driver of the 580 series or later on the node.

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS uv
COPY deploy/image/uv.txt /tmp/uv.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/uv.txt
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never
WORKDIR /src

# The gRPC bridge: Rust 1.85 or later from Debian (cargo-web; bookworm's `cargo` is 1.63).
FROM uv AS bridge
RUN apt-get update \
 && apt-get install -y --no-install-recommends cargo-web gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY libs/grpc-bridge libs/grpc-bridge
RUN uv build --wheel --out-dir /wheels libs/grpc-bridge

# The workspace, and the bridge's wheel for the services' environments.
FROM uv AS workspace
COPY --from=bridge /wheels /wheels
COPY . .

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS runtime
# A named volume starts as a copy of the image's directory, owner included: /feast is the user's.
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin fraudstream \
 && mkdir -p /feast && chown 10001:10001 /feast
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1

FROM workspace AS ingest-environment
RUN deploy/image/environment.sh ingest
FROM runtime AS ingest
COPY --from=ingest-environment /opt/venv /opt/venv
USER 10001
ENTRYPOINT ["python", "-m", "fraudstream_ingest"]

FROM workspace AS features-environment
RUN deploy/image/environment.sh features
FROM runtime AS features
COPY --from=features-environment /opt/venv /opt/venv
USER 10001
ENTRYPOINT ["python", "-m", "fraudstream_features"]

FROM workspace AS trainer-environment
RUN deploy/image/environment.sh trainer
FROM runtime AS trainer
COPY --from=trainer-environment /opt/venv /opt/venv
USER 10001
ENTRYPOINT ["python", "-m", "fraudstream_trainer"]

FROM workspace AS inference-environment
RUN deploy/image/environment.sh inference --extra cpu
FROM runtime AS inference
COPY --from=inference-environment /opt/venv /opt/venv
USER 10001
ENTRYPOINT ["python", "-m", "fraudstream_inference"]

FROM workspace AS monitor-environment
RUN deploy/image/environment.sh monitor
FROM runtime AS monitor
COPY --from=monitor-environment /opt/venv /opt/venv
USER 10001
ENTRYPOINT ["python", "-m", "fraudstream_monitor"]

FROM workspace AS cli-environment
RUN deploy/image/environment.sh cli --extra platform
FROM runtime AS cli
COPY --from=cli-environment /opt/venv /opt/venv
USER 10001
ENTRYPOINT ["fraudstream"]

# Inference on GPU nodes: onnxruntime-gpu from the lock file (the `gpu` extra) on the CUDA base,
# with a Python of uv's own (the CUDA base has none of 3.11), at the same path in both stages.
FROM workspace AS inference-gpu-environment
ENV UV_PYTHON_DOWNLOADS=automatic UV_PYTHON_INSTALL_DIR=/opt/python
RUN uv python install 3.11.18 \
 && deploy/image/environment.sh inference --extra gpu --python 3.11.18 --managed-python
FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04@sha256:14d94b039cb94bbd5da559f303b46bc4b0d5d6c24ab1a9d7b186e566ed3400dc AS inference-gpu
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin fraudstream
COPY --from=inference-gpu-environment /opt/python /opt/python
COPY --from=inference-gpu-environment /opt/venv /opt/venv
# No silent fall back to the CPU: without a usable CUDA provider the service stops at start.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 FRAUDSTREAM_DEVICE=cuda
USER 10001
ENTRYPOINT ["python", "-m", "fraudstream_inference"]
