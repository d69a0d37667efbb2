# prom-adapter: `make demo` runs the adapter against a real Prometheus with sample data;
# `make test` runs every check CI runs.
CARGO ?= cargo

.PHONY: demo test deps build release lint fmt bench manifests

deps:
	@scripts/install-deps.sh

build:
	$(CARGO) build --locked

# The build the container image runs (Dockerfile).
release:
	$(CARGO) build --release --locked

demo: deps build
	@scripts/demo.sh

# Formatting, clippy, and the layering DESIGN.md draws (scripts/check-layers.py).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	python3 scripts/check-layers.py

test: deps lint
	$(CARGO) test --locked
	$(MAKE) release

fmt:
	$(CARGO) fmt --all

# Benchmarks (release build): adapter vs direct Prometheus latency, and 1M-series discovery vs curl.
bench: deps
	$(CARGO) bench --locked --bench adapter

# The plain manifests (manifests/base) rendered from the Helm chart; a test fails when they are stale.
manifests: deps
	@scripts/render-manifests.sh
