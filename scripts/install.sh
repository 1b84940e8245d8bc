#!/usr/bin/env bash
# `make install`: uv, Rust for the gRPC bridge where it can be had, then the locked workspace.
#   UV=... UV_VERSION=... scripts/install.sh
# uv: from PATH, else into .tools/uv, a virtual environment of its own (Debian's and Ubuntu's
# Python refuse `pip install` outside one, PEP 668).
# Rust: the bridge (libs/grpc-bridge) is of edition 2024, Rust 1.85 or later. Where cargo is
# older or missing, root on Debian 12 gets Debian's cargo-web (1.85 or later; bookworm's own
# cargo is 1.63); anyone else installs without the bridge, and gRPC is served by grpc.aio
# (fraudstream_common.grpc_serving), with this notice and a warning at each start.
set -euo pipefail
RUST_MIN=1.85

if ! "$UV" --version >/dev/null 2>&1; then
  python3 -m venv .tools/uv
  .tools/uv/bin/pip install --quiet "uv==$UV_VERSION"
fi

rust_new_enough() {
  local found
  found="$(cargo --version 2>/dev/null | cut -d' ' -f2)"
  [ "$(printf '%s\n' "$RUST_MIN" "${found:-0}" | sort -V | head -n1)" = "$RUST_MIN" ]
}

if ! rust_new_enough && [ "$(id -u)" = 0 ] && apt-cache show cargo-web >/dev/null 2>&1; then
  echo "installing Debian's cargo-web (Rust $RUST_MIN or later) for the gRPC bridge"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends cargo-web >/dev/null \
    || echo "apt-get could not install cargo-web"
fi

skip=()
if ! rust_new_enough; then
  echo "notice: no Rust $RUST_MIN or later (cargo: $(cargo --version 2>/dev/null || echo none)): installing" \
    "without the gRPC bridge; gRPC is served by grpc.aio, whose calls cost more CPU (docs/benchmarks.md)."
  echo "  For the bridge: on Debian 12, sudo apt install cargo-web; elsewhere rustup (https://rustup.rs);" \
    "then make install again."
  skip=(--no-install-package fraudstream-grpc-bridge)
fi
# Bytecode compiled once here: where Python may not write it (PYTHONDONTWRITEBYTECODE, as in
# CI's environment), every service start compiled Feast and the rest again (about 4 s of CPU).
# The dev group takes inference's CPU build of ONNX Runtime (its `cpu` extra).
"$UV" sync --frozen --all-packages --compile-bytecode "${skip[@]}"
