# fraudstream: every set-up step a fresh machine needs is in these targets.
#   make demo   platform up, services up, simulator feeding the system
#   make test   everything CI checks: install, generated-code check, lint, types, unit,
#               platform up, integration and end-to-end tests, platform down
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: install proto proto-check lint typecheck unit integration platform-up platform-down up down demo test bench buf-lint

install:
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv
	$(UV) sync --frozen --all-packages --all-extras

proto: install
	$(RUN) python scripts/generate_proto.py

proto-check: install
	$(RUN) python scripts/generate_proto.py --check

buf-lint:
	@if command -v buf >/dev/null 2>&1; then cd proto && buf lint; else echo "buf not installed: skipping buf lint"; fi

lint: install
	$(RUN) ruff format --check .
	$(RUN) ruff check .

typecheck: install
	$(RUN) mypy

unit: install
	$(RUN) pytest tests/unit -q $(PYTEST_ARGS)

platform-up: install
	$(RUN) fraudstream platform up

platform-down:
	-$(RUN) fraudstream down

integration: install
	$(RUN) pytest tests/integration tests/e2e -q $(PYTEST_ARGS)

up: install
	$(RUN) fraudstream up

down:
	$(RUN) fraudstream down

# The platform, the services, and the simulator replaying the handbook's world at one
# simulated day per 30 seconds (Ctrl-C stops the replay; `make down` stops the rest).
demo: up
	$(RUN) fraudstream simulate --speedup 2880

bench: install platform-up
	$(RUN) python benchmarks/ingest_throughput.py

test: install proto-check lint typecheck unit
	$(MAKE) platform-up
	status=0; $(MAKE) integration || status=$$?; $(MAKE) platform-down; exit $$status
