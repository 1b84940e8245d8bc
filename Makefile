# fraudstream: every set-up step a fresh machine needs is in these targets.
#   make demo   platform up, services up, simulator feeding the system
#   make test   everything CI checks: install, generated-code check, lint, types, unit,
#               platform up, integration and end-to-end tests, platform down
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# uv from PATH, else the one `make install` puts in .tools/uv (scripts/install.sh).
UV_VERSION := 0.13.9
UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/uv/bin/uv)
# No sync on each run: `install` synced, and where it left the gRPC bridge out (no Rust) a sync
# would try to build it.
RUN := $(UV) run --frozen --no-sync
PYTEST_ARGS ?=

PHONY_DOCS := docs docs-check
.PHONY: $(PHONY_DOCS) install proto proto-check lint typecheck unit integration scale loop screenshot chaos fuzz platform-up platform-down up down demo demo-up test bench buf-lint

install:
	UV="$(UV)" UV_VERSION=$(UV_VERSION) scripts/install.sh

proto: install
	$(RUN) python scripts/generate_proto.py

proto-check: install
	$(RUN) python scripts/generate_proto.py --check

BUF ?= $(shell command -v buf 2>/dev/null || ls $(HOME)/go/bin/buf 2>/dev/null)
buf-lint:
	@if [ -n "$(BUF)" ]; then cd proto && $(BUF) lint && echo "buf lint: ok"; \
	 else echo "buf not installed (go install github.com/bufbuild/buf/cmd/buf@v1.59.0): skipping buf lint"; fi

# The settings reference, and the Kubernetes resources that repeat the topics table and the
# alerting rules.
docs: install
	$(RUN) python scripts/settings_reference.py
	$(RUN) python scripts/k8s_resources.py

docs-check: install
	$(RUN) python scripts/settings_reference.py --check
	$(RUN) python scripts/k8s_resources.py --check

BRIDGE := --manifest-path libs/grpc-bridge/Cargo.toml
lint: install
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	cargo fmt $(BRIDGE) --check
	cargo clippy $(BRIDGE) --release --locked -- -D warnings

typecheck: install
	$(RUN) mypy

unit: install
	$(RUN) pytest tests/unit -q $(PYTEST_ARGS)

platform-up: install
	$(RUN) fraudstream platform up

platform-down:
	-$(RUN) fraudstream down

integration: install
	$(RUN) pytest tests/integration tests/e2e tests/chaos -q -m "not chaos_slow" $(PYTEST_ARGS)

# The loop restoring quality on the demo's world (5,000 customers; `make test` runs 2,000).
loop: install platform-up
	FRAUDSTREAM_LOOP_CUSTOMERS=5000 FRAUDSTREAM_LOOP_SECONDS_PER_DAY=24 \
		$(RUN) pytest tests/e2e/test_loop_restores_quality.py -q $(PYTEST_ARGS)

# The README's picture of the ops console, as the console's test takes it.
screenshot: install platform-up
	FRAUDSTREAM_CONSOLE_SCREENSHOT=docs/images/console.png \
		$(RUN) pytest tests/integration/monitor/test_console.py -q $(PYTEST_ARGS)

# Every fault of the chaos suite under load (it kills the platform's broker), then its table
# (also in .platform/run/chaos-report.json).
chaos: install platform-up
	FRAUDSTREAM_CHAOS_REPORT=.platform/run/chaos-report.json $(RUN) pytest tests/chaos -q $(PYTEST_ARGS)

# The atheris fuzz targets (tests/fuzz), five minutes each; `make test` gives each 15 s.
fuzz: install
	FRAUDSTREAM_FUZZ_SECONDS=300 $(RUN) pytest tests/unit/common/test_fuzzing.py -q $(PYTEST_ARGS)

# Only the tests of replicas sharing partitions, one killed mid-stream (also in `make test`).
scale: install platform-up
	$(RUN) pytest tests/integration -q -m scale $(PYTEST_ARGS)

up: install
	$(RUN) fraudstream up

down:
	$(RUN) fraudstream down

# The platform, the services, and the simulator replaying the handbook's world: its first 53
# days as fast as they go (the history the trainer's first model needs: a holdout after the
# features' 37-day warm-up), then, once the trainer has published that model, one simulated
# day per 24 seconds up to day 84, with a new fraud pattern from day 56; transaction ids of its
# own, so a rerun is no duplicate (Ctrl-C stops the replay; `make down` stops the rest).
# The simulator in the background (its log in .platform/run/simulator.log), `fraudstream watch`
# in front: a line every 10 s, then the report (also in .platform/run/demo-report.txt), which
# judges from the drift's start whether quality came back. The demo runs at 3,600 times real
# time and the trainer's cooldown counts wall time: 96 seconds here (4 simulated days), not an
# hour (150 simulated days), so a drift can be answered; the monitor's request cooldown counts
# simulated time and keeps its 6 hours. The monitor's hours wait for
# predictions out of order as many times longer: 3 simulated hours (3 seconds), not 10 minutes.
# `make demo-up` starts again, with these settings, a service stopped during the demo (a plain
# `fraudstream up` takes the defaults, and the restarted trainer would wait an hour). A second
# `make demo` starts from an empty platform: its 2018 replay would otherwise come after the
# first's end, late for every window the monitor judges, and show nothing.
DEMO_DRIFT = new-fraud-pattern:56
demo demo-up: export FRAUDSTREAM_COOLDOWN_SECONDS = 96
demo demo-up: export FRAUDSTREAM_HOUR_LATENESS_SECONDS = 10800
demo demo-up: export FRAUDSTREAM_HOUR_MAX_AHEAD_SECONDS = 21600
demo-up: up

demo: install
	@if [ -e .platform/run/simulator.log ]; then \
		echo "A demo ran on this platform before; the same simulated days again would come after its end and"; \
		echo "show nothing. Deleting what it left (topics, stores, models, logs; not the downloads) first."; \
		$(RUN) fraudstream down --delete-data; \
	fi
	$(RUN) fraudstream up
	@mkdir -p .platform/run
	$(RUN) fraudstream simulate --days 84 --history-days 53 --wait-for-model 1200 --speedup 3600 --drift $(DEMO_DRIFT) \
		--run-id demo$$(date +%s) > .platform/run/simulator.log 2>&1 & simulator=$$!; \
	trap 'kill $$simulator 2>/dev/null' INT TERM; \
	$(RUN) fraudstream watch --while-pid $$simulator --drift $(DEMO_DRIFT) --report-file .platform/run/demo-report.txt; \
	wait $$simulator

bench: install platform-up
	$(RUN) python benchmarks/ingest_throughput.py
	$(RUN) python benchmarks/features_throughput.py
	$(RUN) python benchmarks/inference_latency.py
	$(RUN) python benchmarks/tensor_graph.py --rounds 5
	$(RUN) python benchmarks/transport_floor.py
	$(RUN) python benchmarks/prediction_record.py
	$(RUN) python benchmarks/monitor_throughput.py --service
	$(RUN) python benchmarks/stream_runtimes.py --rounds 3
	$(RUN) python benchmarks/offline_parts.py --hours 3 --rate 10 --rounds 3
	$(RUN) python benchmarks/trainer_threads.py --rounds 3
	$(RUN) python benchmarks/end_to_end.py --rounds 3

test: install proto-check buf-lint docs-check lint typecheck unit
	$(MAKE) platform-up
	status=0; $(MAKE) integration || status=$$?; $(MAKE) platform-down; exit $$status
