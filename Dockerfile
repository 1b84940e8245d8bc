# One image per service, built from the workspace's single lock file:
#   docker build --build-arg SERVICE=ingest -t fraudstream-ingest .
# Only the service's own dependencies are installed (uv sync --package), never the others'.
FROM python:3.11-slim AS build
ARG SERVICE
# For inference on GPU nodes: --build-arg ONNXRUNTIME=onnxruntime-gpu (same module, CUDA provider),
# at the version the lock gives onnxruntime, with CUDA 12 and cuDNN 9 from PyPI (its cuda and
# cudnn extras): the host needs only the NVIDIA driver and container toolkit, no CUDA base image.
ARG ONNXRUNTIME=onnxruntime
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
# gRPC serving (libs/grpc-bridge) is a Rust extension, built here: the toolchain and a C linker,
# in this stage only.
COPY --from=rust:1-slim-bookworm /usr/local/cargo /usr/local/cargo
COPY --from=rust:1-slim-bookworm /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup PATH=/usr/local/cargo/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv
COPY . .
RUN uv sync --frozen --no-dev --no-editable --package "fraudstream-${SERVICE}" \
 && if [ "${SERVICE}" = "cli" ]; then uv sync --frozen --no-dev --no-editable --package fraudstream-cli --extra platform; fi \
 && if [ "${ONNXRUNTIME}" = "onnxruntime-gpu" ]; then \
      version="$(/opt/venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)')" \
      && uv pip uninstall --python /opt/venv/bin/python onnxruntime \
      && uv pip install --python /opt/venv/bin/python "onnxruntime-gpu[cuda,cudnn]==${version}"; fi

FROM python:3.11-slim
ARG SERVICE
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 FRAUDSTREAM_SERVICE=${SERVICE}
COPY --from=build /opt/venv /opt/venv
# A named volume starts as a copy of the image's directory, owner included: /feast is the user's.
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin fraudstream \
 && mkdir -p /feast && chown 10001:10001 /feast
USER 10001
# The service module is fraudstream_<service>; the CLI image runs `fraudstream`.
ENTRYPOINT ["/bin/sh", "-c", "if [ \"$FRAUDSTREAM_SERVICE\" = cli ]; then exec fraudstream \"$@\"; else exec python -m \"fraudstream_$FRAUDSTREAM_SERVICE\"; fi", "--"]
